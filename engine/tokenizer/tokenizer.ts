/**
 * Byte-level BPE tokenizer (GPT-2 style) implementing engine/types.ts
 * Tokenizer. Built from GGUF metadata by load.ts.
 */
import { InvalidRequestError } from '../errors.ts';
import type { StreamDecoder, Tokenizer } from '../types.ts';
import { BYTE_TO_CHAR, byteLevelInto } from './byte-map.ts';
import { bpeMerge, PairRanks, type MergeTable } from './bpe.ts';
import type { PreTokenizer } from './pretokenize.ts';
import { StringIndex } from './string-index.ts';

/** llama.cpp token types (tokenizer.ggml.token_type). */
export const TokenType = { normal: 1, unknown: 2, control: 3, userDefined: 4, unused: 5, byte: 6 } as const;

export interface BpeTokenizerInit {
  tokens: readonly string[];
  tokenTypes: readonly number[];
  /** "left right" in rank order. */
  merges: readonly string[];
  preTokenize: PreTokenizer;
  bosId: number | null;
  eosId: number;
  /** Extra ids that end generation (end-of-turn markers). */
  stopIds: readonly number[];
}

/** Pieces cached per tokenizer; cleared when full so memory stays bounded. */
const PIECE_CACHE_MAX = 100_000;

const utf8 = new TextEncoder();

export class BpeTokenizer implements Tokenizer {
  readonly vocabSize: number;
  readonly bosId: number | null;
  readonly eosId: number;
  readonly stopIds: ReadonlySet<number>;
  readonly specialIds: ReadonlySet<number>;

  private readonly byteData: Uint8Array;
  private readonly byteStart: Int32Array;
  private readonly byteIds: Int32Array;
  private readonly merges: MergeTable;
  private readonly preTokenize: PreTokenizer;
  /** Longest-first alternation of the texts matched as specials when parseSpecial. */
  private readonly specialRe: RegExp | null;
  private readonly specialByText: Map<string, number>;
  private readonly cache = new Map<string, number[]>();

