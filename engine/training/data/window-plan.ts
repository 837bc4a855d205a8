/**
 * Where the training windows of a packed stream start.
 *
 * On the belt's grid (belt.ts), each window T − o after the previous one,
 * except a window that would own no loss target: one that holds nothing but
 * context, as a chat whose prompt is longer than the window gives. Training
 * on it would teach nothing, and a batch of such windows has no loss at all.
 * It is moved forward to the next reply instead, placed so that it ends where
 * the reply's first run of targets ends (a run longer than half the window
 * fills the window's second half), and the grid goes on from there. So a
 * reply is learned with as much of its prompt as fits, and every target is
 * still owned by exactly one window: the tokens jumped over hold none.
 *
 * Plain text is targets throughout, so its windows never move: its batches
 * are the grid's, bit for bit. Moving is the caller's choice (`move`): the
 * built-in recipe keeps the grid, so its runs reproduce the shipped model.
 */
import { validateBeltShape, type BeltShape } from './belt.ts';

/** A packed stream that can be asked for more tokens (the curriculum packs more documents). */
export interface GrowableStream {
  /** The loss mask so far; read it again after grow(). */
  readonly lossMask: Uint8Array;
  /** Makes the stream at least `length` tokens long; false when it cannot grow that far. */
  grow(length: number): boolean;
}

export interface PlacedWindow {
  /** Stream position of the window's first input token. */
  start: number;
  /** Leading positions whose targets an earlier window owns (−1 in this one). */
  skip: number;
  /** Context tokens jumped over to reach this window (0 on the grid). */
  passed: number;
}

/**
 * How far past a context-only window the next reply is looked for. Beyond
 * that (a source with no targets at all) the window stays on the grid, and
 * the training loop skips a batch made only of such windows.
 */
export function maxSlide(window: number): number {
  return Math.max(64 * window, 1 << 16);
}

/** Reads a growing stream's loss mask; −1 past what the stream can hold. */
class MaskReader {
  private mask: Uint8Array;

  constructor(private readonly stream: GrowableStream) {
    this.mask = stream.lossMask;
  }

  at(p: number): number {
    if (p >= this.mask.length) {
      if (!this.stream.grow(p + 1)) return -1;
      this.mask = this.stream.lossMask;
    }
    return this.mask[p]!;
  }
}

function ownsTarget(m: MaskReader, first: number, last: number): boolean {
  for (let q = first; q <= last; q++) if (m.at(q) === 1) return true;
  return false;
}

/** The first target at or after `from` and the length of its run (up to `cap`), or null within maxSlide. */
function nextReply(m: MaskReader, from: number, window: number, cap: number): { first: number; run: number } | null {
  const limit = from + maxSlide(window);
  for (let p = from; p < limit; p++) {
    const bit = m.at(p);
    if (bit === -1) return null;
    if (bit !== 1) continue;
    let run = 1;
    while (run < cap && m.at(p + run) === 1) run++;
    return { first: p, run };
  }
  return null;
}

/**
 * The windows from stream position `from` on (the first owns all its
 * targets), for as long as the stream can hold them. A window's targets are
 * the stream positions start+1 … start+T, so it needs start+T+1 tokens.
 * move false: the grid's windows, context-only ones included.
 */
export function* placeWindows(stream: GrowableStream, shape: BeltShape, from: number, move = true): Generator<PlacedWindow, void, undefined> {
  validateBeltShape(shape);
  const { window: T, overlap: o } = shape;
  const m = new MaskReader(stream);
  let start = from;
  let skip = 0;
  while (m.at(start + T) !== -1) {
    let w: PlacedWindow = { start, skip, passed: 0 };
    if (move && !ownsTarget(m, start + skip + 1, start + T)) {
      // The grid window's own targets are all context, so the reply starts past start + T.
      const reply = nextReply(m, start + T + 1, T, Math.ceil(T / 2));
      if (reply !== null) {
        const moved = reply.first - 1 - (T - reply.run);
        if (m.at(moved + T) === -1) return;
        // moved > start; targets up to start + skip belong to the window before.
        w = { start: moved, skip: Math.max(0, start + skip - moved), passed: moved - start };
      }
    }
    yield w;
    start = w.start + T - o;
    skip = o;
  }
}
