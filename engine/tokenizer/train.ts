/**
 * Byte-level BPE training (the classic algorithm of Sennrich et al. on byte
 * symbols, as GPT-2): count pre-tokenized pieces, then repeatedly merge the
 * most frequent adjacent pair. Deterministic: ties go to the pair with the
 * smallest (left id, right id), and pieces are processed in sorted order.
 *
 * Only words containing the merged pair are revisited each step (an index
 * pair → words), so a few thousand merges over a 1M-word corpus take seconds.
 */
import { BYTE_TO_CHAR } from './byte-map.ts';
import type { PreTokenizer } from './pretokenize.ts';
import { TokenType } from './tokenizer.ts';

export interface TrainedBpe {
  /** 256 byte tokens (by byte value), then one token per merge, then the specials. */
  tokens: string[];
  tokenTypes: number[];
  merges: string[];
}

export interface TrainBpeOptions {
  /** Total vocabulary including the 256 byte tokens and the specials. */
  vocabSize: number;
  /** Control tokens appended after the merges, in this order. */
  specials: readonly string[];
  preTokenize: PreTokenizer;
  /** Stop early when the best pair occurs fewer times than this (default 2). */
  minFrequency?: number;
}

/** Pair keys pack two ids below 2^16 (trained vocabularies are small). */
const KEY = 65536;

export function trainBpe(texts: Iterable<string>, opts: TrainBpeOptions): TrainedBpe {
  const nLearned = opts.vocabSize - 256 - opts.specials.length;
  if (nLearned < 0) throw new Error(`vocab size ${opts.vocabSize} cannot hold 256 bytes + ${opts.specials.length} specials`);
  if (opts.vocabSize > KEY) throw new Error(`trainBpe supports vocabularies up to ${KEY}`);
  const minFrequency = opts.minFrequency ?? 2;

  const counts = new Map<string, number>();
  for (const text of texts) {
    for (const piece of opts.preTokenize(text)) counts.set(piece, (counts.get(piece) ?? 0) + 1);
  }
  const pieces = [...counts.keys()].sort();
  const utf8 = new TextEncoder();
  const words: number[][] = pieces.map((p) => Array.from(utf8.encode(p)));
  const freq: number[] = pieces.map((p) => counts.get(p)!);

  const pairCount = new Map<number, number>();
  const pairWords = new Map<number, Set<number>>();
  const addPairs = (w: number, sign: number) => {
    const s = words[w]!;
    for (let i = 0; i + 1 < s.length; i++) {
      const key = s[i]! * KEY + s[i + 1]!;
      const c = (pairCount.get(key) ?? 0) + sign * freq[w]!;
      if (c === 0) pairCount.delete(key);
      else pairCount.set(key, c);
      if (sign > 0) {
        let set = pairWords.get(key);
        if (!set) pairWords.set(key, (set = new Set()));
        set.add(w);
      }
    }
  };
  for (let w = 0; w < words.length; w++) addPairs(w, +1);

  const tokens: string[] = BYTE_TO_CHAR.slice();
  const idOf = new Map(tokens.map((t, i) => [t, i]));
  const merges: string[] = [];
  while (tokens.length < 256 + nLearned) {
    let best = -1;
    let bestCount = 0;
    for (const [key, c] of pairCount) {
      if (c > bestCount || (c === bestCount && key < best)) {
        best = key;
        bestCount = c;
      }
    }
    if (best < 0 || bestCount < minFrequency) break;
    const a = Math.floor(best / KEY);
    const b = best % KEY;
    // Two merges can spell the same string ("ab"+"c", "a"+"bc"): they share one token.
    const text = tokens[a]! + tokens[b]!;
    let id = idOf.get(text);
    if (id === undefined) {
      id = tokens.length;
      tokens.push(text);
      idOf.set(text, id);
    }
    merges.push(`${tokens[a]!} ${tokens[b]!}`);

    const affected = [...(pairWords.get(best) ?? [])].sort((x, y) => x - y);
    pairWords.delete(best);
    for (const w of affected) {
      const s = words[w]!;
      const merged: number[] = [];
      let changed = false;
      for (let i = 0; i < s.length; i++) {
        if (i + 1 < s.length && s[i] === a && s[i + 1] === b) {
          merged.push(id);
          i++;
          changed = true;
        } else {
          merged.push(s[i]!);
        }
      }
      // The index is lazy: a word may no longer contain the pair.
      if (!changed) continue;
      addPairs(w, -1);
      words[w] = merged;
      addPairs(w, +1);
    }
    pairCount.delete(best);
  }

  const tokenTypes = tokens.map(() => TokenType.normal as number);
  for (const s of opts.specials) {
    tokens.push(s);
    tokenTypes.push(TokenType.control);
  }
  return { tokens, tokenTypes, merges };
}
