/**
 * A tokenizer as committed to the repo (models/tokenizer/*.json) and its
 * translation into GGUF `tokenizer.*` metadata (docs/format.md).
 */
import { readFileSync } from 'node:fs';
import { gv, type GgufValue } from '../gguf/types.ts';
import { PRE_TOKENIZER_NAMES } from './pretokenize.ts';
import { TokenType } from './tokenizer.ts';

export interface TokenizerSpec {
  name: string;
  /** tokenizer.ggml.model; braid writes "gpt2" (byte-level BPE). */
  model: 'gpt2';
  /** tokenizer.ggml.pre (engine/tokenizer/pretokenize.ts): "braid", or "gpt-2" / "gpt-4o" for imports. */
  pre: string;
  /** Byte-level strings, index = id. */
  tokens: string[];
  /** 1 normal, 3 control (llama.cpp token types). */
  token_type: number[];
  /** "left right" in rank order. */
  merges: string[];
  bos_token_id: number;
  eos_token_id: number;
  padding_token_id: number;
  /**
   * tokenizer.ggml.add_bos_token: whether prompts start with bos. Absent means
   * yes (braid's own tokenizers); GPT-2 and o200k imports say no, as HF does.
   */
  add_bos_token?: boolean;
  /** Jinja; "" = none (the server then uses ChatML), and no key is written. */
  chat_template: string;
  /** How the tokenizer was produced (corpus, script, settings). */
  provenance: string;
}

function fail(where: string, what: string): never {
  throw new Error(`tokenizer spec ${where}: ${what}`);
}

/** Checks a parsed JSON value has the TokenizerSpec shape. */
export function parseTokenizerSpec(json: unknown, where = '<json>'): TokenizerSpec {
  if (typeof json !== 'object' || json === null) fail(where, 'not an object');
  const o = json as Record<string, unknown>;
  const str = (k: string) => (typeof o[k] === 'string' ? (o[k] as string) : fail(where, `"${k}" must be a string`));
  const int = (k: string) => (Number.isInteger(o[k]) ? (o[k] as number) : fail(where, `"${k}" must be an integer`));
  const arr = <T>(k: string, ok: (v: unknown) => boolean): T[] => {
    const v = o[k];
    if (!Array.isArray(v) || !v.every(ok)) fail(where, `"${k}" must be an array of the right type`);
    return v as T[];
  };
  if (o.model !== 'gpt2') fail(where, `"model" must be "gpt2", got ${JSON.stringify(o.model)}`);
  const spec: TokenizerSpec = {
    name: str('name'),
    model: 'gpt2',
    pre: str('pre'),
    tokens: arr<string>('tokens', (v) => typeof v === 'string'),
    token_type: arr<number>('token_type', Number.isInteger),
    merges: arr<string>('merges', (v) => typeof v === 'string'),
    bos_token_id: int('bos_token_id'),
    eos_token_id: int('eos_token_id'),
    padding_token_id: int('padding_token_id'),
    chat_template: str('chat_template'),
    provenance: str('provenance'),
  };
  if (o.add_bos_token !== undefined) {
    if (typeof o.add_bos_token !== 'boolean') fail(where, '"add_bos_token" must be a boolean');
    spec.add_bos_token = o.add_bos_token;
  }
  if (!PRE_TOKENIZER_NAMES.includes(spec.pre)) {
    fail(where, `"pre" ${JSON.stringify(spec.pre)} is not one of ${PRE_TOKENIZER_NAMES.join(', ')}`);
  }
  if (spec.token_type.length !== spec.tokens.length) fail(where, 'token_type and tokens differ in length');
  for (const k of ['bos_token_id', 'eos_token_id', 'padding_token_id'] as const) {
    if (spec[k] < 0 || spec[k] >= spec.tokens.length) fail(where, `${k} ${spec[k]} is outside the vocabulary`);
  }
  return spec;
}

export function readTokenizerSpec(path: string): TokenizerSpec {
  return parseTokenizerSpec(JSON.parse(readFileSync(path, 'utf8')), path);
}

/**
 * GGUF metadata entries for a tokenizer. vocabSize > spec size pads the
 * vocabulary with unused tokens "<|unused_N|>" (a model's embedding may be
 * rounded up); smaller is an error.
 */
export function tokenizerMetadata(spec: TokenizerSpec, vocabSize = spec.tokens.length): [string, GgufValue][] {
  if (vocabSize < spec.tokens.length) {
    throw new Error(`vocab size ${vocabSize} is smaller than tokenizer "${spec.name}" (${spec.tokens.length} tokens)`);
  }
  const tokens = [...spec.tokens];
  const types = [...spec.token_type];
  for (let i = spec.tokens.length; i < vocabSize; i++) {
    tokens.push(`<|unused_${i - spec.tokens.length}|>`);
    types.push(TokenType.unused);
  }
  const entries: [string, GgufValue][] = [
    ['tokenizer.ggml.model', gv.str(spec.model)],
    ['tokenizer.ggml.pre', gv.str(spec.pre)],
    ['tokenizer.ggml.tokens', gv.strArray(tokens)],
    ['tokenizer.ggml.token_type', gv.numArray('i32', types)],
    ['tokenizer.ggml.merges', gv.strArray(spec.merges)],
    ['tokenizer.ggml.bos_token_id', gv.u32(spec.bos_token_id)],
    ['tokenizer.ggml.eos_token_id', gv.u32(spec.eos_token_id)],
    ['tokenizer.ggml.padding_token_id', gv.u32(spec.padding_token_id)],
  ];
  if (spec.add_bos_token !== undefined) entries.push(['tokenizer.ggml.add_bos_token', gv.bool(spec.add_bos_token)]);
  if (spec.chat_template !== '') entries.push(['tokenizer.chat_template', gv.str(spec.chat_template)]);
  return entries;
}
