/**
 * The tokenizer and chat template the default model is built with
 * (models/tokenizer/braid-bpe-4k.json, embedded by `braid init`), loaded the
 * way a model file's tokenizer is, so training tokenizes exactly as serving does.
 */
import { DEFAULT_TOKENIZER_PATH } from '../../model-init/init-chimera.ts';
import { loadTokenizer } from '../../tokenizer/load.ts';
import { readTokenizerSpec, tokenizerMetadata } from '../../tokenizer/spec.ts';
import { DocumentEncoder } from './encode.ts';

/** An encoder for the committed tokenizer (or another spec file) and its chat template. */
export function defaultEncoder(specPath: string = DEFAULT_TOKENIZER_PATH): DocumentEncoder {
  const spec = readTokenizerSpec(specPath);
  return new DocumentEncoder(loadTokenizer(new Map(tokenizerMetadata(spec))), spec.chat_template);
}
