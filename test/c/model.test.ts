/**
 * Runs the C tests of the GGUF loader, the Gated DeltaNet recurrence, the
 * Chimera model/context API and the other layer types (c/test/test_gguf.c,
 * test_gdn.c, test_model.c, test_layers.c).
 * Each program prints one line per failed check and a summary line; here we
 * require exit 0, no FAIL lines, and a summary with a non-zero check count.
 * test_model and test_layers run once per ISA this CPU has (BRAID_ISA), so the
 * bit-identity of prefill and decode is checked for every kernel table.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { readGguf } from '../../engine/gguf/reader.ts';
import { GgmlType } from '../../engine/gguf/types.ts';
import { chimeraTinyConfig, type ChimeraConfig } from '../../engine/model-init/chimera-config.ts';
import { writeRandomChimera } from '../../engine/model-init/init-chimera.ts';

const cDir = fileURLToPath(new URL('../../c/', import.meta.url));

function runC(name: string, isa = '', extraEnv: Record<string, string> = {}): string {
  execFileSync('make', ['-C', cDir, '-j2', `build/${name}`], { stdio: 'pipe' });
  const run = spawnSync(`${cDir}build/${name}`, [], {
    encoding: 'utf8',
    timeout: 110_000,
    env: { ...process.env, BRAID_ISA: isa, ...extraEnv },
  });
  const out = run.stdout ?? '';
  const failures = out.split('\n').filter((line) => line.startsWith('FAIL'));
  expect(failures, out).toEqual([]);
  expect(run.status, `${out}\n${run.stderr ?? ''}`).toBe(0);
  const summary = new RegExp(`^${name}: (\\d+) checks, 0 failed$`, 'm').exec(out);
  expect(summary, out).not.toBeNull();
  expect(Number(summary?.[1])).toBeGreaterThan(10);
  return out;
}

describe('libbraid model (C)', () => {
  it('test_gguf: valid files parse, corrupt/truncated files fail cleanly', () => {
    const out = runC('test_gguf');
    expect(out).toMatch(/random header flips: \d+ parsed, \d+ rejected/);
  });

  it('test_sgemm: the trainer GEMM against its reference on every ISA, all transposes, thread-count invariant', () => {
    const out = runC('test_sgemm');
    expect(out).toMatch(/threads bit-identical/);
  });

  it('test_gdn: chunkwise form equals the recurrence', () => {
    const out = runC('test_gdn');
    expect(out).toMatch(/^T=37 C=8 /m);
    expect(out).toMatch(/^T=64 C=16 /m);
  });

  it('test_model: reference forward, prefill == decode bit for bit on every ISA, state save/load/copy, errors', () => {
    const out = runC('test_model');
    expect(out).toMatch(/^reference \(1 layer, F32 embeddings, isa 0\)/m);
    expect(out).toMatch(/^m1\.gguf: prefill vs decode/m);
    const systemLine = out.split('\n').find((line) => line.startsWith('system: '));
    expect(systemLine, out).toBeDefined();
    const info = JSON.parse((systemLine ?? '').slice('system: '.length)) as { isa_available: string[] };
    expect(info.isa_available).toContain('ref');
    for (const isa of info.isa_available) {
      const forced = runC('test_model', isa);
      expect(forced).toMatch(new RegExp(`^context tests on isa ${isa}$`, 'm'));
      expect(forced).toMatch(/^m2\.gguf: prefill vs decode/m);
    }
  });

  it('test_layers: XM/TM/SK/MoE/span gate vs a double reference on every ISA, per-head forms equal', () => {
    const out = runC('test_layers');
    expect(out).toMatch(/^mlstm: recurrence vs parallel form/m);
    expect(out).toMatch(/^titans: closed-form segment update vs token recurrence/m);
    for (const name of ['xm', 'tm', 'sk', 'moe_gate', 'mixed']) {
      expect(out).toMatch(new RegExp(`^reference ${name}\\.gguf \\(isa 0\\)`, 'm'));
    }
    expect(out).toMatch(/^mixed\.gguf: prefill vs decode/m);
  });

  it('test_layers: prefill == decode bit for bit, state save/load/copy, on every ISA', () => {
    const systemLine = runC('test_layers', 'ref', { BRAID_TEST_CONTEXT_ONLY: '1' })
      .split('\n')
      .find((line) => line.startsWith('system: '));
    const info = JSON.parse((systemLine ?? 'system: {"isa_available":["ref"]}').slice('system: '.length)) as {
      isa_available: string[];
    };
    for (const isa of info.isa_available) {
      const forced = runC('test_layers', isa, { BRAID_TEST_CONTEXT_ONLY: '1' });
      expect(forced).toMatch(new RegExp(`^context tests on isa ${isa}$`, 'm'));
      expect(forced).toMatch(/^mixed\.gguf: prefill vs decode/m);
    }
  });

  it('writeRandomChimera with every layer type, MoE and the span gate loads in C; prefill == decode', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'braid-every-layer-'));
    try {
      const path = join(dir, 'every.gguf');
      const config: ChimeraConfig = {
        ...chimeraTinyConfig(4096),
        name: 'every-layer',
        embeddingLength: 128,
        feedForwardLength: 256,
        layerTypes: ['GD', 'XM', 'GD', 'TM', 'GD', 'XM', 'GD', 'SK'],
        headCount: 2,
        xlstm: { headCount: 2, headDim: 64, gateSoftCap: 15, normEps: 1e-5 },
        titans: { headCount: 2, headDim: 64, memoryDim: 128, persistentSlots: 8, segmentLength: 5, thetaMax: 0.1 },
        tsp: { sketchDim: 32 },
        moe: {
          layers: [3, 7],
          expertCount: 4,
          expertUsedCount: 2,
          sharedExpertCount: 1,
          feedForwardLength: 128,
          routedScalingFactor: 1,
        },
        spanGate: true,
      };
      await writeRandomChimera(path, config, 11);

      // the inits of ARCHITECTURES.md for the new tensors (docs/architecture.md)
      const file = await readGguf(path);
      const raw = readFileSync(path);
      const info = (name: string) => {
        const t = file.tensors.find((x) => x.name === name);
        expect(t, name).toBeDefined();
        return t!;
      };
      const floats = (name: string): number[] => {
        const t = info(name);
        return Array.from(new Float32Array(raw.buffer.slice(raw.byteOffset + t.fileOffset, raw.byteOffset + t.fileOffset + t.byteSize!)));
      };
      expect(floats('blk.1.xm_i.bias')).toEqual([-10, -10]);
      expect(floats('blk.5.xm_f.bias')).toEqual([3, 6]);
      expect(floats('blk.1.xm_norm.bias').every((v) => v === 0)).toBe(true);
      expect(floats('blk.3.tm_alpha.bias')).toEqual([-4, -4]);
      expect(floats('blk.3.tm_eta.bias')).toEqual([2, 2]);
      const bound = Math.sqrt(6 / (128 + 64));
      const w1 = floats('blk.3.tm_mem_w1');
      expect(w1.length).toBe(2 * 128 * 64);
      expect(w1.every((v) => Math.abs(v) <= bound)).toBe(true);
      expect(Math.max(...w1) - Math.min(...w1)).toBeGreaterThan(1.8 * bound);
      expect(floats('blk.7.sk_energy_lambda')).toEqual([1, 0.3, 0.2, 0.4, 0.3].map(Math.fround));
      expect(floats('blk.7.exp_probs_b.bias')).toEqual([0, 0, 0, 0]);
      expect(info('blk.3.ffn_gate_exps.weight')).toMatchObject({ type: GgmlType.BT2, dims: [128, 128, 4] });
      expect(info('blk.7.ffn_down_exps.weight')).toMatchObject({ type: GgmlType.BT2, dims: [128, 128, 4] });
      expect(info('blk.3.ffn_down_shexp.weight').dims).toEqual([128, 128]);
      expect(info('output_gate.weight')).toMatchObject({ type: GgmlType.F32, dims: [129, 128] });
      expect(file.tensors.some((t) => t.name === 'blk.3.ffn_gate.weight')).toBe(false);
      expect(file.tensors.some((t) => t.name === 'blk.7.gdn_q.weight')).toBe(true); // SK's inner GDN
      const out = runC('test_layers', '', { BRAID_TEST_MODEL: path });
      expect(out).toMatch(/"layer_types":\["GD","XM","GD","TM","GD","XM","GD","SK"\]/);
      expect(out).toMatch(/"moe":\{"layers":\[3,7\],"expert_count":4,"expert_used_count":2/);
      expect(out).toMatch(/"span_gate":true/);
      expect(out).toMatch(/^external model: 12 tokens, prefill == decode/m);

      // the same model with its decode-step float matrices in F16 (the halves TS writes load in C)
      const path16 = join(dir, 'every16.gguf');
      await writeRandomChimera(path16, config, 11, { floatMatrices: 'f16' });
      const out16 = runC('test_layers', '', { BRAID_TEST_MODEL: path16 });
      expect(out16).toMatch(/"embd_type":"F16"/);
      expect(out16).toMatch(/^external model: 12 tokens, prefill == decode/m);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
