import { describe, expect, it } from 'vitest';
import { InvalidRequestError } from '../../engine/errors.ts';
import { logSoftmax, topK } from '../../engine/sampler/logprobs.ts';
import {
  applyLogitBias,
  applyPresenceFrequency,
  applyRepetitionPenalty,
  REPETITION_WINDOW,
  TokenHistory,
} from '../../engine/sampler/penalties.ts';
import { Prng } from '../../engine/sampler/prng.ts';
import { Sampler } from '../../engine/sampler/sampler.ts';
import { argmax, drawToken } from '../../engine/sampler/truncate.ts';
import type { SamplingOptions } from '../../engine/types.ts';
import { greedySampling } from '../helpers/requests.ts';

const base: SamplingOptions = { ...greedySampling, temperature: 1, seed: 1234 };

/** Logits whose softmax is exactly `probs`. */
function logitsOf(probs: number[]): Float32Array {
  return Float32Array.from(probs.map((p) => Math.log(p)));
}

/** Empirical frequencies of drawToken over n seeded draws. */
function histogram(logits: Float32Array, opts: Partial<SamplingOptions>, n: number): number[] {
  const o = { ...base, ...opts };
  const rng = new Prng(99);
  const h = new Array<number>(logits.length).fill(0);
  for (let i = 0; i < n; i++) {
    const id = drawToken(logits, o, rng.next());
    h[id] = h[id]! + 1;
  }
  return h.map((c) => c / n);
}

describe('Prng (xoshiro128**)', () => {
  it('is reproducible for a seed and differs across seeds, including high bits', () => {
    const a = new Prng(42);
    const b = new Prng(42);
    const seqA = Array.from({ length: 8 }, () => a.nextU32());
    expect(Array.from({ length: 8 }, () => b.nextU32())).toEqual(seqA);
    const c = new Prng(43);
    expect(Array.from({ length: 8 }, () => c.nextU32())).not.toEqual(seqA);
    const hi = new Prng(42 + 2 ** 40);
    expect(Array.from({ length: 8 }, () => hi.nextU32())).not.toEqual(seqA);
  });

  it('gives roughly uniform floats in [0, 1)', () => {
    const r = new Prng(7);
    let sum = 0;
    let min = 1;
    let max = 0;
    for (let i = 0; i < 20000; i++) {
      const x = r.next();
      sum += x;
      min = Math.min(min, x);
      max = Math.max(max, x);
    }
    expect(sum / 20000).toBeGreaterThan(0.49);
    expect(sum / 20000).toBeLessThan(0.51);
    expect(min).toBeGreaterThanOrEqual(0);
    expect(max).toBeLessThan(1);
  });
});

describe('penalties', () => {
  it('presence and frequency follow the OpenAI formula', () => {
    const l = Float32Array.from([1, 1, 1]);
    applyPresenceFrequency(l, new Map([[0, 3], [2, 1]]), 0.5, 0.25);
    expect(Array.from(l)).toEqual([1 - 3 * 0.25 - 0.5, 1, 1 - 0.25 - 0.5]);
  });

  it('repetition penalty divides positive and multiplies negative logits', () => {
    const l = Float32Array.from([2, -2, 2]);
    applyRepetitionPenalty(l, [0, 1], 2);
    expect(Array.from(l)).toEqual([1, -4, 2]);
  });

  it('history counts only generated tokens but the window includes the prompt', () => {
    const h = new TokenHistory([5, 6]);
    h.push(7);
    h.push(7);
    expect(h.generatedCounts).toEqual(new Map([[7, 2]]));
    expect(h.recentIds()).toEqual(new Set([5, 6, 7]));
    for (let i = 0; i < REPETITION_WINDOW; i++) h.push(100 + i);
    expect(h.recentIds().has(5)).toBe(false);
  });

  it('logit_bias adds, and -100 bans outright', () => {
    const l = Float32Array.from([0, 0, 0]);
    applyLogitBias(l, new Map([[0, 3], [1, -100]]));
    expect(l[0]).toBe(3);
    expect(l[1]).toBe(-Infinity);
    expect(l[2]).toBe(0);
  });
});

describe('truncation', () => {
  const probs = [0.5, 0.25, 0.15, 0.1];
  const logits = logitsOf(probs);

  it('argmax takes the lowest id on ties', () => {
    expect(argmax(Float32Array.from([1, 3, 3, 2]))).toBe(1);
    expect(argmax(Float32Array.from([-Infinity, -Infinity]))).toBe(-1);
  });

  it('plain sampling matches the softmax distribution', () => {
    const h = histogram(logits, {}, 20000);
    probs.forEach((p, i) => expect(Math.abs(h[i]! - p)).toBeLessThan(0.02));
  });

  it('temperature sharpens (T<1) and flattens (T>1)', () => {
    const cold = histogram(logits, { temperature: 0.25 }, 5000);
    const hot = histogram(logits, { temperature: 4 }, 5000);
    expect(cold[0]).toBeGreaterThan(0.9);
    expect(hot[0]).toBeLessThan(0.4);
    expect(hot[3]).toBeGreaterThan(0.15);
  });

  it('top_k keeps the k most likely and renormalises', () => {
    const h = histogram(logits, { topK: 2 }, 12000);
    expect(h[2]).toBe(0);
    expect(h[3]).toBe(0);
    expect(Math.abs(h[0]! - 2 / 3)).toBeLessThan(0.02);
  });

  it('top_p keeps the smallest prefix reaching p', () => {
    // 0.5 + 0.25 = 0.75 >= 0.7: tokens 0 and 1 only.
    const h = histogram(logits, { topP: 0.7 }, 12000);
    expect(h[2]! + h[3]!).toBe(0);
    expect(Math.abs(h[1]! - 1 / 3)).toBeLessThan(0.02);
    // Just above 0.75 pulls in token 2.
    expect(histogram(logits, { topP: 0.76 }, 4000)[2]).toBeGreaterThan(0);
  });

  it('min_p drops tokens below min_p times the top probability', () => {
    // threshold 0.4 * 0.5 = 0.2: tokens 0 and 1 survive.
    const h = histogram(logits, { minP: 0.4 }, 8000);
    expect(h[2]! + h[3]!).toBe(0);
    expect(h[1]).toBeGreaterThan(0.25);
  });

  it('never draws a banned (-Infinity) token', () => {
    const l = Float32Array.from([-Infinity, 0, -Infinity]);
    expect(histogram(l, { topP: 0.9 }, 1000)).toEqual([0, 1, 0]);
    expect(drawToken(Float32Array.from([-Infinity]), base, 0.5)).toBe(-1);
  });
});

