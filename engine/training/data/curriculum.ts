/**
 * Batches of a recipe as a pure function of (recipe, sources, seed, step):
 * batchAt(step) rebuilds exactly what an uninterrupted run saw at that step,
 * so resuming needs nothing but the step number.
 *
 * Each phase has one packed stream: documents of its mix (and its replay of
 * earlier mixes) interleaved by a deterministic deficit scheduler that keeps
 * every source at its share of tokens, each source walked in a seeded
 * shuffled order per epoch. A segment of the plan (a phase, or a GrowLength
 * stage of it) cuts its part of the stream into belt windows and deals them
 * to batch rows as lanes: row r of step j is window r·steps + j, so every row
 * continues at the next step where it stopped (seed 000 §4.2: the state after
 * window N is the starting point of window N+1). Windows sit on the belt's
 * grid; with moveContextOnlyWindows, one that would hold only context is
 * moved forward to the next reply (window-plan.ts; the stream then gets more
 * documents, so a segment still has all its windows).
 */
import { NO_TARGET, writeWindowAt } from './belt.ts';
import type { TrainingDocument } from './encode.ts';
import { StreamPacker, type PackedStream, type SpecialIds } from './pack.ts';
import { planRecipe, RecipeError, type PlanSegment, type Recipe, type RecipePlan } from './recipe.ts';
import type { DocumentSource, SourceSet } from './source.ts';
import { seededPermutation } from './stable-hash.ts';
import { placeWindows, type GrowableStream } from './window-plan.ts';

export interface Batch {
  /** batch × seqLen input ids, row-major. */
  tokens: Int32Array;
  /** Same shape: the id to predict at each position, −1 = no loss. */
  targets: Int32Array;
  batch: number;
  seqLen: number;
  phase: string;
  step: number;
  /** Row r continues row r of step − 1 (same shape, next window of the same lane). */
  continuesPrevious: boolean;
}

export interface CurriculumOptions {
  /**
   * Move a window that would hold nothing but context (a prompt longer than
   * the window) forward to the next reply. Off by default: the built-in
   * recipe keeps the grid it was trained on, so its runs reproduce.
   */
  moveContextOnlyWindows?: boolean;
}

/** Where a phase's stream came from, in tokens (separators counted with their document). */
export interface PhaseStreamStats {
  phase: string;
  tokens: number;
  /** Loss targets in the stream (mask 1). */
  targets: number;
  documents: number;
  bySource: Record<string, number>;
}

/** A segment's windows, window i = row r·steps + j of step j: stream start and leading targets owned by the window before. */
interface SegmentWindows {
  starts: Int32Array;
  skips: Int32Array;
}

/** A phase's packed stream, where each of its segments' windows lie in it, and its stats. */
interface PhaseData {
  phaseIndex: number;
  stream: PackedStream;
  windows: Map<PlanSegment, SegmentWindows>;
  stats: PhaseStreamStats;
}

/** The documents of one source, in seeded shuffled order, epoch after epoch. */
class SourceWalk {
  private epoch = -1;
  private order: Uint32Array = new Uint32Array(0);
  private at = 0;

  constructor(
    private readonly source: DocumentSource,
    private readonly seed: number,
    private readonly phaseIndex: number,
  ) {}

  next(): TrainingDocument {
    if (this.at >= this.order.length) {
      this.epoch++;
      this.order = seededPermutation(this.seed, `phase ${this.phaseIndex} / ${this.source.name} / epoch ${this.epoch}`, this.source.size);
      this.at = 0;
    }
    return this.source.document(this.order[this.at++]!);
  }
}

/**
 * The phase's source weights: its own mix scaled by (1 − replay), plus the
 * earlier phases' mixes sharing `replay` in proportion to their step shares.
 */
export function effectiveMix(recipe: Recipe, phaseIndex: number): Map<string, number> {
  const phase = recipe.phases[phaseIndex];
  if (phase === undefined) throw new RangeError(`recipe "${recipe.name}" has no phase ${phaseIndex}`);
  const out = new Map<string, number>();
  const add = (mix: Readonly<Record<string, number>>, scale: number) => {
    const sum = Object.values(mix).reduce((a, b) => a + b, 0);
    for (const [name, w] of Object.entries(mix)) out.set(name, (out.get(name) ?? 0) + (scale * w) / sum);
  };
  add(phase.mix, 1 - phase.replay);
  const earlier = recipe.phases.slice(0, phaseIndex);
  const shares = earlier.reduce((a, p) => a + p.share, 0);
  if (phase.replay > 0) for (const p of earlier) add(p.mix, (phase.replay * p.share) / shares);
  return out;
}

export class Curriculum {
  readonly plan: RecipePlan;
  private cached: PhaseData | null = null;

  constructor(
    readonly recipe: Recipe,
    private readonly sources: SourceSet,
    private readonly ids: SpecialIds,
    readonly seed: number,
    private readonly options: CurriculumOptions = {},
  ) {
    this.plan = planRecipe(recipe);
    const missing = new Set<string>();
    recipe.phases.forEach((_, i) => effectiveMix(recipe, i).forEach((_w, name) => sources.has(name) || missing.add(name)));
    if (missing.size > 0) {
      const have = [...sources.keys()].join(', ');
      throw new RecipeError(`recipe "${recipe.name}" uses sources that were not provided: ${[...missing].join(', ')} (have: ${have})`);
    }
    if (!Number.isInteger(seed) || seed < 0 || seed > 0xffff_ffff) throw new RangeError(`seed must be an integer in [0, 2^32), got ${seed}`);
  }

