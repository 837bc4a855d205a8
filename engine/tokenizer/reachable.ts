/**
 * Which tokens BPE cannot build from their own bytes. tokenizer.json's
 * `ignore_merges` (and tiktoken) emit a pre-token that is itself in the
 * vocabulary as that one token, skipping the merges; braid always merges.
 * The two agree exactly when every token is reachable by merging, which the
 * importer checks instead of carrying a second encoding rule into GGUF.
 */
import { BYTE_TO_CHAR, CHAR_TO_BYTE } from './byte-map.ts';
import { bpeMerge, PairRanks, type MergeTable } from './bpe.ts';
import { StringIndex } from './string-index.ts';

/** Byte-level tokens (undefined = hole) that merging their bytes does not yield as one token. */
export function unreachableTokens(
  tokens: readonly (string | undefined)[],
  merges: readonly string[],
): { count: number; first: string | undefined } {
  const idOf = new StringIndex(tokens.length);
  tokens.forEach((t, id) => t !== undefined && idOf.add(t, id));
  // The same table BpeTokenizer builds: merges with unknown parts never fire; the first rank of a pair wins.
  const ranks = new PairRanks(merges.length);
  const result: number[] = [];
  for (const m of merges) {
    const sp = m.indexOf(' ', 1);
    const l = idOf.get(m, 0, sp);
    const r = idOf.get(m, sp + 1);
    const res = idOf.getWithout(m, sp);
    if (sp > 0 && l >= 0 && r >= 0 && res >= 0 && ranks.add(l, r, result.length)) result.push(res);
  }
  const table: MergeTable = { ranks, result: Int32Array.from(result) };
  const byteId = BYTE_TO_CHAR.map((c) => idOf.get(c));

  let count = 0;
  let first: string | undefined;
  tokens.forEach((t, id) => {
    if (t === undefined || t.length < 2) return;
    const start: number[] = [];
    for (const ch of t) start.push(byteId[CHAR_TO_BYTE.get(ch) ?? -1] ?? -1);
    const out = start.includes(-1) ? [] : bpeMerge(start, table);
    if (out.length !== 1 || out[0] !== id) {
      count++;
      first ??= t;
    }
  });
  return { count, first };
}
