/**
 * `npm run bench -- kernels|decode|grammar|valve|train|finetune|moa [options]` — benchmarks, never run by the tests.
 *
 * Every figure is printed beside a ratio measured in the same run (the host is
 * shared and timings move ±15%): kernels against their scalar reference and
 * the memory roofline; decode against the bandwidth roofline (a decode step of
 * a ternary model must read every weight once, so tok/s ≤ bandwidth / bytes; a
 * Parcae looping model reads its loop layers once per iteration, so its step at
 * depth n reads prelude + coda + n × loop-layer bytes).
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { initLibrary, systemInfo } from '../engine/binding/library.ts';
import { readGguf } from '../engine/gguf/reader.ts';
import { metaOptNumber } from '../engine/gguf/types.ts';
import { NativeModel } from '../engine/model/native-model.ts';
import { chimeraSeedDimsConfig } from '../engine/model-init/chimera-config.ts';
import { writeRandomChimera } from '../engine/model-init/init-chimera.ts';
import { ConfigError } from '../server/config.ts';
import { BENCHES, benchHelp, benchNameHelp, isBenchName, parseBenchArgs, toArgv, type BenchName, type BenchValues } from './bench-usage.ts';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const benchKernels = join(root, 'c/build/bench_kernels');

/** Memory read bandwidth with `threads` threads, from the C bench (same run as the decode figures). */
function measureBandwidthGBs(threads: number): number {
  const out = execFileSync(benchKernels, ['--bandwidth-only', '--threads', String(threads)], { encoding: 'utf8' });
  const m = /bandwidth_gbps=([0-9.]+)/.exec(out);
  if (!m?.[1]) throw new Error(`could not parse bandwidth from bench_kernels output:\n${out}`);
  return Number(m[1]);
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)] ?? NaN;
}

function argmax(v: Float32Array): number {
  let best = 0;
  for (let i = 1; i < v.length; i++) if (v[i]! > v[best]!) best = i;
  return best;
}

/**
 * Bytes one decode step must read: every tensor once, except routed MoE
 * experts, of which only top-k of E are touched per token, and the layers of
 * a Parcae loop, read once per loop iteration (`loops`).
 */
async function bytesPerStep(path: string, loops = 1): Promise<number> {
  const file = await readGguf(path);
  const E = metaOptNumber(file.metadata, 'chimera.moe.expert_count') ?? 0;
  const K = metaOptNumber(file.metadata, 'chimera.moe.expert_used_count') ?? 0;
  const range = file.metadata.get('chimera.loop.loop')?.value;
  const [l0, l1] = Array.isArray(range) ? (range as number[]) : [-1, -2];
  let bytes = 0;
  for (const t of file.tensors) {
    const size = t.byteSize ?? 0;
    const layer = /^blk\.(\d+)\./.exec(t.name);
    const times = layer && Number(layer[1]) >= l0! && Number(layer[1]) <= l1! ? loops : 1;
    bytes += times * (E > 0 && t.name.includes('_exps.') ? (size * K) / E : size);
  }
  return bytes;
}

interface DecodeResult {
  model: string;
  /** Parcae loop depth of every token (null: the model does not loop). */
  loops: number | null;
  tensorMB: number;
  /** MB read per decode step (active experts only). */
  stepMB: number;
  /** Resident-set growth from before the load to after the first prompt (mapped pages + context). */
  rssGrowthMB: number;
  loadMs: number;
  ttftMs: number;
  prefillTokS: number;
  decodeTokS: number;
  rooflineTokS: number;
}

async function benchModel(path: string, promptLen: number, genLen: number, depths: number[]): Promise<DecodeResult[]> {
  const rssBefore = process.memoryUsage().rss;
  const t0 = performance.now();
  const model = await NativeModel.load(path);
  const loadMs = performance.now() - t0;
  const out: DecodeResult[] = [];
  try {
    const runs = model.loopMax > 0 ? depths.filter((d) => d <= model.loopMax) : [null];
    for (const loops of runs) {
      out.push(await benchRun(model, path, promptLen, genLen, loops, rssBefore, loadMs));
    }
  } finally {
    await model.dispose();
  }
  return out;
}

async function benchRun(
  model: NativeModel,
  path: string,
  promptLen: number,
  genLen: number,
  loops: number | null,
  rssBefore: number,
  loadMs: number,
): Promise<DecodeResult> {
  const stepMB = (await bytesPerStep(path, loops ?? 1)) / 1e6;
  const ctx = model.createContext(512);
  const opts = loops === null ? {} : { loops };
  try {
    // Deterministic pseudo-text: token ids spread over the vocabulary.
    const prompt = Array.from({ length: promptLen }, (_, i) => (i * 7919 + 13) % model.nVocab);
    await ctx.eval(prompt.slice(0, 8), opts); // warm the mapping and caches once
    await ctx.reset();

    const tp = performance.now();
    let logits = await ctx.eval(prompt, opts);
    let next = argmax(logits);
    const ttftMs = performance.now() - tp;
    // Every weight page has been touched once now: with weights used in place
    // from the mapping, the growth is the tensor bytes plus the context.
    const rssGrowthMB = (process.memoryUsage().rss - rssBefore) / 1e6;

    const steps: number[] = [];
    for (let i = 0; i < genLen; i++) {
      const ts = performance.now();
      logits = await ctx.eval([next], opts);
      next = argmax(logits);
      steps.push(performance.now() - ts);
    }
    const stepMs = median(steps);
    return {
      model: path.split('/').pop() ?? path,
      loops,
      tensorMB: model.tensorBytes / 1e6,
      stepMB,
      rssGrowthMB,
      loadMs,
      ttftMs,
      prefillTokS: (promptLen / ttftMs) * 1000,
      decodeTokS: 1000 / stepMs,
      rooflineTokS: 0,
    };
  } finally {
    await ctx.dispose();
  }
}

