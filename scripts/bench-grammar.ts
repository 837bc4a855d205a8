/**
 * `npm run bench -- grammar [--gens N] [--tokens N]` — time of the grammar mask
 * + debt ledger per generated token (DebtLedger.constrain: mask lookup or trie
 * walk, budget filter, pressure, writing the logits), at the default model's
 * vocabulary (4096) and at a synthetic 50k-token vocabulary.
 *
 * No model runs: logits are seeded noise, sampled at temperature 1 through the
 * mask, over schemas from the acceptance corpus. The same-run reference is the
 * naive mask (every token's bytes stepped through the automaton, no trie, no
 * cache) timed on the states the generations visited.
 */
import { join } from 'node:path';
import { readGguf } from '../engine/gguf/reader.ts';
import { DEAD } from '../engine/grammar/automaton.ts';
import { jsonSchemaGrammar } from '../engine/grammar/json-schema.ts';
import { CompiledConstraint, Matcher } from '../engine/grammar/matcher.ts';
import { TokenTrie } from '../engine/grammar/token-trie.ts';
import { DebtLedger } from '../engine/ledger/ledger.ts';
import { Prng } from '../engine/sampler/prng.ts';
import { loadTokenizer } from '../engine/tokenizer/load.ts';
import type { StreamDecoder, Tokenizer } from '../engine/types.ts';
import { SCHEMAS } from '../test/grammar/schemas.ts';
import type { BenchValues } from './bench-usage.ts';

const root = join(import.meta.dirname, '..');

/** A vocabulary given as byte strings (the synthetic 50k one): greedy longest-match encode. */
class ListTokenizer implements Tokenizer {
  readonly bosId = null;
  readonly eosId: number;
  readonly stopIds: ReadonlySet<number>;
  readonly specialIds: ReadonlySet<number>;
  private readonly byKey = new Map<string, number>();
  private readonly longest: number;

  constructor(private readonly vocab: Uint8Array[]) {
    this.eosId = vocab.length - 1;
    this.stopIds = new Set([this.eosId]);
    this.specialIds = new Set([this.eosId]);
    vocab.forEach((b, id) => this.byKey.set(Buffer.from(b).toString('latin1'), id));
    this.longest = Math.max(...vocab.map((b) => b.length));
  }
  get vocabSize(): number {
    return this.vocab.length;
  }
  encode(text: string): number[] {
    const bytes = Buffer.from(text, 'utf8').toString('latin1');
    const out: number[] = [];
    for (let i = 0; i < bytes.length; ) {
      for (let n = Math.min(this.longest, bytes.length - i); n > 0; n--) {
        const id = this.byKey.get(bytes.slice(i, i + n));
        if (id !== undefined) {
          out.push(id);
          i += n;
          break;
        }
      }
    }
    return out;
  }
  decode(ids: readonly number[]): string {
    return Buffer.concat(ids.map((id) => this.vocab[id]!)).toString('utf8');
  }
  tokenBytes(id: number): Uint8Array {
    return this.vocab[id]!;
  }
  createStreamDecoder(): StreamDecoder {
    const d = new TextDecoder();
    return { push: (id) => d.decode(this.vocab[id]!, { stream: true }), flush: () => d.decode() };
  }
}

/**
 * 50k tokens, deterministically: the 256 bytes, the model's tokens, then
 * concatenations of two or three of them (like BPE merges) until 50k, and eos.
 */
function syntheticVocab(base: Tokenizer, size: number): ListTokenizer {
  const seen = new Set<string>();
  const vocab: Uint8Array[] = [];
  const add = (b: Uint8Array) => {
    const k = Buffer.from(b).toString('latin1');
    if (b.length === 0 || seen.has(k)) return;
    seen.add(k);
    vocab.push(b);
  };
  for (let b = 0; b < 256; b++) add(Uint8Array.of(b));
  const pieces: Uint8Array[] = [];
  for (let id = 0; id < base.vocabSize; id++) if (!base.specialIds.has(id)) pieces.push(base.tokenBytes(id));
  pieces.forEach(add);
  const rng = new Prng(50_000);
  while (vocab.length < size - 1) {
    const n = rng.next() < 0.7 ? 2 : 3;
    const parts = Array.from({ length: n }, () => pieces[Math.floor(rng.next() * pieces.length)]!);
    const joined = Buffer.concat(parts);
    if (joined.length <= 24) add(joined);
  }
  vocab.push(new TextEncoder().encode('<eos>'));
  return new ListTokenizer(vocab);
}

