/**
 * The entropy valve's per-step signals (seed `entropy_valve.metrics`), gathered where generation
 * has them. The valve (valve.ts) turns them into a loop count; this file only measures.
 *
 * Implemented (docs/architecture.md, "Entropy valve"):
 *   entropy            bits of the last step's distribution (valve.ts entropyBits)
 *   grammar_branching  log2 of how many tokens the request's grammar + debt ledger allow at the
 *                      step the loops will compute (a forced token: 0 bits)
 *   debt_pressure      the debt ledger's logit pressure at that step (seed
 *                      `debt_ledger.pressure_weight` × (debt / budget)², so 0..0.3)
 *   queue_depth        requests waiting for a slot of this model (engine/scheduler.ts)
 * Not implemented: span_energy_margin and sketch_instability (the C forward computes the span
 * risk gate and the SK sketches but exposes neither per step; reading them would need a new
 * output from every eval), entity_conflicts (nothing tracks entities).
 */
import type { DebtLedger } from '../ledger/ledger.ts';

export interface ValveSignals {
  /** Entropy in bits of the last step's distribution (temperature 1, before any transform). */
  entropyBits: number;
  /** log2 of the tokens the grammar allows at the next step; absent: unconstrained. */
  branchingBits?: number;
  /** The debt ledger's pressure at the next step, 0..pressure_weight; absent: no ledger. */
  debtPressure?: number;
  /** Requests queued for a slot of this model; absent: 0. */
  queueDepth?: number;
}

/**
 * The signals for the step after a sampled token: `entropyBits` of the distribution it was
 * sampled from, and — read after the ledger accepted the token, so they describe the step the
 * next loops will compute — the grammar's branching and the ledger's pressure with `remaining`
 * tokens left for that step, plus the scheduler's queue depth.
 */
export function gatherSignals(
  entropyBits: number,
  sources: { ledger: DebtLedger | null; remaining: number; queueDepth: number },
): ValveSignals {
  const s: ValveSignals = { entropyBits, queueDepth: sources.queueDepth };
  const { ledger, remaining } = sources;
  if (ledger !== null) {
    s.branchingBits = Math.log2(Math.max(1, ledger.allowedCount(remaining)));
    s.debtPressure = ledger.pressure(remaining);
  }
  return s;
}
