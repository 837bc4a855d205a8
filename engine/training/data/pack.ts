/**
 * Token packing (seed 002 hyper_training P6): documents back to back in one
 * stream, no padding. Every document is preceded by BOS, as the server
 * prepends it to prompts (server/prompt.ts withBos), and followed by EOS, so
 * the model learns where text ends. braid's tokenizer uses <|endoftext|> for
 * both, so one token separates two documents.
 */
import type { TrainingDocument } from './encode.ts';

export interface PackedStream {
  tokens: Int32Array;
  /** Loss mask per token (1 = a target when it is predicted). */
  lossMask: Uint8Array;
}

export interface SpecialIds {
  eosId: number;
  bosId: number | null;
}

/** Appends documents to a growing stream (amortised doubling). */
export class StreamPacker {
  private tokens: Int32Array;
  private mask: Uint8Array;
  private n = 0;
  private docs = 0;

  constructor(
    private readonly ids: SpecialIds,
    capacity = 1 << 16,
  ) {
    this.tokens = new Int32Array(Math.max(16, capacity));
    this.mask = new Uint8Array(this.tokens.length);
  }

  get length(): number {
    return this.n;
  }

  get documentCount(): number {
    return this.docs;
  }

  /** Adds one document; empty ones are skipped. Returns the tokens added (separators included). */
  push(doc: TrainingDocument): number {
    const len = doc.tokens.length;
    if (len === 0) return 0;
    const before = this.n;
    const { bosId, eosId } = this.ids;
    // BOS is context, never a target: it follows EOS, or opens the stream.
    if (bosId !== null && (this.n === 0 || bosId !== eosId)) this.append(bosId, 0);
    this.reserve(len + 1);
    this.tokens.set(doc.tokens, this.n);
    this.mask.set(doc.lossMask, this.n);
    this.n += len;
    // EOS is learned after text (its last token is a target) but not after a chat,
    // which ends with the template's newline; the chat's end-of-turn token is what ends a reply.
    this.append(eosId, doc.lossMask[len - 1]!);
    this.docs++;
    return this.n - before;
  }

  /** The stream so far without copying: valid until the next push. */
  view(): PackedStream {
    return { tokens: this.tokens.subarray(0, this.n), lossMask: this.mask.subarray(0, this.n) };
  }

  /** The stream so far (copies, exact length). */
  finish(): PackedStream {
    return { tokens: this.tokens.slice(0, this.n), lossMask: this.mask.slice(0, this.n) };
  }

  private append(id: number, m: number): void {
    this.reserve(1);
    this.tokens[this.n] = id;
    this.mask[this.n] = m;
    this.n++;
  }

  private reserve(extra: number): void {
    if (this.n + extra <= this.tokens.length) return;
    let cap = this.tokens.length * 2;
    while (cap < this.n + extra) cap *= 2;
    const t = new Int32Array(cap);
    t.set(this.tokens.subarray(0, this.n));
    const m = new Uint8Array(cap);
    m.set(this.mask.subarray(0, this.n));
    this.tokens = t;
    this.mask = m;
  }
}

/** Packs documents in order into one stream. */
export function packDocuments(docs: Iterable<TrainingDocument>, ids: SpecialIds): PackedStream {
  const p = new StreamPacker(ids);
  for (const d of docs) p.push(d);
  return p.finish();
}
