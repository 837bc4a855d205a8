/**
 * Count-based baselines over the model's own token vocabulary: a unigram, two
 * bigrams and a Kneser–Ney trigram, so "the model beats n-grams" is measured on
 * the same tokens, the same held-out text and the same bytes.
 *
 * Documents are seen the way training packs them (pack.ts): a start token
 * (BOS, or EOS for a tokenizer without one), the text, then EOS. Counts take
 * the text tokens and the closing EOS as targets; scoring (ngramNats) counts
 * the text tokens only, as the model's scoring does (model-text.ts).
 *
 * Smoothing parameters are chosen on a dev slice of the training documents,
 * never on the text that is reported, then the counts of the dev slice are
 * added before the held-out text is scored.
 */

export interface NgramVocabulary {
  vocabSize: number;
  /** Token before a document's first token (BOS; EOS when the tokenizer has no BOS). */
  startId: number;
  eosId: number;
}

/** Unigram and bigram counts, with the type counts Kneser–Ney needs. Additive: add() more documents at any time. */
export class NgramCounts {
  /** c(w): times w is a target. */
  readonly unigram: Float64Array;
  /** c(v·): times v is the history of a target. */
  readonly history: Float64Array;
  /** N1+(v·): distinct tokens seen after v. */
  readonly followers: Uint32Array;
  /** N1+(·w): distinct tokens seen before w. */
  readonly predecessors: Uint32Array;
  /** c(vw), keyed v·V + w (a few hundred thousand pairs; a dense V² table would be 128 MB). */
  readonly bigram = new Map<number, number>();
  targets = 0;

  constructor(readonly vocab: NgramVocabulary) {
    const V = vocab.vocabSize;
    this.unigram = new Float64Array(V);
    this.history = new Float64Array(V);
    this.followers = new Uint32Array(V);
    this.predecessors = new Uint32Array(V);
  }

  /** The number of distinct bigrams seen, N1+(··). */
  get bigramTypes(): number {
    return this.bigram.size;
  }

  /** Adds one document (its text tokens; start and EOS are added here). */
  add(tokens: ArrayLike<number>): void {
    const { vocabSize: V, startId, eosId } = this.vocab;
    let prev = startId;
    for (let i = 0; i <= tokens.length; i++) {
      const next = i < tokens.length ? tokens[i]! : eosId;
      if (!(next >= 0 && next < V)) throw new RangeError(`token ${next} is outside the vocabulary of ${V}`);
      this.unigram[next]!++;
      this.history[prev]!++;
      this.targets++;
      const key = prev * V + next;
      const c = this.bigram.get(key);
      if (c === undefined) {
        this.followers[prev]!++;
        this.predecessors[next]!++;
      }
      this.bigram.set(key, (c ?? 0) + 1);
      prev = next;
    }
  }

  pair(prev: number, next: number): number {
    return this.bigram.get(prev * this.vocab.vocabSize + next) ?? 0;
  }
}

/** A fitted baseline: ln P(next | prev2 prev) (unigrams and bigrams ignore what they do not use). */
export interface NgramModel {
  readonly name: string;
  /** The smoothing parameter, e.g. "k=0.01". */
  readonly params: string;
  logProb(prev: number, next: number, prev2: number): number;
}

/**
 * Trigram counts for interpolated Kneser–Ney: c(uvw) and its history totals, and the
 * continuation counts of the two lower orders (N1+(·vw) for the bigram level, N1+(·w) over those
 * bigram types for the unigram level). Documents as NgramCounts sees them, with two start tokens.
 */
export class TrigramCounts {
  /** c(uvw), keyed (u·V + v)·V + w (exact in a double for V < 2^17). */
  readonly trigram = new Map<number, number>();
  /** c(uv·) and N1+(uv·), keyed u·V + v. */
  readonly context = new Map<number, number>();
  readonly contextTypes = new Map<number, number>();
  /** N1+(·vw), keyed v·V + w. */
  readonly middle = new Map<number, number>();
  /** N1+(·v·) = Σ_w N1+(·vw); |{w : N1+(·vw) > 0}|; |{v : N1+(·vw) > 0}|. */
  readonly middleHistory: Float64Array;
  readonly middleFollowers: Uint32Array;
  readonly lowPredecessors: Uint32Array;

