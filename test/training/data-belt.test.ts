import { describe, expect, it } from 'vitest';
import { beltSpan, beltWindowCount, beltWindows, NO_TARGET, type BeltShape } from '../../engine/training/data/belt.ts';
import type { TrainingDocument } from '../../engine/training/data/encode.ts';
import { packDocuments, type PackedStream } from '../../engine/training/data/pack.ts';

const EOS = 0;
const PAD = 0;

function doc(tokens: number[], mask?: number[]): TrainingDocument {
  return { tokens: Int32Array.from(tokens), lossMask: Uint8Array.from(mask ?? tokens.map(() => 1)) };
}

/** A stream of ids 1..n (so position p holds p) with a given mask. */
function ramp(n: number, masked: (p: number) => boolean = () => true): PackedStream {
  return {
    tokens: Int32Array.from({ length: n }, (_, p) => p),
    lossMask: Uint8Array.from({ length: n }, (_, p) => (masked(p) ? 1 : 0)),
  };
}

/** For each stream position, how many windows have it as a target (targets are position ids). */
function targetCounts(stream: PackedStream, shape: BeltShape): { counts: number[]; windows: number } {
  const counts = new Array<number>(stream.tokens.length).fill(0);
  let windows = 0;
  for (const w of beltWindows(stream, shape, PAD)) {
    windows++;
    expect(w.tokens).toHaveLength(shape.window);
    for (const t of w.targets) if (t !== NO_TARGET) counts[t]!++;
  }
  return { counts, windows };
}

describe('token packing', () => {
  it('separates documents with EOS (acting as BOS too) and carries the masks', () => {
    const s = packDocuments([doc([5, 6, 7]), doc([]), doc([8, 9], [0, 1]), doc([3, 4], [1, 0])], { eosId: EOS, bosId: EOS });
    expect([...s.tokens]).toEqual([EOS, 5, 6, 7, EOS, 8, 9, EOS, 3, 4, EOS]);
    // Leading BOS: context; EOS after text: a target; after a document ending in context (a chat): not.
    expect([...s.lossMask]).toEqual([0, 1, 1, 1, 1, 0, 1, 1, 1, 0, 0]);
  });

  it('adds a separate BOS when the tokenizer has one', () => {
    const s = packDocuments([doc([5]), doc([6])], { eosId: 1, bosId: 2 });
    expect([...s.tokens]).toEqual([2, 5, 1, 2, 6, 1]);
    expect([...s.lossMask]).toEqual([0, 1, 1, 0, 1, 1]);
    expect([...packDocuments([doc([5])], { eosId: 1, bosId: null }).tokens]).toEqual([5, 1]);
  });
});

describe('belt-fed windows', () => {
  it('without overlap: consecutive windows, every target exactly once, last window padded', () => {
    const stream = ramp(23);
    const shape = { window: 8, overlap: 0 };
    const { counts, windows } = targetCounts(stream, shape);
    expect(windows).toBe(3); // 22 targets in windows of 8: 8 + 8 + 6 and 2 padded
    expect(beltWindowCount(23, shape)).toBe(3);
    expect(counts).toEqual([0, ...new Array<number>(22).fill(1)]);
    const all = [...beltWindows(stream, shape, PAD)];
    expect([...all[1]!.tokens]).toEqual([8, 9, 10, 11, 12, 13, 14, 15]);
    expect([...all[1]!.targets]).toEqual([9, 10, 11, 12, 13, 14, 15, 16]);
    expect([...all[2]!.tokens]).toEqual([16, 17, 18, 19, 20, 21, 22, PAD]);
    expect([...all[2]!.targets]).toEqual([17, 18, 19, 20, 21, 22, NO_TARGET, NO_TARGET]);
  });

  it('with overlap: window i starts at i·(T−o) and the repeated positions are context only', () => {
    const stream = ramp(30);
    const shape = { window: 8, overlap: 3 };
    const { counts, windows } = targetCounts(stream, shape);
    expect(windows).toBe(beltWindowCount(30, shape));
    expect(counts).toEqual([0, ...new Array<number>(29).fill(1)]);
    const w1 = [...beltWindows(stream, shape, PAD)][1]!;
    expect([...w1.tokens]).toEqual([5, 6, 7, 8, 9, 10, 11, 12]);
    expect([...w1.targets]).toEqual([NO_TARGET, NO_TARGET, NO_TARGET, 9, 10, 11, 12, 13]);
  });

  it('covers every target once for many lengths, windows and overlaps; masked positions never', () => {
    for (const n of [1, 2, 9, 10, 11, 57, 64, 65, 100]) {
      for (const window of [1, 4, 9, 16]) {
        for (const overlap of [0, 1, 3, window - 1].filter((o) => o >= 0 && o < window)) {
          const masked = (p: number) => p % 5 !== 2;
          const stream = ramp(n, masked);
          const { counts, windows } = targetCounts(stream, { window, overlap });
          expect(windows).toBe(beltWindowCount(n, { window, overlap }));
          counts.forEach((c, p) => expect(c).toBe(p > 0 && masked(p) ? 1 : 0));
          // No window more than needed: the last one has at least one new position.
          if (windows > 1) expect((windows - 1) * (window - overlap) + overlap).toBeLessThan(n - 1);
        }
      }
    }
  });

  it('beltSpan: n windows exactly tile n·(T−o)+o targets', () => {
    const shape = { window: 16, overlap: 4 };
    expect(beltWindowCount(beltSpan(5, shape) + 1, shape)).toBe(5);
    expect(beltWindowCount(beltSpan(5, shape) + 2, shape)).toBe(6);
    expect(() => beltWindowCount(10, { window: 4, overlap: 4 })).toThrow(/overlap/);
  });
});
