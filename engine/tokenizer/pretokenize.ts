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

/*
 * Imported vocabularies must split exactly as the Rust engines they were
 * trained with (HF tokenizers' onig, tiktoken's fancy-regex). Their `\s` is the
 * Unicode White_Space property, while JS `\s` also takes U+FEFF and misses
 * U+0085, so these patterns spell whitespace out as \p{White_Space}.
 */
const S = String.raw`\p{White_Space}`;
const NOT_S = String.raw`\P{White_Space}`;

/** GPT-2 as HF's ByteLevel pre-tokenizer applies it (llama.cpp "gpt-2"). */
const GPT2_HF = new RegExp(
  String.raw`'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^${S}\p{L}\p{N}]+|${S}+(?!${NOT_S})|${S}+`,
  'gu',
);

/*
 * tiktoken's o200k_base (llama.cpp "gpt-4o"): a word is an optional leading
 * non-letter, upper-case letters then lower-case ones (so "helloWorld" splits
 * before "World"), then an optional contraction; digits in runs of up to three;
 * punctuation keeps trailing newlines and slashes. The source spells the
 * contraction (?i:'s|'t|...), a case-insensitive group that Node 20's regex
 * lacks; Unicode case folding also maps "ſ" (U+017F) to "s", so it is listed.
 */
const CONTRACTION = `(?:'[sSſ]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])?`;
const UPPER = String.raw`[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]`;
const LOWER = String.raw`[\p{Ll}\p{Lm}\p{Lo}\p{M}]`;
const O200K = new RegExp(
  [
    String.raw`[^\r\n\p{L}\p{N}]?${UPPER}*${LOWER}+${CONTRACTION}`,
    String.raw`[^\r\n\p{L}\p{N}]?${UPPER}+${LOWER}*${CONTRACTION}`,
    String.raw`\p{N}{1,3}`,
    String.raw` ?[^${S}\p{L}\p{N}]+[\r\n/]*`,
    String.raw`${S}*[\r\n]+`,
    String.raw`${S}+(?!${NOT_S})`,
    String.raw`${S}+`,
  ].join('|'),
  'gu',
);

const PRE: ReadonlyMap<string, RegExp> = new Map([
  ['braid', BRAID],
  ['gpt2', GPT2],
  ['default', GPT2],
  ['gpt-2', GPT2_HF],
  ['gpt-4o', O200K],
]);

/** The `tokenizer.ggml.pre` values braid can apply. */
export const PRE_TOKENIZER_NAMES: readonly string[] = [...PRE.keys()];

export type PreTokenizer = (text: string) => string[];

export function preTokenizer(name: string): PreTokenizer {
  const re = PRE.get(name);
  if (!re) {
    throw new Error(`unsupported tokenizer.ggml.pre "${name}" (supported: ${PRE_TOKENIZER_NAMES.join(', ')})`);
  }
  // The alternatives cover every character, so the pieces concatenate back to the
  // text. String.prototype.match with a g regex ignores and resets lastIndex.
  return (text) => text.match(re) ?? [];
}
