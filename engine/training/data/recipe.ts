/**
 * A training recipe: the developmental curriculum of seed 000 §4.1 as data.
 * Phases (language → logic → transfer → depth) each have a mix of sources, a
 * replay share of earlier phases' mixes, and a window; the batch is
 * tokensPerStep / window, so tokens per step stay constant while windows grow
 * (inverse batch scaling: 8×256, 4×512, 2×1024, 1×2048 in the seed). Inside a
 * phase, GrowLength (seed 002 P1) can grow the window in stages.
 *
 * A recipe is plain JSON. planRecipe turns it into segments of steps with a
 * fixed shape; everything else (which tokens a step sees) is derived from
 * the plan, the sources and the seed (curriculum.ts).
 */
import { createHash } from 'node:crypto';
import { beltSpan } from './belt.ts';

/** One GrowLength stage: a fraction of the phase's window, for a fraction of its steps. */
export interface GrowStage {
  windowFraction: number;
  stepFraction: number;
}

/** Seed 002 hyper_training P1_growlength default_stages: [[0.125, 0.20], [0.25, 0.25], [0.5, 0.25], [1.0, 0.30]]. */
export const GROW_LENGTH_STAGES: readonly GrowStage[] = [
  { windowFraction: 0.125, stepFraction: 0.2 },
  { windowFraction: 0.25, stepFraction: 0.25 },
  { windowFraction: 0.5, stepFraction: 0.25 },
  { windowFraction: 1, stepFraction: 0.3 },
];

export interface PhaseRecipe {
  name: string;
  /** Share of the run's steps (normalised over the phases). */
  share: number;
  /** Window (sequence length) T at the end of the phase; batch = tokensPerStep / T. */
  window: number;
  /** Belt overlap o in tokens (0 ≤ o < every window of the phase). */
  overlap: number;
  /** Source name → weight, by tokens (normalised). */
  mix: Readonly<Record<string, number>>;
  /** Share of the phase's tokens drawn from earlier phases' mixes (0 for the first phase). */
  replay: number;
  /** GrowLength stages; absent = the full window throughout. */
  grow?: readonly GrowStage[];
}

export interface Recipe {
  name: string;
  /** Training tokens of the whole run (batch × window × steps). */
  totalTokens: number;
  /** batch × window, the same in every phase and stage. */
  tokensPerStep: number;
  phases: readonly PhaseRecipe[];
}

/** Steps of one shape: a phase, or one GrowLength stage of it. */
export interface PlanSegment {
  phase: string;
  phaseIndex: number;
  stage: number;
  firstStep: number;
  steps: number;
  batch: number;
  window: number;
  overlap: number;
  /** Where the segment starts in its phase's packed stream, on the belt's grid (window-plan.ts may move it later). */
  streamStart: number;
}

export interface RecipePlan {
  totalSteps: number;
  segments: PlanSegment[];
  /** Tokens each phase's packed stream must have on the grid (targets of all its windows, plus the first input). */
  phaseStreamLength: number[];
}

export class RecipeError extends Error {
  override readonly name = 'RecipeError';
}

function isPositiveInt(v: number): boolean {
  return Number.isInteger(v) && v > 0;
}

/** The windows of a phase, one per stage. */
function stageWindows(p: PhaseRecipe): number[] {
  return (p.grow ?? [{ windowFraction: 1, stepFraction: 1 }]).map((g) => p.window * g.windowFraction);
}

