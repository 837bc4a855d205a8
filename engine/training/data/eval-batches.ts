/**
 * Evaluation batches over held-out text: the stream cut into belt windows
 * without overlap (every target once), grouped into fixed batches, with the
 * UTF-8 bytes the targets stand for so a loss can be reported per byte —
 * comparable across tokenizers, unlike per-token loss.
 */
import type { Tokenizer } from '../../types.ts';
import { beltWindowCount, NO_TARGET, writeBeltWindow } from './belt.ts';
import type { Batch } from './curriculum.ts';
import type { PackedStream } from './pack.ts';

export interface EvalBatches {
  batches: Batch[];
  /** UTF-8 bytes of all target tokens; control tokens (EOS) stand for no text and count 0. */
  bytes: number;
  /** Number of targets (positions with loss). */
  targets: number;
}

/**
 * All windows of the stream, `batch` rows per batch (the last batch's spare
 * rows are padding with no targets), phase "eval", steps 0, 1, ….
 */
export function evalBatches(stream: PackedStream, shape: { batch: number; window: number }, tokenizer: Tokenizer): EvalBatches {
  const { batch, window: T } = shape;
  if (!Number.isInteger(batch) || batch < 1) throw new RangeError(`eval batch must be a positive integer, got ${batch}`);
  const belt = { window: T, overlap: 0 };
  const windows = beltWindowCount(stream.tokens.length, belt);
  const batches: Batch[] = [];
  let bytes = 0;
  let targets = 0;
  for (let first = 0; first < windows; first += batch) {
    const tokens = new Int32Array(batch * T).fill(tokenizer.eosId);
    const tgt = new Int32Array(batch * T).fill(NO_TARGET);
    for (let r = 0; r < batch && first + r < windows; r++) writeBeltWindow(stream, first + r, belt, tokenizer.eosId, tokens, tgt, r * T);
    for (const t of tgt) {
      if (t === NO_TARGET) continue;
      targets++;
      if (!tokenizer.specialIds.has(t)) bytes += tokenizer.tokenBytes(t).length;
    }
    batches.push({ tokens, targets: tgt, batch, seqLen: T, phase: 'eval', step: batches.length, continuesPrevious: false });
  }
  return { batches, bytes, targets };
}
