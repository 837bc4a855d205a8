/**
 * A prompt's text checked against the context before it is tokenized. BPE on
 * the main thread takes about a second for a few MB, and every other request
 * (a /health probe included) waits that long, only for a 400 that the text's
 * size already decides: no token covers more bytes than the vocabulary's
 * longest, so bytes / longest is a lower bound on the token count. A text
 * over contextLength × longest bytes can never fit and is refused at once;
 * one under it is tokenized and measured exactly as before.
 */
import type { Tokenizer } from '../engine/types.ts';
import { invalidRequest } from './errors.ts';

const longestCache = new WeakMap<Tokenizer, number>();

/** Bytes of the vocabulary's longest token (at least 1). */
function longestTokenBytes(tokenizer: Tokenizer): number {
  let longest = longestCache.get(tokenizer);
  if (longest === undefined) {
    longest = 1;
    for (let id = 0; id < tokenizer.vocabSize; id++) longest = Math.max(longest, tokenizer.tokenBytes(id).length);
    longestCache.set(tokenizer, longest);
  }
  return longest;
}

/** Throws context_length_exceeded, naming `param`, when `texts` together cannot fit in `contextLength` tokens. */
export function checkTextCanFit(tokenizer: Tokenizer, texts: readonly string[], contextLength: number, param: string): void {
  let bytes = 0;
  for (const t of texts) bytes += Buffer.byteLength(t, 'utf8');
  const atLeast = Math.ceil(bytes / longestTokenBytes(tokenizer));
  if (atLeast > contextLength) {
    throw invalidRequest(
      `This model's maximum context length is ${contextLength} tokens. However, '${param}' holds ${bytes} bytes of text, which is at least ${atLeast} tokens. Please reduce the input.`,
      param,
      'context_length_exceeded',
    );
  }
}