  constructor(init: BpeTokenizerInit) {
    const { tokens, tokenTypes } = init;
    this.vocabSize = tokens.length;
    const check = (id: number, what: string) => {
      if (!Number.isInteger(id) || id < 0 || id >= tokens.length) {
        throw new Error(`tokenizer: ${what} ${id} is outside the vocabulary of ${tokens.length}`);
      }
    };
    check(init.eosId, 'eos id');
    if (init.bosId !== null) check(init.bosId, 'bos id');
    init.stopIds.forEach((id) => check(id, 'stop id'));
    if (tokenTypes.length !== 0 && tokenTypes.length !== tokens.length) {
      throw new Error(`tokenizer: ${tokenTypes.length} token types for ${tokens.length} tokens`);
    }
    this.bosId = init.bosId;
    this.eosId = init.eosId;
    this.stopIds = new Set([init.eosId, ...init.stopIds]);
    this.preTokenize = init.preTokenize;

    const idOf = new StringIndex(tokens.length);
    const special = new Set<number>();
    this.specialByText = new Map();
    // All token bytes in one buffer, token id at [byteStart[id], byteStart[id + 1]):
    // 200k separate Uint8Arrays (o200k) cost megabytes of headers and most of the load time.
    let capacity = 0;
    for (const t of tokens) capacity += 3 * t.length; // UTF-8 and byte-level both need ≤ 3 bytes per UTF-16 unit
    const data = new Uint8Array(capacity);
    this.byteStart = new Int32Array(tokens.length + 1);
    let at = 0;
    for (let id = 0; id < tokens.length; id++) {
      const t = tokens[id]!;
      const type = tokenTypes[id] ?? TokenType.normal;
      this.byteStart[id] = at;
      idOf.add(t, id); // the first id of a repeated string wins
      if (type === TokenType.control || type === TokenType.unused) special.add(id);
      if (type === TokenType.control || type === TokenType.userDefined) {
        this.specialByText.set(t, id);
        at += utf8.encodeInto(t, data.subarray(at)).written;
      } else if (type !== TokenType.unused) {
        at += byteLevelInto(t, data, at);
      }
    }
    this.byteStart[tokens.length] = at;
    this.byteData = data.slice(0, at);
    this.specialIds = special;
    const texts = [...this.specialByText.keys()].filter((t) => t.length > 0).sort((a, b) => b.length - a.length);
    this.specialRe = texts.length
      ? new RegExp(texts.map((t) => t.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')).join('|'), 'g')
      : null;

    this.byteIds = new Int32Array(256);
    for (let b = 0; b < 256; b++) {
      const id = idOf.get(BYTE_TO_CHAR[b]!);
      if (id < 0 || special.has(id)) {
        throw new Error(`tokenizer: byte-level vocabulary lacks the token for byte 0x${b.toString(16)}`);
      }
      this.byteIds[b] = id;
    }

    const ranks = new PairRanks(init.merges.length);
    const result: number[] = [];
    for (const m of init.merges) {
      const sp = m.indexOf(' ', 1);
      if (sp < 0) throw new Error(`tokenizer: merge "${m}" is not "left right"`);
      const l = idOf.get(m, 0, sp);
      const r = idOf.get(m, sp + 1);
      const res = idOf.getWithout(m, sp);
      // A merge whose parts or result are not in the vocabulary can never fire; skip it.
      if (l < 0 || r < 0 || res < 0 || special.has(res)) continue;
      if (ranks.add(l, r, result.length)) result.push(res);
    }
    this.merges = { ranks, result: Int32Array.from(result) };
  }

  encode(text: string, opts?: { parseSpecial?: boolean }): number[] {
    const out: number[] = [];
    if (!opts?.parseSpecial || this.specialRe === null) {
      this.encodePlain(text, out);
      return out;
    }
    let last = 0;
    for (const m of text.matchAll(this.specialRe)) {
      this.encodePlain(text.slice(last, m.index), out);
      out.push(this.specialByText.get(m[0])!);
      last = m.index + m[0].length;
    }
    this.encodePlain(text.slice(last), out);
    return out;
  }

  private encodePlain(text: string, out: number[]): void {
    if (text.length === 0) return;
    for (const piece of this.preTokenize(text)) {
      let ids = this.cache.get(piece);
      if (ids === undefined) {
        const bytes = utf8.encode(piece);
        const start: number[] = new Array(bytes.length);
        for (let i = 0; i < bytes.length; i++) start[i] = this.byteIds[bytes[i]!]!;
        ids = bpeMerge(start, this.merges);
        if (this.cache.size >= PIECE_CACHE_MAX) this.cache.clear();
        this.cache.set(piece, ids);
      }
      for (const id of ids) out.push(id);
    }
  }

  tokenBytes(id: number): Uint8Array {
    if (!Number.isInteger(id) || id < 0 || id >= this.vocabSize) {
      throw new InvalidRequestError(`token id ${id} is outside the vocabulary (0..${this.vocabSize - 1})`);
    }
    return this.byteData.subarray(this.byteStart[id]!, this.byteStart[id + 1]!);
  }

  decode(ids: readonly number[], opts?: { skipSpecial?: boolean }): string {
    const parts: Uint8Array[] = [];
    let len = 0;
    for (const id of ids) {
      const b = this.tokenBytes(id);
      if (opts?.skipSpecial && this.specialIds.has(id)) continue;
      parts.push(b);
      len += b.byteLength;
    }
    const all = new Uint8Array(len);
    let at = 0;
    for (const p of parts) {
      all.set(p, at);
      at += p.byteLength;
    }
    return new TextDecoder('utf-8').decode(all);
  }

  createStreamDecoder(opts?: { skipSpecial?: boolean }): StreamDecoder {
    // WHATWG streaming decode holds back incomplete sequences and defines the
    // output so that concatenated chunks equal a one-shot decode of the bytes.
    const dec = new TextDecoder('utf-8');
    const skip = opts?.skipSpecial ?? false;
    return {
      push: (id: number) => {
        const b = this.tokenBytes(id);
        if (skip && this.specialIds.has(id)) return '';
        return dec.decode(b, { stream: true });
      },
      flush: () => dec.decode(),
    };
  }
}