  constructor(readonly vocab: NgramVocabulary) {
    const V = vocab.vocabSize;
    if (V >= 1 << 17) throw new RangeError(`a trigram key needs V < 131072, got ${V}`);
    this.middleHistory = new Float64Array(V);
    this.middleFollowers = new Uint32Array(V);
    this.lowPredecessors = new Uint32Array(V);
  }

  /** Distinct (v, w) with N1+(·vw) > 0. */
  get middleTypes(): number {
    return this.middle.size;
  }

  add(tokens: ArrayLike<number>): void {
    const { vocabSize: V, startId, eosId } = this.vocab;
    let u = startId;
    let v = startId;
    for (let i = 0; i <= tokens.length; i++) {
      const w = i < tokens.length ? tokens[i]! : eosId;
      if (!(w >= 0 && w < V)) throw new RangeError(`token ${w} is outside the vocabulary of ${V}`);
      const key = (u * V + v) * V + w;
      const ctx = u * V + v;
      const c = this.trigram.get(key) ?? 0;
      this.trigram.set(key, c + 1);
      this.context.set(ctx, (this.context.get(ctx) ?? 0) + 1);
      if (c === 0) {
        this.contextTypes.set(ctx, (this.contextTypes.get(ctx) ?? 0) + 1);
        const mid = v * V + w;
        const m = this.middle.get(mid) ?? 0;
        this.middle.set(mid, m + 1);
        this.middleHistory[v]!++;
        if (m === 0) {
          this.middleFollowers[v]!++;
          this.lowPredecessors[w]!++;
        }
      }
      u = v;
      v = w;
    }
  }
}

/**
 * Interpolated Kneser–Ney trigram, one absolute discount d at every level:
 *   P3(w|uv) = max(c(uvw) − d, 0)/c(uv·) + d·N1+(uv·)/c(uv·) · P2(w|v)        (P2 alone when c(uv·) = 0)
 *   P2(w|v)  = max(N1+(·vw) − d, 0)/N1+(·v·) + d·|{w': N1+(·vw') > 0}|/N1+(·v·) · P1(w)   (P1 alone when N1+(·v·) = 0)
 *   P1(w)    = max(N1+(·w) − d, 0)/T + d·|{w: N1+(·w) > 0}|/T · 1/V,   T = |{(v, w): N1+(·vw) > 0}|
 */
export function trigramKneserNey(c: TrigramCounts, d: number): NgramModel {
  const V = c.vocab.vocabSize;
  const types = c.middleTypes;
  let continued = 0;
  for (const n of c.lowPredecessors) if (n > 0) continued++;
  const p1 = (w: number) => (Math.max(c.lowPredecessors[w]! - d, 0) + (d * continued) / V) / types;
  const p2 = (v: number, w: number) => {
    const h = c.middleHistory[v]!;
    if (h === 0) return p1(w);
    return (Math.max((c.middle.get(v * V + w) ?? 0) - d, 0) + d * c.middleFollowers[v]! * p1(w)) / h;
  };
  return {
    name: 'trigram (Kneser-Ney)',
    params: `d=${d}`,
    logProb: (prev, next, prev2) => {
      const ctx = prev2 * V + prev;
      const h = c.context.get(ctx) ?? 0;
      if (h === 0) return Math.log(p2(prev, next));
      const tri = c.trigram.get(ctx * V + next) ?? 0;
      return Math.log((Math.max(tri - d, 0) + d * c.contextTypes.get(ctx)! * p2(prev, next)) / h);
    },
  };
}

/** Add-k unigram: (c(w) + k) / (N + kV). */
export function unigramAddK(c: NgramCounts, k: number): NgramModel {
  const V = c.vocab.vocabSize;
  return {
    name: 'unigram (add-k)',
    params: `k=${k}`,
    logProb: (_prev, next) => Math.log((c.unigram[next]! + k) / (c.targets + k * V)),
  };
}

/** Add-k bigram: (c(vw) + k) / (c(v·) + kV). */
export function bigramAddK(c: NgramCounts, k: number): NgramModel {
  const V = c.vocab.vocabSize;
  return {
    name: 'bigram (add-k)',
    params: `k=${k}`,
    logProb: (prev, next) => Math.log((c.pair(prev, next) + k) / (c.history[prev]! + k * V)),
  };
}

