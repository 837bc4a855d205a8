/**
 * tiktoken vocabularies (o200k_base, cl100k_base, r50k_base): a ranks file,
 * one "<base64 token bytes> <rank>" per line, where the rank is both the
 * token id and the merge priority. braid stores BPE as GGUF merges, so the
 * merge list is recovered from the ranks the way HF's tiktoken converter
 * does: each multi-byte token is the one pair that BPE over its own bytes,
 * using only lower ranks, ends with.
 */
import { BYTE_TO_CHAR } from './byte-map.ts';
import { specFromVocab, type ImportedVocab, type SpecialTokenNames } from './import-vocab.ts';
import type { TokenizerSpec } from './spec.ts';
import { StringIndex } from './string-index.ts';

/**
 * Token bytes by rank as latin1 strings (one char per byte, so substrings are
 * byte ranges and StringIndex can key them); undefined where a rank is unused.
 */
export type TiktokenRanks = (string | undefined)[];

export function parseTiktokenRanks(text: string, where = '<ranks>'): TiktokenRanks {
  const out: TiktokenRanks = [];
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!;
    if (line.trim() === '') continue;
    const sp = line.indexOf(' ');
    const b64 = line.slice(0, sp);
    const num = line.slice(sp + 1);
    const rank = Number(num);
    const bytes = Buffer.from(b64, 'base64');
    // Buffer.from skips characters that are not base64, so a short result means a bad field.
    const expected = Math.floor((b64.length * 3) / 4) - (b64.endsWith('==') ? 2 : b64.endsWith('=') ? 1 : 0);
    if (sp <= 0 || num === '' || !Number.isInteger(rank) || rank < 0 || bytes.length !== expected) {
      throw new Error(`tiktoken ranks ${where}:${i + 1}: expected "<base64> <rank>", got ${JSON.stringify(line.slice(0, 80))}`);
    }
    if (out[rank] !== undefined) throw new Error(`tiktoken ranks ${where}:${i + 1}: rank ${rank} appears twice`);
    out[rank] = bytes.toString('latin1');
  }
  return out;
}

/** latin1 byte string → byte-level token string. */
function byteLevel(s: string): string {
  let out = '';
  for (let i = 0; i < s.length; i++) out += BYTE_TO_CHAR[s.charCodeAt(i)]!;
  return out;
}

const NONE = 0x7fffffff;

/** The rank of parts k and k+1 of s joined, if it is below r (BPE as it stood before token r existed). */
function joinedRank(index: StringIndex, s: string, cut: Int32Array, k: number, r: number): number {
  const j = index.get(s, cut[k]!, cut[k + 2]!);
  return j >= 0 && j < r ? j : NONE;
}

/**
 * For each multi-byte token in rank order, the ranks of the two tokens it
 * merges, flattened [left, right, left, right, ...]. Throws if a token cannot
 * be built from two lower-ranked tokens (not a BPE vocabulary).
 */
function mergePairs(ranks: TiktokenRanks, index: StringIndex): number[] {
  const pairs: number[] = [];
  // Scratch for one token of n bytes: part k is s[cut[k], cut[k+1]) with rank part[k];
  // pair[k] is the rank of parts k and k+1 joined, NONE if that is no token below r.
  let cut = new Int32Array(256);
  let part = new Int32Array(256);
  let pair = new Int32Array(256);
  const byteRank = Int32Array.from({ length: 256 }, (_, b) => index.get(String.fromCharCode(b)));
  for (let r = 0; r < ranks.length; r++) {
    const s = ranks[r];
    if (s === undefined || s.length < 2) continue;
    const n = s.length;
    if (n + 1 > cut.length) [cut, part, pair] = [new Int32Array(2 * n), new Int32Array(2 * n), new Int32Array(2 * n)];
    let parts = n;
    for (let k = 0; k <= n; k++) cut[k] = k;
    for (let k = 0; k < n; k++) part[k] = byteRank[s.charCodeAt(k)]!;
    for (let k = 0; k + 1 < n; k++) pair[k] = joinedRank(index, s, cut, k, r);
    while (parts > 2) {
      let best = -1;
      let bestRank = NONE;
      for (let k = 0; k + 1 < parts; k++) {
        if (pair[k]! < bestRank) {
          best = k;
          bestRank = pair[k]!;
        }
      }
      if (best < 0) break;
      // Parts best and best+1 become one; everything after shifts down by one.
      // (Plain loops: copyWithin's call overhead dominates on arrays this short.)
      part[best] = bestRank;
      for (let k = best + 1; k + 1 < parts; k++) part[k] = part[k + 1]!;
      for (let k = best + 1; k < parts; k++) cut[k] = cut[k + 1]!;
      for (let k = best; k + 2 < parts; k++) pair[k] = pair[k + 1]!;
      parts--;
      if (best > 0) pair[best - 1] = joinedRank(index, s, cut, best - 1, r);
      if (best + 1 < parts) pair[best] = joinedRank(index, s, cut, best, r);
    }
    if (parts !== 2) throw new Error(`tiktoken ranks: token of rank ${r} is not a merge of two lower-ranked tokens`);
    pairs.push(part[0]!, part[1]!);
  }
  return pairs;
}

/** Byte-level token strings by rank, and the merge list in rank order as "left right". */
function convertRanks(ranks: TiktokenRanks): { tokens: (string | undefined)[]; merges: string[] } {
  const index = new StringIndex(ranks.length);
  ranks.forEach((s, r) => {
    if (s !== undefined && !index.add(s, r)) throw new Error(`tiktoken ranks: ranks ${index.get(s)} and ${r} have the same bytes`);
  });
  for (let b = 0; b < 256; b++) {
    if (index.get(String.fromCharCode(b), 0, 1) < 0) throw new Error(`tiktoken ranks: no token for byte 0x${b.toString(16)}`);
  }
  const tokens = ranks.map((s) => (s === undefined ? undefined : byteLevel(s)));
  const pairs = mergePairs(ranks, index);
  const merges: string[] = new Array<string>(pairs.length / 2);
  for (let i = 0; i < merges.length; i++) merges[i] = `${tokens[pairs[2 * i]!]!} ${tokens[pairs[2 * i + 1]!]!}`;
  return { tokens, merges };
}

/** The merge list of a tiktoken vocabulary, in rank order, as byte-level "left right" strings. */
export function mergesFromRanks(ranks: TiktokenRanks): string[] {
  return convertRanks(ranks).merges;
}

export interface TiktokenImportOptions extends SpecialTokenNames {
  name: string;
  /** tokenizer.ggml.pre of the encoding: "gpt-4o" for o200k_base, "gpt-2" for r50k_base. */
  pre: string;
  /** Special token text → id (tiktoken keeps these outside the ranks file). */
  specials: Readonly<Record<string, number>>;
  chatTemplate?: string;
  provenance?: string;
}

/** A TokenizerSpec from a tiktoken ranks file's text and the encoding's specials. */
export function tokenizerSpecFromTiktoken(ranksText: string, opts: TiktokenImportOptions): TokenizerSpec {
  const { tokens, merges } = convertRanks(parseTiktokenRanks(ranksText, opts.name));
  const vocab: ImportedVocab = {
    tokens,
    merges,
    added: Object.entries(opts.specials).map(([content, id]) => ({ id, content, special: true })),
  };
  return specFromVocab(vocab, {
    ...opts,
    addBos: opts.addBos ?? false,
    provenance: opts.provenance ?? `tiktoken ranks "${opts.name}"`,
  });
}
