/** The lr schedule: warmup ramp, cosine shape, floor, and its validation. */
import { describe, expect, it } from 'vitest';
import { learningRate, validateSchedule, type LrSchedule } from '../../engine/training/schedule.ts';

const s: LrSchedule = { peak: 1e-3, warmup: 10, total: 110, minRatio: 0.1 };

describe('learningRate', () => {
  it('ramps linearly over warmup, starting above zero', () => {
    expect(learningRate(s, 0)).toBeCloseTo(1e-4, 12);
    expect(learningRate(s, 4)).toBeCloseTo(5e-4, 12);
    expect(learningRate(s, 9)).toBeCloseTo(1e-3, 12);
  });

  it('decays by a cosine from the peak to the floor at the last step', () => {
    expect(learningRate(s, 10)).toBeCloseTo(1e-3, 12);
    // halfway through the decay: floor + (peak - floor) / 2
    const odd = { ...s, total: 111 }; // 100 decay steps, so the midpoint is a whole step
    expect(learningRate(odd, 60)).toBeCloseTo(1e-4 + 0.45e-3, 12);
    expect(learningRate(s, 109)).toBeCloseTo(1e-4, 12);
    expect(learningRate(s, 500)).toBeCloseTo(1e-4, 12);
    for (let i = 11; i < 110; i++) expect(learningRate(s, i)).toBeLessThan(learningRate(s, i - 1));
  });

  it('handles no warmup and a one-step run', () => {
    expect(learningRate({ ...s, warmup: 0 }, 0)).toBe(1e-3);
    expect(learningRate({ peak: 2, warmup: 0, total: 1, minRatio: 0 }, 0)).toBe(2);
  });

  it('rejects bad schedules and steps with a message naming the field', () => {
    expect(() => validateSchedule({ ...s, warmup: 200 })).toThrow(/warmup 200 exceeds total steps 110/);
    expect(() => validateSchedule({ ...s, peak: 0 })).toThrow(/peak lr must be > 0/);
    expect(() => validateSchedule({ ...s, minRatio: 1.5 })).toThrow(/min lr ratio/);
    expect(() => learningRate(s, -1)).toThrow(/non-negative integer/);
  });
});