const pct = (xs: number[], p: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))] ?? NaN;
};

interface Result {
  vocab: number;
  steps: number;
  p50us: number;
  p99us: number;
  meanUs: number;
  coldP99us: number;
  naiveMeanUs: number;
  trieNodes: number;
}

function benchVocab(tok: Tokenizer, gens: number, maxTokens: number): Result {
  const trie = new TokenTrie(Array.from({ length: tok.vocabSize }, (_, id) => tok.tokenBytes(id)), tok.specialIds, tok.stopIds);
  const schemas = SCHEMAS.filter((_, i) => i % 5 === 0);
  const all: number[] = [];
  const cold: number[] = [];
  const visited: { c: CompiledConstraint; state: number }[] = [];
  const rng = new Prng(7);
  const logits = new Float32Array(tok.vocabSize);
  for (const { schema } of schemas) {
    const c = new CompiledConstraint(jsonSchemaGrammar(schema), trie);
    for (let g = 0; g < gens; g++) {
      const ledger = new DebtLedger(new Matcher(c), tok, maxTokens);
      for (let step = 0; step < maxTokens; step++) {
        for (let i = 0; i < logits.length; i++) logits[i] = 3 * rng.next();
        if (rng.next() < 0.05) visited.push({ c, state: ledger.matcher.state });
        const t0 = performance.now();
        ledger.constrain(logits, maxTokens - step);
        const us = (performance.now() - t0) * 1000;
        all.push(us);
        if (g === 0) cold.push(us);
        // Temperature-1 draw from the masked logits (Gumbel-max).
        let best = -1;
        let bestV = -Infinity;
        for (let i = 0; i < logits.length; i++) {
          const v = logits[i]!;
          if (v === -Infinity) continue;
          const gv = v - Math.log(-Math.log(rng.next() + 1e-12) + 1e-12);
          if (gv > bestV) [best, bestV] = [i, gv];
        }
        if (best < 0 || tok.stopIds.has(best)) break;
        ledger.accept(best);
      }
    }
  }
  // Reference: the naive mask on a sample of the visited states.
  const naive: number[] = [];
  for (const { c, state } of visited.slice(0, 40)) {
    const t0 = performance.now();
    let allowed = 0;
    for (let id = 0; id < tok.vocabSize; id++) if (c.automaton.stepBytes(state, tok.tokenBytes(id)) !== DEAD) allowed++;
    naive.push((performance.now() - t0) * 1000);
    if (allowed < 0) throw new Error("unreachable");
  }
  return {
    vocab: tok.vocabSize,
    steps: all.length,
    p50us: pct(all, 50),
    p99us: pct(all, 99),
    meanUs: all.reduce((a, b) => a + b, 0) / all.length,
    coldP99us: pct(cold, 99),
    naiveMeanUs: naive.reduce((a, b) => a + b, 0) / Math.max(1, naive.length),
    trieNodes: trie.nodeCount,
  };
}

export async function benchGrammar(values: BenchValues<'grammar'>): Promise<void> {
  const gens = values.gens;
  const maxTokens = values.tokens;
  const file = await readGguf(join(root, 'models/chimera-tiny.gguf'));
  const base = loadTokenizer(file.metadata);
  const t0 = performance.now();
  const big = syntheticVocab(base, 50_000);
  console.log(`synthetic 50k vocabulary built in ${(performance.now() - t0).toFixed(0)} ms`);
  console.log(`schemas: every 5th of the acceptance corpus (${Math.ceil(SCHEMAS.length / 5)}), ${gens} generations each, max_tokens ${maxTokens}, temperature 1 on noise logits`);
  console.log('vocab    steps  p50 µs  p99 µs  mean µs  first-gen p99 µs  naive mask µs  speed-up (mean)  trie nodes');
  const results: Result[] = [];
  for (const tok of [base, big]) {
    const r = benchVocab(tok, gens, maxTokens);
    results.push(r);
    console.log(
      `${String(r.vocab).padEnd(7)}${String(r.steps).padStart(7)}${r.p50us.toFixed(1).padStart(8)}${r.p99us.toFixed(1).padStart(8)}` +
        `${r.meanUs.toFixed(1).padStart(9)}${r.coldP99us.toFixed(0).padStart(18)}${r.naiveMeanUs.toFixed(0).padStart(15)}` +
        `${(r.naiveMeanUs / r.meanUs).toFixed(0).padStart(16)}×${String(r.trieNodes).padStart(12)}`,
    );
  }
  console.log(JSON.stringify({ bench: 'grammar', gens, maxTokens, results }));
}
