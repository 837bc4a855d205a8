/**
 * The tokenizer of a Hugging Face folder as GGUF `tokenizer.ggml.*` metadata:
 * tokenizer.json through braid's importer (byte-level BPE only, refused
 * otherwise), special-token names from tokenizer_config.json, and then the
 * ids config.json states (`bos_token_id`, `eos_token_id`, `pad_token_id`),
 * which win because they are what the model was trained with. A missing pad
 * is the eos (GPT-2 has no pad token; the MoA card pads with eos). The
 * embedding may be larger than the vocabulary (unused rows get placeholder
 * tokens), never smaller.
 */
import type { GgufValue } from '../gguf/types.ts';
import { hfTokenizerOptionsFromConfig, tokenizerSpecFromHf } from '../tokenizer/hf.ts';
import { tokenizerMetadata, type TokenizerSpec } from '../tokenizer/spec.ts';
import type { HfFolder } from './hf-folder.ts';

export interface ConfigTokenIds {
  bos_token_id?: number;
  eos_token_id?: number;
  pad_token_id?: number;
}

export function hfTokenizerSpec(folder: HfFolder, vocabSize: number, ids: ConfigTokenIds, name: string): TokenizerSpec {
  const opts = folder.tokenizerConfig === undefined ? {} : hfTokenizerOptionsFromConfig(folder.tokenizerConfig);
  const spec = tokenizerSpecFromHf(folder.tokenizer, { ...opts, name, provenance: `imported from ${folder.dir}/tokenizer.json by braid convert` });
  if (spec.tokens.length > vocabSize) {
    throw new Error(`tokenizer.json has ${spec.tokens.length} tokens, more than the model's vocab_size ${vocabSize}`);
  }
  const check = (k: keyof ConfigTokenIds): number | undefined => {
    const id = ids[k];
    if (id !== undefined && id >= spec.tokens.length) {
      throw new Error(`config.json "${k}" ${id} is not a token of tokenizer.json (${spec.tokens.length} tokens)`);
    }
    return id;
  };
  const eos = check('eos_token_id') ?? spec.eos_token_id;
  return {
    ...spec,
    eos_token_id: eos,
    bos_token_id: check('bos_token_id') ?? spec.bos_token_id,
    padding_token_id: check('pad_token_id') ?? (opts.padToken === undefined ? eos : spec.padding_token_id),
  };
}

export function hfTokenizerMetadata(folder: HfFolder, vocabSize: number, ids: ConfigTokenIds, name: string): [string, GgufValue][] {
  return tokenizerMetadata(hfTokenizerSpec(folder, vocabSize, ids, name), vocabSize);
}
