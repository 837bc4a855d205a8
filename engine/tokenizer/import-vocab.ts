/**
 * The common end of the foreign-tokenizer importers (hf.ts, tiktoken.ts): a
 * byte-level vocabulary with merges and added tokens becomes a TokenizerSpec,
 * the form braid embeds in GGUF (spec.ts).
 */
import { BYTE_TO_CHAR } from './byte-map.ts';
import { PRE_TOKENIZER_NAMES } from './pretokenize.ts';
import type { TokenizerSpec } from './spec.ts';
import { TokenType } from './tokenizer.ts';

export interface AddedToken {
  id: number;
  /** Raw text (not byte-level), matched in the input when parseSpecial. */
  content: string;
  /** true: a control token (skipped by skipSpecial); false: user-defined text. */
  special: boolean;
}

export interface ImportedVocab {
  /** id → byte-level token string (undefined: not in the vocabulary). */
  tokens: (string | undefined)[];
  /** "left right" byte-level strings in rank order. */
  merges: string[];
  added: AddedToken[];
}

/** Which tokens play bos/eos/pad, by text (tokenizer_config.json names them so). */
export interface SpecialTokenNames {
  /** Default "<|endoftext|>" when the vocabulary has it. */
  eosToken?: string;
  /** Default: the eos token (GPT-2 uses <|endoftext|> for both). */
  bosToken?: string;
  /** Default: the eos token (GPT-2 has no pad token; its users pad with eos). */
  padToken?: string;
  /** Whether a prompt starts with bos; GPT-2 and o200k tokenizers add none. */
  addBos?: boolean;
}

export interface SpecFromVocabOptions extends SpecialTokenNames {
  name: string;
  pre: string;
  chatTemplate?: string;
  provenance: string;
}

/** Guard on the id space: ids index a dense array, and GGUF stores them as u32. */
export const MAX_VOCAB = 1 << 24;

export function specFromVocab(vocab: ImportedVocab, opts: SpecFromVocabOptions): TokenizerSpec {
  if (!PRE_TOKENIZER_NAMES.includes(opts.pre)) {
    throw new Error(`pre-tokenizer "${opts.pre}" is not one braid applies (${PRE_TOKENIZER_NAMES.join(', ')})`);
  }
  let size = vocab.tokens.length;
  if (size > MAX_VOCAB) throw new Error(`vocabulary of ${size} tokens is larger than ${MAX_VOCAB}`);
  const checkId = (id: number, what: string) => {
    if (!Number.isInteger(id) || id < 0 || id >= MAX_VOCAB) throw new Error(`${what} has id ${id}, not an integer in 0..${MAX_VOCAB - 1}`);
    size = Math.max(size, id + 1);
  };
  for (const a of vocab.added) checkId(a.id, `added token ${JSON.stringify(a.content)}`);

  // Loops, not map(): the vocabulary may have holes, which map() would keep as holes.
  const tokens: (string | undefined)[] = new Array<string | undefined>(size);
  const types: number[] = new Array<number>(size);
  for (let id = 0; id < size; id++) {
    tokens[id] = vocab.tokens[id];
    types[id] = tokens[id] === undefined ? TokenType.unused : TokenType.normal;
  }
  // An added token may restate a vocabulary entry (GPT-2's <|endoftext|>); its text wins, as in HF.
  for (const a of vocab.added) {
    tokens[a.id] = a.content;
    types[a.id] = a.special ? TokenType.control : TokenType.userDefined;
  }
  const byteOf = new Map(BYTE_TO_CHAR.map((c, b) => [c, b]));
  const haveByte = new Array<boolean>(256).fill(false);
  for (let id = 0; id < size; id++) {
    const t = tokens[id];
    // Unassigned ids (o200k_base leaves holes between its specials) decode to nothing; llama.cpp names them so.
    if (t === undefined) tokens[id] = `[PAD${id}]`;
    else if (t.length === 1 && types[id] === TokenType.normal && byteOf.has(t)) haveByte[byteOf.get(t)!] = true;
  }
  for (let b = 0; b < 256; b++) {
    if (!haveByte[b]) {
      throw new Error(`not a byte-level BPE vocabulary: no token for byte 0x${b.toString(16).padStart(2, '0')}`);
    }
  }

  const all = tokens as string[];
  const idOf = (text: string, role: string): number => {
    // Added tokens first: their raw text is what configs name, and it can shadow a byte-level spelling.
    const added = vocab.added.find((a) => a.content === text);
    if (added) return added.id;
    const id = all.indexOf(text);
    if (id < 0) throw new Error(`${role} token ${JSON.stringify(text)} is not in the vocabulary`);
    return id;
  };
  let eosText = opts.eosToken;
  if (eosText === undefined) {
    if (!all.includes('<|endoftext|>')) throw new Error('no eos token: the vocabulary has no <|endoftext|>, so name one (eosToken)');
    eosText = '<|endoftext|>';
  }
  const eos = idOf(eosText, 'eos');
  const bos = opts.bosToken === undefined ? eos : idOf(opts.bosToken, 'bos');
  const pad = opts.padToken === undefined ? eos : idOf(opts.padToken, 'pad');

  return {
    name: opts.name,
    model: 'gpt2',
    pre: opts.pre,
    tokens: all,
    token_type: types,
    merges: vocab.merges,
    bos_token_id: bos,
    eos_token_id: eos,
    padding_token_id: pad,
    add_bos_token: opts.addBos ?? false,
    chat_template: opts.chatTemplate ?? '',
    provenance: opts.provenance,
  };
}