  get totalSteps(): number {
    return this.plan.totalSteps;
  }

  /** The segment (shape) of a step. */
  segmentAt(step: number): PlanSegment {
    if (!Number.isInteger(step) || step < 0 || step >= this.plan.totalSteps) {
      throw new RangeError(`step ${step} is outside the recipe's 0..${this.plan.totalSteps - 1}`);
    }
    let lo = 0;
    let hi = this.plan.segments.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (this.plan.segments[mid]!.firstStep <= step) lo = mid;
      else hi = mid - 1;
    }
    return this.plan.segments[lo]!;
  }

  /** The batch of a step (0-based): the same for the same (recipe, sources, seed, step). */
  batchAt(step: number): Batch {
    const seg = this.segmentAt(step);
    const { stream, windows } = this.build(seg.phaseIndex);
    const w = windows.get(seg)!;
    const j = step - seg.firstStep;
    const T = seg.window;
    const tokens = new Int32Array(seg.batch * T);
    const targets = new Int32Array(seg.batch * T).fill(NO_TARGET);
    for (let r = 0; r < seg.batch; r++) {
      const i = r * seg.steps + j;
      writeWindowAt(stream, w.starts[i]!, w.skips[i]!, T, this.ids.eosId, tokens, targets, r * T);
    }
    return { tokens, targets, batch: seg.batch, seqLen: T, phase: seg.phase, step, continuesPrevious: j > 0 };
  }

  /**
   * A phase's packed stream (built on first use; the most recent phase is
   * kept, since a run reads phases in order).
   */
  phaseStream(phaseIndex: number): PackedStream {
    return this.build(phaseIndex).stream;
  }

  phaseStats(phaseIndex: number): PhaseStreamStats {
    return this.build(phaseIndex).stats;
  }

  private build(phaseIndex: number): PhaseData {
    if (this.cached?.phaseIndex === phaseIndex) return this.cached;
    const need = this.plan.phaseStreamLength[phaseIndex];
    if (need === undefined) throw new RangeError(`recipe "${this.recipe.name}" has no phase ${phaseIndex}`);
    const mix = [...effectiveMix(this.recipe, phaseIndex)].sort((a, b) => (a[0] < b[0] ? -1 : 1));
    const walks = mix.map(([name]) => new SourceWalk(this.sources.get(name)!, this.seed, phaseIndex));
    const emitted = mix.map(() => 0);
    const tokensBySource = mix.map(() => 0);
    const packer = new StreamPacker(this.ids, need + 1);
    // Empty documents add nothing; a mix of nothing but those would never fill the stream.
    const patience = mix.reduce((n, [name]) => n + this.sources.get(name)!.size, 0);
    let empty = 0;
    const packNext = (): void => {
      // Deficit scheduling: the source furthest below its share of tokens goes next.
      let pick = 0;
      for (let s = 1; s < mix.length; s++) if (emitted[s]! / mix[s]![1] < emitted[pick]! / mix[pick]![1]) pick = s;
      const added = packer.push(walks[pick]!.next());
      empty = added === 0 ? empty + 1 : 0;
      if (empty > patience) throw new Error(`phase ${phaseIndex}: the sources ${mix.map(([n]) => n).join(', ')} yield only empty documents`);
      emitted[pick]! += Math.max(added, 1);
      tokensBySource[pick]! += added;
    };
    while (packer.length < need) packNext();
    // The grid's windows fit in `need` tokens; windows moved past context read further.
    const growing: GrowableStream = {
      get lossMask() {
        return packer.view().lossMask;
      },
      grow: (length) => {
        while (packer.length < length) packNext();
        return true;
      },
    };
    const windows = new Map<PlanSegment, SegmentWindows>();
    let from = 0;
    for (const seg of this.plan.segments) {
      if (seg.phaseIndex !== phaseIndex) continue;
      const count = seg.batch * seg.steps;
      const w: SegmentWindows = { starts: new Int32Array(count), skips: new Int32Array(count) };
      const placed = placeWindows(growing, { window: seg.window, overlap: seg.overlap }, from, this.options.moveContextOnlyWindows === true);
      for (let i = 0; i < count; i++) {
        const next = placed.next();
        if (next.done === true) throw new Error(`phase ${phaseIndex}: the stream stopped growing`);
        w.starts[i] = next.value.start;
        w.skips[i] = next.value.skip;
      }
      windows.set(seg, w);
      // The next segment's first input is this one's last target, as on the grid (recipe.ts).
      from = w.starts[count - 1]! + seg.window;
    }
    const length = from + 1;
    const full = packer.finish();
    const stream: PackedStream = { tokens: full.tokens.slice(0, length), lossMask: full.lossMask.slice(0, length) };
    let targets = 0;
    for (let i = 1; i < length; i++) targets += stream.lossMask[i]!;
    const stats: PhaseStreamStats = {
      phase: this.recipe.phases[phaseIndex]!.name,
      tokens: length,
      targets,
      documents: packer.documentCount,
      bySource: Object.fromEntries(mix.map(([name], s) => [name, tokensBySource[s]!])),
    };
    this.cached = { phaseIndex, stream, windows, stats };
    return this.cached;
  }
}

/** One line per segment: "language  steps 0–585  32×32 (o=0)". */
export function formatPlan(plan: RecipePlan): string {
  return plan.segments
    .map((s) => `${s.phase.padEnd(10)} steps ${s.firstStep}–${s.firstStep + s.steps - 1}  ${s.batch}×${s.window} (overlap ${s.overlap})`)
    .join('\n');
}
