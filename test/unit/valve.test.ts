import { describe, expect, it } from 'vitest';
import {
  EntropyValve,
  MODE_LOOPS,
  VALVE_THRESHOLD_BITS,
  entropyBits,
  valveLevel,
} from '../../engine/valve/valve.ts';

/** Logits whose softmax is uniform over the first k of n tokens (the rest ~0): entropy log2 k. */
function uniformOver(k: number, n = 64): Float32Array {
  const l = new Float32Array(n).fill(-1e4);
  for (let i = 0; i < k; i++) l[i] = 3.5;
  return l;
}

describe('entropyBits', () => {
  it('is log2 k for a uniform distribution over k tokens, 0 for a one-hot one', () => {
    expect(entropyBits(uniformOver(1))).toBeCloseTo(0, 9);
    expect(entropyBits(uniformOver(2))).toBeCloseTo(1, 9);
    expect(entropyBits(uniformOver(8))).toBeCloseTo(3, 9);
    expect(entropyBits(new Float32Array(1024))).toBeCloseTo(10, 9);
  });

  it('matches −Σ p log2 p for an arbitrary distribution and ignores a constant shift', () => {
    const l = Float32Array.from([0.3, -1.2, 2.0, 0.0, 1.1]);
    const z = l.reduce((a, x) => a + Math.exp(x), 0);
    const h = -Array.from(l).reduce((a, x) => a + (Math.exp(x) / z) * Math.log2(Math.exp(x) / z), 0);
    expect(entropyBits(l)).toBeCloseTo(h, 9);
    expect(entropyBits(l.map((x) => x + 1000))).toBeCloseTo(h, 4); // float32 rounding of the shifted values
  });

  it('rejects logits without a finite maximum', () => {
    expect(() => entropyBits(new Float32Array([Number.NaN, Number.NaN]))).toThrow(RangeError);
  });
});

describe('valve policy', () => {
  it('levels: 1 below threshold/2, 2 below the threshold, else 4 (threshold 2.0 bits)', () => {
    expect(VALVE_THRESHOLD_BITS).toBe(2);
    expect(valveLevel(0)).toBe(1);
    expect(valveLevel(0.999)).toBe(1);
    expect(valveLevel(1.0)).toBe(2);
    expect(valveLevel(1.999)).toBe(2);
    expect(valveLevel(2.0)).toBe(4);
    expect(valveLevel(9)).toBe(4);
  });

  it('each mode caps the level: fast 1, balanced 2, reasoning 4', () => {
    expect(MODE_LOOPS).toEqual({ fast: 1, balanced: 2, reasoning: 4 });
    const low = uniformOver(1); // 0 bits
    const mid = uniformOver(3); // 1.58 bits
    const high = uniformOver(16); // 4 bits
    const pick = (mode: 'fast' | 'balanced' | 'reasoning') => {
      const v = new EntropyValve(mode, 6);
      return [v.next(low), v.next(mid), v.next(high)];
    };
    expect(pick('fast')).toEqual([1, 1, 1]);
    expect(pick('balanced')).toEqual([1, 2, 2]);
    expect(pick('reasoning')).toEqual([1, 2, 4]);
  });

  it('the prompt runs at the mode cap, clamped to the model’s chimera.loop.max', () => {
    expect(new EntropyValve('reasoning', 6).promptLoops).toBe(4);
    expect(new EntropyValve('balanced', 6).promptLoops).toBe(2);
    expect(new EntropyValve('reasoning', 3).promptLoops).toBe(3);
    expect(new EntropyValve('reasoning', 3).next(uniformOver(32))).toBe(3);
  });

  it('is inert for a model without looping (loopMax 0)', () => {
    const v = new EntropyValve('reasoning', 0);
    expect(v.looping).toBe(false);
    expect(v.promptLoops).toBe(1);
    expect(v.next(uniformOver(32))).toBe(1);
    expect(() => new EntropyValve('fast', -1)).toThrow(RangeError);
  });

  it('reports the mean loops of the recorded steps', () => {
    const v = new EntropyValve('reasoning', 6);
    expect(v.meanLoops).toBe(0);
    for (const n of [4, 1, 2, 1]) v.record(n);
    expect(v.meanLoops).toBe(2);
  });
});
