/**
 * Pre-tokenizers: the regex that splits text into pieces before BPE, chosen
 * by `tokenizer.ggml.pre`. Merges never cross a piece boundary, and encode
 * caches BPE results per piece (pieces repeat a lot in real text).
 */

/** GPT-2's original split (letters, numbers, other, whitespace; English contractions). */
const GPT2 = /'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+/gu;

/**
 * braid's split: GPT-2's, with combining marks kept with their letters (so
 * decomposed "é" stays one piece) and digits in runs of at most three (so
 * numbers tokenize the same way whatever their length).
 */
const BRAID = /'s|'t|'re|'ve|'m|'ll|'d| ?[\p{L}\p{M}]+| ?\p{N}{1,3}| ?[^\s\p{L}\p{M}\p{N}]+|\s+(?!\S)|\s+/gu;

const PRE: ReadonlyMap<string, RegExp> = new Map([
  ['braid', BRAID],
  ['gpt2', GPT2],
  ['default', GPT2],
]);

export type PreTokenizer = (text: string) => string[];

export function preTokenizer(name: string): PreTokenizer {
  const re = PRE.get(name);
  if (!re) {
    throw new Error(`unsupported tokenizer.ggml.pre "${name}" (supported: ${[...PRE.keys()].join(', ')})`);
  }
  // The alternatives cover every character, so the pieces concatenate back to the
  // text. String.prototype.match with a g regex ignores and resets lastIndex.
  return (text) => text.match(re) ?? [];
}
