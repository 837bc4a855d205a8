/**
 * The model's cross-entropy on plain text, from the inference engine's own
 * logits (NativeContext.eval with allLogits), so what is measured is what
 * serving computes, not the trainer's forward.
 *
 * Each document is fed as training packs it: the start token (BOS), then its
 * tokens; the logits after position i score token i + 1, so every text token
 * is predicted once and EOS is not scored (ngram.ts scores the same targets).
 * The document is evaluated in windows of `window` tokens; with `carry` the
 * recurrent state runs on from one window into the next (one pass over the
 * document, as training's belt feeds consecutive windows), otherwise every
 * window starts from a fresh state, as the trainer's held-out evaluation does.
 * Every document starts from a fresh state either way.
 */
import type { NativeModel } from '../model/native-model.ts';
import { tokenNats } from './scoring.ts';

export interface TextScoreOptions {
  /** Tokens per eval call (and per fresh-state window when !carry). */
  window: number;
  /** Carry the recurrent state across windows of a document. */
  carry: boolean;
  /** Token before each document's first token. */
  startId: number;
  signal?: AbortSignal;
}

export interface TextScore {
  nats: number;
  /** Text tokens predicted. */
  targets: number;
}

export async function modelTextNats(
  model: NativeModel,
  docs: readonly ArrayLike<number>[],
  opts: TextScoreOptions,
): Promise<TextScore> {
  const { window: W } = opts;
  if (!Number.isInteger(W) || W < 1) throw new RangeError(`window must be a positive integer, got ${W}`);
  if (model.nVocab < 1) throw new Error('model has no logits');
  const ctx = model.createContext(W);
  const V = model.nVocab;
  let nats = 0;
  let targets = 0;
  try {
    for (const doc of docs) {
      if (doc.length === 0) continue;
      // inputs[i] predicts doc[i]: the start token, then every text token but the last.
      const inputs = [opts.startId, ...Array.from(doc).slice(0, -1)];
      await ctx.reset();
      for (let at = 0; at < inputs.length; at += W) {
        if (!opts.carry && at > 0) await ctx.reset();
        const piece = inputs.slice(at, at + W);
        const logits = await ctx.eval(piece, { allLogits: true, ...(opts.signal ? { signal: opts.signal } : {}) });
        for (let j = 0; j < piece.length; j++) {
          nats += tokenNats(logits.subarray(j * V, (j + 1) * V), doc[at + j]!);
          targets++;
        }
      }
    }
  } finally {
    await ctx.dispose();
  }
  return { nats, targets };
}
