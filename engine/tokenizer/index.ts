/** The tokenizer module's public surface. */
export { loadTokenizer } from './load.ts';
export { BpeTokenizer, TokenType } from './tokenizer.ts';
export { parseTokenizerSpec, readTokenizerSpec, tokenizerMetadata, type TokenizerSpec } from './spec.ts';
export { PRE_TOKENIZER_NAMES } from './pretokenize.ts';
export { hfTokenizerOptionsFromConfig, tokenizerSpecFromHf, type HfTokenizerOptions } from './hf.ts';
export { parseTiktokenRanks, tokenizerSpecFromTiktoken, type TiktokenImportOptions } from './tiktoken.ts';
