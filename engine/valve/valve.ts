/**
 * The entropy valve (ARCHITECTURES.md §2.12, seed `entropy_valve` + `modes`): per decode step,
 * the loop depth of a Parcae model's next neural step from the entropy of the distribution the
 * last step produced, lowered by the grammar's branching, raised by the debt ledger's pressure
 * and capped by the queue depth.
 *
 * Rule (docs/architecture.md, "Entropy valve"; signals from signals.ts):
 *   H = −Σ p log₂ p of softmax(logits) at temperature 1 (the model's own distribution, before
 *   any sampling transform, grammar mask or penalty)
 *   H' = min(H + (θ/2)·debt/pressure_weight, branching)   debt: the ledger's pressure (0..0.3,
 *                                                           full pressure lifts one level);
 *                                                           branching: log₂ allowed tokens (a
 *                                                           forced token → 0 → 1 loop)
 *   level = 1 if H' < θ/2, 2 if H' < θ, else 4              (θ = threshold_bits = 2.0;
 *                                                           FULL's low / medium / high)
 *   load cap = max(1, ⌊mode cap / 2^queue⌋)                 each waiting request halves the depth
 *   loops = min(level, load cap, chimera.loop.max)          mode caps: fast 1, balanced 2,
 *                                                           reasoning 4
 * The prompt has no previous distribution: it is evaluated at the mode cap (clamped likewise).
 * Not implemented: span energy margin, sketch instability, entity conflicts (signals.ts says
 * why) and the learned router.
 */
import { PRESSURE_WEIGHT } from '../ledger/ledger.ts';
import type { ValveSignals } from './signals.ts';

export const VALVE_MODES = ['fast', 'balanced', 'reasoning'] as const;
export type ValveMode = (typeof VALVE_MODES)[number];
export const DEFAULT_VALVE_MODE: ValveMode = 'balanced';

/** Seed `modes.*.loops`: the most loops a mode ever runs. */
export const MODE_LOOPS: Readonly<Record<ValveMode, number>> = { fast: 1, balanced: 2, reasoning: 4 };
/** Seed `entropy_valve.threshold_bits`. */
export const VALVE_THRESHOLD_BITS = 2.0;
/** Seed `entropy_valve.levels`: low / medium / high loops. */
export const VALVE_LEVELS = { low: 1, medium: 2, high: 4 } as const;

/** Entropy in bits of softmax(logits) (max-subtracted, accumulated in float64). */
export function entropyBits(logits: Float32Array): number {
  let max = -Infinity;
  for (let i = 0; i < logits.length; i++) if (logits[i]! > max) max = logits[i]!;
  if (!Number.isFinite(max)) throw new RangeError('entropyBits: logits have no finite maximum');
  let z = 0;
  let s = 0; // Σ e^(l−max)·(l−max)
  for (let i = 0; i < logits.length; i++) {
    const d = logits[i]! - max;
    const e = Math.exp(d);
    z += e;
    s += e * d;
  }
  // H = log z − Σ p d  (nats) → bits
  return Math.max(0, (Math.log(z) - s / z) / Math.LN2);
}

/** The valve level for an entropy, before the mode and model caps. */
export function valveLevel(bits: number, thresholdBits = VALVE_THRESHOLD_BITS): number {
  if (bits < thresholdBits / 2) return VALVE_LEVELS.low;
  if (bits < thresholdBits) return VALVE_LEVELS.medium;
  return VALVE_LEVELS.high;
}

/** The loop count for one step from its signals (the rule above); `cap` = min(mode cap, chimera.loop.max). */
export function signalLoops(s: ValveSignals, cap: number, thresholdBits = VALVE_THRESHOLD_BITS): number {
  const debt = s.debtPressure ?? 0;
  if (!(debt >= 0)) throw new RangeError(`debtPressure must be >= 0, got ${debt}`);
  const queue = s.queueDepth ?? 0;
  if (!Number.isInteger(queue) || queue < 0) throw new RangeError(`queueDepth must be an integer >= 0, got ${queue}`);
  const bits = Math.min(s.entropyBits + (thresholdBits / 2) * Math.min(1, debt / PRESSURE_WEIGHT), s.branchingBits ?? Infinity);
  const loadCap = Math.max(1, Math.floor(cap / 2 ** Math.min(queue, 30)));
  return Math.min(valveLevel(bits, thresholdBits), loadCap);
}

/**
 * One generation's valve. loopMax is the model's chimera.loop.max (0: the model does not loop,
 * and every count is 1 — the valve is inert). Counts every step it decides, for usage.
 */
export class EntropyValve {
  readonly cap: number;
  private steps = 0;
  private loopSum = 0;

  constructor(
    readonly mode: ValveMode,
    readonly loopMax: number,
    readonly thresholdBits = VALVE_THRESHOLD_BITS,
  ) {
    if (!Number.isInteger(loopMax) || loopMax < 0) throw new RangeError(`loopMax must be an integer >= 0, got ${loopMax}`);
    this.cap = loopMax === 0 ? 1 : Math.min(MODE_LOOPS[mode], loopMax);
  }

  get looping(): boolean {
    return this.loopMax > 0;
  }

  /** False when every step runs 1 loop whatever the signals (fast mode, or no looping). */
  get active(): boolean {
    return this.cap > 1;
  }

  /** Loops for the prompt (no previous distribution): the mode cap. */
  get promptLoops(): number {
    return this.cap;
  }

  /** Loops for the next step, given the logits the last step produced (entropy only). */
  next(logits: Float32Array): number {
    if (this.cap === 1) return 1;
    return this.decide({ entropyBits: entropyBits(logits) });
  }

  /** Loops for the next step from all its signals (signals.ts). */
  decide(s: ValveSignals): number {
    if (this.cap === 1) return 1;
    return Math.min(signalLoops(s, this.cap, this.thresholdBits), this.cap);
  }

  /** Records that a step whose logits were used ran `loops` iterations. */
  record(loops: number): void {
    this.steps++;
    this.loopSum += loops;
  }

  /** Mean loops over the recorded steps (0 before any). */
  get meanLoops(): number {
    return this.steps === 0 ? 0 : this.loopSum / this.steps;
  }
}
