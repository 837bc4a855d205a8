/**
 * loadTokenizer: builds the tokenizer of a model from its GGUF metadata
 * (`tokenizer.ggml.*`, docs/format.md).
 */
import { defaultChatTemplate } from '../chat/template.ts';
import {
  metaNumberArray,
  metaOptNumber,
  metaOptString,
  metaString,
  metaStringArray,
  type GgufMetadata,
} from '../gguf/types.ts';
import type { Tokenizer } from '../types.ts';
import { preTokenizer } from './pretokenize.ts';
import { BpeTokenizer } from './tokenizer.ts';

/** Special tokens that end an assistant turn in common chat formats. */
const END_OF_TURN = ['<|im_end|>', '<|eot_id|>', '<|end|>', '<end_of_turn>', '<|endoftext|>'];

export function loadTokenizer(meta: GgufMetadata): Tokenizer {
  const model = metaString(meta, 'tokenizer.ggml.model');
  if (model !== 'gpt2') {
    throw new Error(`unsupported tokenizer.ggml.model "${model}" (braid reads byte-level BPE, "gpt2")`);
  }
  const tokens = metaStringArray(meta, 'tokenizer.ggml.tokens');
  const tokenTypes = meta.has('tokenizer.ggml.token_type') ? metaNumberArray(meta, 'tokenizer.ggml.token_type') : [];
  const merges = meta.has('tokenizer.ggml.merges') ? metaStringArray(meta, 'tokenizer.ggml.merges') : [];
  const eosId = metaOptNumber(meta, 'tokenizer.ggml.eos_token_id');
  if (eosId === undefined) throw new Error('GGUF metadata key "tokenizer.ggml.eos_token_id" is missing');
  // Tokenizer.bosId means "prompts start with this", so a vocabulary that has a
  // bos token but does not add it (GPT-2, o200k: add_bos_token false) has none.
  const addBos = meta.get('tokenizer.ggml.add_bos_token');
  if (addBos !== undefined && addBos.type !== 'bool') throw new Error('GGUF metadata key "tokenizer.ggml.add_bos_token" must be a bool');
  const bosId = addBos?.value === false ? null : (metaOptNumber(meta, 'tokenizer.ggml.bos_token_id') ?? null);

  // End-of-turn: llama.cpp's explicit key, plus any known marker the chat
  // template (or the default one for this vocabulary) actually emits.
  const template = metaOptString(meta, 'tokenizer.chat_template') ?? defaultChatTemplate(tokens);
  const stop: number[] = [];
  const eot = metaOptNumber(meta, 'tokenizer.ggml.eot_token_id');
  if (eot !== undefined) stop.push(eot);
  for (const text of END_OF_TURN) {
    const id = tokens.indexOf(text);
    if (id >= 0 && template.includes(text)) stop.push(id);
  }

  return new BpeTokenizer({
    tokens,
    tokenTypes,
    merges,
    preTokenize: preTokenizer(metaOptString(meta, 'tokenizer.ggml.pre') ?? 'default'),
    bosId,
    eosId,
    stopIds: stop,
  });
}