/**
 * Interpolated Kneser–Ney bigram with one absolute discount d at both levels:
 *   P(w|v)   = max(c(vw) − d, 0)/c(v·) + d·N1+(v·)/c(v·) · Pc(w)     (Pc(w) alone when c(v·) = 0)
 *   Pc(w)    = max(N1+(·w) − d, 0)/N1+(··) + d·|{w: N1+(·w) > 0}|/N1+(··) · 1/V
 * The continuation unigram Pc falls back to uniform, so no token has probability 0.
 */
export function bigramKneserNey(c: NgramCounts, d: number): NgramModel {
  const V = c.vocab.vocabSize;
  const types = c.bigramTypes;
  let continued = 0;
  for (const n of c.predecessors) if (n > 0) continued++;
  const cont = (w: number) => (Math.max(c.predecessors[w]! - d, 0) + (d * continued) / V) / types;
  return {
    name: 'bigram (Kneser-Ney)',
    params: `d=${d}`,
    logProb: (prev, next) => {
      const h = c.history[prev]!;
      if (h === 0) return Math.log(cont(next));
      return Math.log((Math.max(c.pair(prev, next) - d, 0) + d * c.followers[prev]! * cont(next)) / h);
    },
  };
}

/** Σ −ln P over the text tokens of the documents (start tokens as the first histories; EOS not scored). */
export function ngramNats(model: NgramModel, docs: readonly ArrayLike<number>[], startId: number): { nats: number; targets: number } {
  let nats = 0;
  let targets = 0;
  for (const doc of docs) {
    let prev2 = startId;
    let prev = startId;
    for (let i = 0; i < doc.length; i++) {
      const next = doc[i]!;
      nats -= model.logProb(prev, next, prev2);
      prev2 = prev;
      prev = next;
      targets++;
    }
  }
  return { nats, targets };
}

/** Grids searched on the dev slice (log-spaced for k; d in (0, 1) as KN wants). */
export const SMOOTHING_GRID = {
  unigramK: [0.001, 0.01, 0.1, 0.3, 1, 3],
  bigramK: [0.0001, 0.0003, 0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1],
  kneserNeyD: [0.5, 0.6, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95],
} as const;

export interface FittedBaseline {
  model: NgramModel;
  /** Dev-slice nats per token of each grid value tried, in grid order. */
  tuning: { value: number; natsPerToken: number }[];
}

function tune(
  counts: NgramCounts,
  dev: readonly ArrayLike<number>[],
  grid: readonly number[],
  make: (v: number) => NgramModel,
): { best: number; tuning: { value: number; natsPerToken: number }[] } {
  const tuning = grid.map((value) => {
    const r = ngramNats(make(value), dev, counts.vocab.startId);
    return { value, natsPerToken: r.nats / r.targets };
  });
  const best = tuning.reduce((a, b) => (b.natsPerToken < a.natsPerToken ? b : a));
  return { best: best.value, tuning };
}

/**
 * The four baselines: parameters tuned on `dev` with counts of `train`, then
 * refitted on train + dev with the chosen parameters.
 */
export function fitBaselines(
  train: readonly ArrayLike<number>[],
  dev: readonly ArrayLike<number>[],
  vocab: NgramVocabulary,
): FittedBaseline[] {
  if (train.length === 0 || dev.length === 0) throw new Error('baselines need training documents and a dev slice');
  const counts = new NgramCounts(vocab);
  const trigrams = new TrigramCounts(vocab);
  for (const d of train) {
    counts.add(d);
    trigrams.add(d);
  }
  const families = [
    { grid: SMOOTHING_GRID.unigramK, make: (v: number) => unigramAddK(counts, v) },
    { grid: SMOOTHING_GRID.bigramK, make: (v: number) => bigramAddK(counts, v) },
    { grid: SMOOTHING_GRID.kneserNeyD, make: (v: number) => bigramKneserNey(counts, v) },
    { grid: SMOOTHING_GRID.kneserNeyD, make: (v: number) => trigramKneserNey(trigrams, v) },
  ];
  const tuned = families.map((f) => ({ ...f, ...tune(counts, dev, f.grid, f.make) }));
  for (const d of dev) {
    counts.add(d);
    trigrams.add(d);
  }
  // made again after the dev documents are counted (Kneser–Ney totals its types when made)
  return tuned.map((t) => ({ model: t.make(t.best), tuning: t.tuning }));
}
