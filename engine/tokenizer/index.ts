/** The tokenizer module's public surface. */
export { loadTokenizer } from './load.ts';
export { BpeTokenizer, TokenType } from './tokenizer.ts';
export { parseTokenizerSpec, readTokenizerSpec, tokenizerMetadata, type TokenizerSpec } from './spec.ts';