/** `depths`: Parcae loop depths for looping models (the seed-dims model loops: prelude 0–3, loop 4–23, coda 24–27). */
async function benchDecode(values: BenchValues<'decode'>): Promise<void> {
  const threads = values.threads;
  initLibrary(threads);
  const info = systemInfo();
  console.log(`system: isa=${info.isa} threads=${info.threads} cpu="${info.cpu}"`);

  const models = [join(root, 'models/chimera-tiny.gguf')];
  if (!values['skip-seed-dims']) {
    // The file name carries a hash of the config and storage, so a changed config never reuses a stale file.
    // The seed config stores its float matrices in bfloat16; F16 is the closest type braid reads.
    const config = chimeraSeedDimsConfig(4096);
    const floatMatrices = 'f16';
    const tag = createHash('sha256').update(JSON.stringify({ config, floatMatrices })).digest('hex').slice(0, 10);
    const big = join(root, `models/bench/chimera-2560-random-${tag}.gguf`);
    if (!existsSync(big)) {
      mkdirSync(dirname(big), { recursive: true });
      console.log(`writing ${big} (random init, seed dims; once per config) ...`);
      await writeRandomChimera(big, config, 2560, { floatMatrices });
    }
    models.push(big);
  }

  const results: DecodeResult[] = [];
  for (const m of models) results.push(...(await benchModel(m, values.prompt, values.tokens, values.depths)));
  // Bandwidth last and first would bracket the run; once after is enough to share the same conditions.
  const bw = measureBandwidthGBs(threads);
  console.log(`memory read bandwidth (${threads} threads, same run): ${bw.toFixed(1)} GB/s`);
  console.log('model                                    loops  tensor MB  MB/step  load ms  TTFT ms (prompt)  prefill tok/s  decode tok/s  roofline tok/s  % roofline');
  for (const r of results) {
    r.rooflineTokS = (bw * 1e3) / r.stepMB;
    console.log(
      `${r.model.padEnd(40)}${(r.loops === null ? '-' : String(r.loops)).padStart(5)}  ${r.tensorMB.toFixed(1).padStart(10)}${r.stepMB.toFixed(1).padStart(9)}${r.loadMs.toFixed(0).padStart(9)}` +
        `${r.ttftMs.toFixed(1).padStart(9)} (${values.prompt})${r.prefillTokS.toFixed(0).padStart(14)}` +
        `${r.decodeTokS.toFixed(1).padStart(14)}${r.rooflineTokS.toFixed(1).padStart(16)}` +
        `${((100 * r.decodeTokS) / r.rooflineTokS).toFixed(1).padStart(11)}%`,
    );
  }
  for (const r of results) {
    if (r.loops !== null && r.loops !== results.find((x) => x.model === r.model)?.loops) continue; // first run per model
    console.log(
      `${r.model}: RSS growth after load + first prompt ${r.rssGrowthMB.toFixed(0)} MB = ` +
        `${(r.rssGrowthMB / r.tensorMB).toFixed(2)}× the tensor bytes (weights mapped, not copied)`,
    );
  }
  console.log(JSON.stringify({ bench: 'decode', threads, bandwidthGBs: bw, results }));
}

function benchKernelsCmd(values: BenchValues<'kernels'>): void {
  if (!existsSync(benchKernels)) throw new Error(`${benchKernels} is missing: run \`npm run build\` first`);
  const r = spawnSync(benchKernels, toArgv(values), { stdio: 'inherit' });
  if (r.status !== 0) throw new Error(`bench_kernels exited with ${r.status}`);
}

/** Where help and usage go; the benchmarks' own figures go to stdout with console.log. */
export interface BenchIo {
  out: (s: string) => void;
  err: (s: string) => void;
}

const consoleIo: BenchIo = { out: (s) => process.stdout.write(s), err: (s) => process.stderr.write(s) };

/**
 * `braid bench <name> [options]`: 0 done or help shown; a usage mistake throws
 * ConfigError (the CLI's exit code 2), a failing benchmark throws its error.
 */
export async function runBench(args: string[], io: BenchIo = consoleIo): Promise<number> {
  const [which, ...rest] = args;
  if (which === '--help' || which === '-h' || which === 'help') {
    io.out(benchHelp());
    return 0;
  }
  const names = Object.keys(BENCHES).join(', ');
  if (which === undefined) throw new ConfigError(`name a benchmark: ${names} (braid bench --help)`);
  if (!isBenchName(which)) throw new ConfigError(`unknown benchmark '${which}' (one of ${names}; braid bench --help)`);
  return runNamed(which, rest, io);
}

/** Each benchmark by name; a mapped type, so RUN[name] takes exactly BenchValues<name>. */
const RUN: { [N in BenchName]: (values: BenchValues<N>) => void | Promise<void> } = {
  kernels: benchKernelsCmd,
  decode: benchDecode,
  grammar: async (v) => (await import('./bench-grammar.ts')).benchGrammar(v),
  valve: async (v) => (await import('./bench-valve.ts')).benchValve(v),
  train: async (v) => (await import('./bench-train.ts')).benchTrain(v),
  finetune: async (v) => (await import('./bench-finetune.ts')).benchFinetune(v),
  moa: async (v) => (await import('./bench-moa.ts')).benchMoa(v),
};

async function runNamed<N extends BenchName>(name: N, args: readonly string[], io: BenchIo): Promise<number> {
  const parsed = parseBenchArgs(name, args);
  if (parsed.help) {
    io.out(benchNameHelp(name));
    return 0;
  }
  await RUN[name](parsed.values);
  return 0;
}
