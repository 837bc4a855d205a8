/**
 * `npm run bench -- train [--steps 6] [--batch 8] [--seq 256] [--threads 2] [--no-peer] [--no-gemm]`
 *
 * Before/after a trainer change, in one run: `BRAID_LIB=<the old libbraid.so>` loads another build of
 * the library (engine/binding/native.ts); alternate the two invocations and compare medians.
 *
 * Training throughput of braid's trainer (forward + backward + AdamW, QAT) against the
 * PyTorch reference (scripts/reference/chimera_torch.py on Debian's python3-torch, with OpenBLAS
 * (`apt-get install libopenblas0-openmp`: with Debian's default reference BLAS torch is ~6× slower,
 * which would flatter the ratio); the
 * same model file, batch shape and thread count), measured in the same run, plus the
 * GEMM kernel's share of the FP32 FMA roofline on the trainer's shapes (c/build/bench_sgemm,
 * which measures the roofline in the same run). Figures go to docs/benchmarks.md.
 *
 * The model is the default model's shape (chimeraTinyConfig: D 256, I 768, 4 GD layers,
 * vocab 4096) with random weights, written once under models/bench/.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { initLibrary, systemInfo } from '../engine/binding/library.ts';
import { chimeraTinyConfig } from '../engine/model-init/chimera-config.ts';
import { writeRandomChimera } from '../engine/model-init/init-chimera.ts';
import { NativeTrainer } from '../engine/training/native-trainer.ts';
import type { BenchValues } from './bench-usage.ts';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

/** Random tokens from a fixed LCG (the content does not change the cost). */
function tokens(n: number, V: number, seed: number): Int32Array {
  let s = seed >>> 0;
  return Int32Array.from({ length: n }, () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return (s >>> 8) % V;
  });
}

async function braidTokensPerSecond(model: string, B: number, T: number, steps: number): Promise<{ tokS: number; stepMs: number[] }> {
  const tr = NativeTrainer.open(model);
  try {
    const x = tokens(B * T, tr.vocabSize, 1);
    const y = tokens(B * T, tr.vocabSize, 2);
    const times: number[] = [];
    for (let s = 0; s <= steps; s++) {
      const t0 = performance.now();
      const r = await tr.forwardBackward(x, y, B, T);
      await tr.update(1e-3, 1 / r.count);
      if (s > 0) times.push(performance.now() - t0); // step 0 pays first-touch page faults
    }
    return { tokS: (B * T) / (median(times) / 1000), stepMs: times };
  } finally {
    tr.dispose();
  }
}

interface PeerResult {
  tokens_per_s: number;
  step_ms: number;
  threads: number;
  torch_version: string;
}

function torchPeer(model: string, B: number, T: number, steps: number, threads: number): PeerResult | string {
  const script = join(root, 'scripts/reference/chimera_torch.py');
  // Debian's python3-torch is seen by /usr/bin/python3 (a python3 earlier on PATH, e.g. pyenv's, may not)
  const python = existsSync('/usr/bin/python3') ? '/usr/bin/python3' : 'python3';
  const r = spawnSync(python, [script, 'bench', '--model', model, '--batch', String(B), '--seq', String(T), '--steps', String(steps), '--threads', String(threads)], {
    encoding: 'utf8',
    env: { ...process.env, OMP_NUM_THREADS: String(threads), MKL_NUM_THREADS: String(threads) },
  });
  if (r.error) return `${python} not runnable: ${r.error.message}`;
  if (r.status !== 0) return `peer failed (exit ${r.status}): ${(r.stderr || r.stdout).trim().split('\n').slice(-3).join(' | ')}`;
  const line = r.stdout.trim().split('\n').filter((l) => l.startsWith('{')).pop();
  if (!line) return `peer printed no JSON line: ${r.stdout.slice(-200)}`;
  return JSON.parse(line) as PeerResult;
}

function gemmRoofline(threads: number): string {
  const bin = join(root, 'c/build/bench_sgemm');
  if (!existsSync(bin)) return 'c/build/bench_sgemm missing (make -C c)';
  const r = spawnSync(bin, ['--threads', String(threads)], { encoding: 'utf8' });
  return r.status === 0 ? r.stdout.trim() : `bench_sgemm failed: ${r.stderr}`;
}

export async function benchTrain(values: BenchValues<'train'>): Promise<void> {
  const steps = values.steps;
  const B = values.batch;
  const T = values.seq;
  const threads = values.threads;
  initLibrary(threads);
  const dir = join(root, 'models/bench');
  mkdirSync(dir, { recursive: true });
  const model = join(dir, 'train-tiny-random.gguf');
  if (!existsSync(model)) await writeRandomChimera(model, { ...chimeraTinyConfig(4096), name: 'train-bench' }, 7);
  const info = systemInfo();
  console.log(`bench train: ${model}, batch ${B} × seq ${T}, ${threads} threads, isa ${info.isa}`);

  const ours = await braidTokensPerSecond(model, B, T, steps);
  console.log(`braid   : ${ours.tokS.toFixed(0)} tok/s (median step ${median(ours.stepMs).toFixed(0)} ms, fastest ${Math.min(...ours.stepMs).toFixed(0)} ms, over ${steps} steps)`);
  if (!values['no-peer']) {
    const peer = torchPeer(model, B, T, Math.max(2, Math.ceil(steps / 2)), threads);
    if (typeof peer === 'string') console.log(`pytorch : ${peer}`);
    else {
      console.log(`pytorch : ${peer.tokens_per_s.toFixed(0)} tok/s (mean step ${peer.step_ms.toFixed(0)} ms, torch ${peer.torch_version}, ${peer.threads} threads)`);
      console.log(`ratio   : braid / pytorch = ${(ours.tokS / peer.tokens_per_s).toFixed(2)}× (target ≥ 3×)`);
    }
  }
  if (values['no-gemm']) return;
  console.log('\nGEMM on the trainer shapes vs the FP32 FMA roofline (same run):');
  console.log(gemmRoofline(threads));
}