/** Throws a RecipeError listing every problem. */
export function validateRecipe(r: Recipe): void {
  const errors: string[] = [];
  if (!isPositiveInt(r.tokensPerStep)) errors.push(`tokensPerStep must be a positive integer, got ${r.tokensPerStep}`);
  if (!isPositiveInt(r.totalTokens)) errors.push(`totalTokens must be a positive integer, got ${r.totalTokens}`);
  else if (r.totalTokens < r.tokensPerStep) errors.push(`totalTokens ${r.totalTokens} is less than one step (${r.tokensPerStep})`);
  if (r.phases.length === 0) errors.push('a recipe needs at least one phase');
  const names = new Set<string>();
  r.phases.forEach((p, i) => {
    const at = `phase "${p.name}"`;
    if (names.has(p.name)) errors.push(`${at}: duplicate phase name`);
    names.add(p.name);
    if (!(p.share > 0 && Number.isFinite(p.share))) errors.push(`${at}: share must be > 0, got ${p.share}`);
    if (!(p.replay >= 0 && p.replay < 1)) errors.push(`${at}: replay must be in [0, 1), got ${p.replay}`);
    if (i === 0 && p.replay > 0) errors.push(`${at}: replay ${p.replay} but there is no earlier phase to replay`);
    const weights = Object.entries(p.mix);
    if (weights.length === 0) errors.push(`${at}: the mix names no source`);
    for (const [src, w] of weights) if (!(w > 0 && Number.isFinite(w))) errors.push(`${at}: weight of "${src}" must be > 0, got ${w}`);
    if (p.grow !== undefined) {
      if (p.grow.length === 0) errors.push(`${at}: grow has no stages`);
      if (p.grow.some((g) => !(g.stepFraction > 0) || !(g.windowFraction > 0 && g.windowFraction <= 1))) {
        errors.push(`${at}: grow stages need stepFraction > 0 and windowFraction in (0, 1]`);
      }
    }
    for (const w of stageWindows(p)) {
      if (!isPositiveInt(w)) errors.push(`${at}: window ${w} is not a positive integer (window ${p.window} × a grow fraction)`);
      else if (isPositiveInt(r.tokensPerStep) && r.tokensPerStep % w !== 0) {
        errors.push(`${at}: window ${w} does not divide tokensPerStep ${r.tokensPerStep}, so the batch would not be whole`);
      } else if (!(Number.isInteger(p.overlap) && p.overlap >= 0 && p.overlap < w)) {
        errors.push(`${at}: overlap ${p.overlap} must be an integer in [0, ${w}) for window ${w}`);
      }
    }
  });
  if (errors.length > 0) throw new RecipeError(`invalid recipe "${r.name}":\n  ${errors.join('\n  ')}`);
}

/**
 * Splits n into parts proportional to weights, rounding the cumulative sums
 * so the parts add up to n exactly.
 */
function apportion(n: number, weights: readonly number[]): number[] {
  const sum = weights.reduce((a, b) => a + b, 0);
  let acc = 0;
  let prev = 0;
  return weights.map((w) => {
    acc += w;
    const edge = Math.round((n * acc) / sum);
    const part = edge - prev;
    prev = edge;
    return part;
  });
}

/** The run's steps and shapes. Segments of zero steps are left out. */
export function planRecipe(r: Recipe): RecipePlan {
  validateRecipe(r);
  const totalSteps = Math.max(1, Math.round(r.totalTokens / r.tokensPerStep));
  const phaseSteps = apportion(
    totalSteps,
    r.phases.map((p) => p.share),
  );
  const segments: PlanSegment[] = [];
  const phaseStreamLength: number[] = [];
  let step = 0;
  r.phases.forEach((p, phaseIndex) => {
    const stages = p.grow ?? [{ windowFraction: 1, stepFraction: 1 }];
    const stageSteps = apportion(
      phaseSteps[phaseIndex]!,
      stages.map((g) => g.stepFraction),
    );
    // Consecutive segments share one token: the last target of one is the first input of the next.
    let streamStart = 0;
    stages.forEach((g, stage) => {
      const steps = stageSteps[stage]!;
      if (steps === 0) return;
      const window = p.window * g.windowFraction;
      const batch = r.tokensPerStep / window;
      segments.push({ phase: p.name, phaseIndex, stage, firstStep: step, steps, batch, window, overlap: p.overlap, streamStart });
      streamStart += beltSpan(batch * steps, { window, overlap: p.overlap });
      step += steps;
    });
    phaseStreamLength.push(streamStart + 1);
  });
  return { totalSteps, segments, phaseStreamLength };
}

/**
 * The recipe with one shape everywhere (a run's --batch/--seq-len): every
 * phase gets this window, no GrowLength, and an overlap capped at 1/16 of
 * the window so it stays valid. Phases, shares and mixes are kept.
 */
export function withFixedShape(r: Recipe, batch: number, window: number): Recipe {
  return {
    ...r,
    tokensPerStep: batch * window,
    phases: r.phases.map(({ grow: _grow, ...p }) => ({ ...p, window, overlap: Math.min(p.overlap, Math.floor(window / 16)) })),
  };
}

/** Key order fixed, so equal recipes serialise equally. */
function canonical(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(canonical);
  if (v !== null && typeof v === 'object') {
    return Object.fromEntries(
      Object.keys(v)
        .sort()
        .map((k) => [k, canonical((v as Record<string, unknown>)[k])]),
    );
  }
  return v;
}

/**
 * A hash of (recipe, seed): the batches a run sees are a function of these
 * (and of the source contents), so a checkpoint records it and a resume
 * under a different recipe can be refused.
 */
export function recipeFingerprint(r: Recipe, seed: number): string {
  return createHash('sha256')
    .update(JSON.stringify(canonical({ recipe: r, seed })))
    .digest('hex')
    .slice(0, 16);
}
