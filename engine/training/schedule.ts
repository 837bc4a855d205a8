/**
 * The learning-rate schedule: linear warmup from 0 to the peak, then a cosine
 * decay from the peak to a floor (minRatio · peak) at the last step. A pure
 * function of the step, so a resumed run gets exactly the rates of an
 * uninterrupted one without storing anything.
 *
 * `step` is the 0-based index of the update being taken (the trainer's step
 * count before the update): step 0 is the first update.
 */

export interface LrSchedule {
  /** Peak learning rate, reached at the end of warmup. */
  peak: number;
  /** Warmup updates; the rate climbs linearly over them (the first is peak/warmup, not 0). */
  warmup: number;
  /** Total updates of the run; the cosine reaches the floor at the last one. */
  total: number;
  /** Floor as a fraction of the peak (0.1 → decays to 10 %). */
  minRatio: number;
}

export function validateSchedule(s: LrSchedule): void {
  const errors: string[] = [];
  if (!(Number.isFinite(s.peak) && s.peak > 0)) errors.push(`peak lr must be > 0, got ${s.peak}`);
  if (!Number.isInteger(s.total) || s.total < 1) errors.push(`total steps must be a positive integer, got ${s.total}`);
  if (!Number.isInteger(s.warmup) || s.warmup < 0) errors.push(`warmup must be a non-negative integer, got ${s.warmup}`);
  else if (Number.isInteger(s.total) && s.warmup > s.total) errors.push(`warmup ${s.warmup} exceeds total steps ${s.total}`);
  if (!(s.minRatio >= 0 && s.minRatio <= 1)) errors.push(`min lr ratio must be in [0, 1], got ${s.minRatio}`);
  if (errors.length > 0) throw new Error(`invalid lr schedule: ${errors.join('; ')}`);
}

/** The learning rate of update `step` (0-based). Steps past the end stay at the floor. */
export function learningRate(s: LrSchedule, step: number): number {
  if (!Number.isInteger(step) || step < 0) throw new Error(`lr: step must be a non-negative integer, got ${step}`);
  // Warmup starts at peak/warmup rather than 0 so the first update is not wasted.
  if (step < s.warmup) return (s.peak * (step + 1)) / s.warmup;
  const floor = s.peak * s.minRatio;
  const decaySteps = s.total - s.warmup - 1;
  if (decaySteps <= 0) return s.peak;
  const progress = Math.min(1, (step - s.warmup) / decaySteps);
  return floor + (s.peak - floor) * 0.5 * (1 + Math.cos(Math.PI * progress));
}
