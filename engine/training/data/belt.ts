/**
 * Zero-truncation belt feeding (seed 000 §4.2): a packed stream is cut into
 * consecutive windows of T tokens, window i starting at i·(T−o) for an
 * overlap o. Window i's inputs are stream[s, s+T) and its targets
 * stream[s+1, s+T+1); a target is −1 (no loss) when its mask bit is 0, when
 * it lies past the end of the stream (the last window is padded, never
 * dropped), or when the previous window already had it as a target — its
 * first o positions, which are there only as context. So every target of the
 * stream is counted exactly once.
 */
import type { PackedStream } from './pack.ts';

export interface BeltShape {
  /** T: tokens per window. */
  window: number;
  /** o: tokens a window repeats from the previous one, as context (0 ≤ o < T). */
  overlap: number;
}

/** −1 in targets: no loss at this position. */
export const NO_TARGET = -1;

export function validateBeltShape(s: BeltShape): void {
  if (!Number.isInteger(s.window) || s.window < 1) throw new RangeError(`belt window must be a positive integer, got ${s.window}`);
  if (!Number.isInteger(s.overlap) || s.overlap < 0 || s.overlap >= s.window) {
    throw new RangeError(`belt overlap must be an integer in [0, ${s.window}), got ${s.overlap}`);
  }
}

/**
 * Windows needed to cover every target of a stream of `length` tokens
 * (targets are positions 1..length−1). At least one, so a short stream still
 * gives a (padded) window.
 */
export function beltWindowCount(length: number, s: BeltShape): number {
  validateBeltShape(s);
  const targets = length - 1;
  if (targets <= s.window) return 1;
  return Math.ceil((targets - s.overlap) / (s.window - s.overlap));
}

/**
 * Stream tokens a run of n windows consumes as targets: n·(T−o)+o. A stream
 * of exactly that many tokens plus one is covered without padding.
 */
export function beltSpan(n: number, s: BeltShape): number {
  return n * (s.window - s.overlap) + s.overlap;
}

/**
 * Writes window `index` of the stream into tokens/targets at `at` (T entries
 * each), so a batch is filled in place. Positions past the stream get `padId`
 * as input and −1 as target.
 */
export function writeBeltWindow(
  stream: PackedStream,
  index: number,
  s: BeltShape,
  padId: number,
  tokens: Int32Array,
  targets: Int32Array,
  at = 0,
): void {
  // The first o targets of every window but the first belong to the previous window.
  writeWindowAt(stream, index * (s.window - s.overlap), index === 0 ? 0 : s.overlap, s.window, padId, tokens, targets, at);
}

/**
 * Writes the window of `window` tokens starting at stream position `start`,
 * whose first `skip` targets belong to an earlier window (−1 here). The belt
 * grid is writeBeltWindow; window-plan.ts places some windows off it.
 */
export function writeWindowAt(
  stream: PackedStream,
  start: number,
  skip: number,
  window: number,
  padId: number,
  tokens: Int32Array,
  targets: Int32Array,
  at = 0,
): void {
  const n = stream.tokens.length;
  for (let j = 0; j < window; j++) {
    const p = start + j;
    tokens[at + j] = p < n ? stream.tokens[p]! : padId;
    const q = p + 1;
    targets[at + j] = j >= skip && q < n && stream.lossMask[q] === 1 ? stream.tokens[q]! : NO_TARGET;
  }
}

export interface BeltWindow {
  tokens: Int32Array;
  targets: Int32Array;
}

/** All windows of a stream, in order (for small streams and evaluation; batches use writeBeltWindow). */
export function* beltWindows(stream: PackedStream, s: BeltShape, padId: number): Generator<BeltWindow> {
  const count = beltWindowCount(stream.tokens.length, s);
  for (let i = 0; i < count; i++) {
    const w: BeltWindow = { tokens: new Int32Array(s.window), targets: new Int32Array(s.window) };
    writeBeltWindow(stream, i, s, padId, w.tokens, w.targets);
    yield w;
  }
}