describe('logprobs', () => {
  it('log-softmax sums to one in probability space', () => {
    const lp = logSoftmax(Float32Array.from([1, 2, 3, -5]));
    const s = Array.from(lp).reduce((a, x) => a + Math.exp(x), 0);
    expect(s).toBeCloseTo(1, 6);
    expect(lp[2]! - lp[1]!).toBeCloseTo(1, 6);
  });

  it('topK returns the k best, most likely first', () => {
    const r = topK(Float32Array.from([0.1, 0.9, 0.5, 0.9, 0.2]), 3);
    expect(r.map((x) => x.id)).toEqual([1, 3, 2]);
    expect(topK(Float32Array.from([1, 2]), 0)).toEqual([]);
  });
});

describe('Sampler', () => {
  const V = 50;
  /** Pseudo-random but fixed logits per step. */
  function stepLogits(step: number): Float32Array {
    const r = new Prng(1000 + step);
    return Float32Array.from({ length: V }, () => r.next() * 4);
  }
  function generate(opts: Partial<SamplingOptions>, n: number, k: number | null = null) {
    const s = new Sampler({ ...base, ...opts }, [1, 2, 3], k);
    const out = [];
    for (let i = 0; i < n; i++) {
      const t = s.sample(stepLogits(i));
      s.accept(t.id);
      out.push(t);
    }
    return out;
  }

  it('same seed gives identical output, a different seed a different one', () => {
    const a = generate({ seed: 5 }, 40).map((t) => t.id);
    expect(generate({ seed: 5 }, 40).map((t) => t.id)).toEqual(a);
    expect(generate({ seed: 6 }, 40).map((t) => t.id)).not.toEqual(a);
  });

  it('temperature 0 is greedy regardless of seed', () => {
    const g = generate({ temperature: 0, seed: 1 }, 10).map((t) => t.id);
    expect(generate({ temperature: 0, seed: 2 }, 10).map((t) => t.id)).toEqual(g);
    expect(g).toEqual(Array.from({ length: 10 }, (_, i) => argmax(stepLogits(i))));
  });

  it('logit_bias +100 forces a token and -100 bans it', () => {
    expect(new Set(generate({ logitBias: new Map([[17, 100]]) }, 30).map((t) => t.id))).toEqual(new Set([17]));
    const greedy = argmax(stepLogits(0));
    const banned = generate({ temperature: 0, logitBias: new Map([[greedy, -100]]) }, 1)[0]!.id;
    expect(banned).not.toBe(greedy);
    const all = new Map(Array.from({ length: V }, (_, i) => [i, -100] as [number, number]));
    expect(() => generate({ logitBias: all }, 1)).toThrow(InvalidRequestError);
  });

  it('a large frequency penalty stops greedy decoding from repeating a token', () => {
    const s = new Sampler({ ...base, temperature: 0, frequencyPenalty: 100 }, [], null);
    const flat = new Float32Array(V).fill(1);
    flat[3] = 2;
    const seen = new Set<number>();
    for (let i = 0; i < 10; i++) {
      const { id } = s.sample(flat);
      expect(seen.has(id)).toBe(false);
      seen.add(id);
      s.accept(id);
    }
  });

  it('repetition penalty covers prompt tokens', () => {
    const l = new Float32Array(V).fill(0);
    l[2] = 1; // in the prompt [1, 2, 3]
    l[9] = 0.6;
    const s = new Sampler({ ...base, temperature: 0, repetitionPenalty: 2 }, [1, 2, 3], null);
    expect(s.sample(l).id).toBe(9);
  });

  it('reports logprobs before temperature and truncation, after bias', () => {
    const l = logitsOf([0.5, 0.25, 0.25]);
    const s = new Sampler({ ...base, temperature: 0.1, topK: 1, logitBias: new Map([[2, Math.log(2)]]) }, [], 2);
    const t = s.sample(l);
    // Bias makes tokens 0 and 2 equally likely (0.4 each), token 1 0.2.
    expect(t.logprob).toBeCloseTo(Math.log(0.4), 5);
    expect(t.topLogprobs!.map((x) => x.id)).toEqual([0, 2]);
    expect(t.topLogprobs![1]!.logprob).toBeCloseTo(Math.log(0.4), 5);
    expect(generate({}, 1)[0]!.logprob).toBeUndefined();
  });
});
