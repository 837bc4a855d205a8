/**
 * o200k_base (the Chimera seed's vocabulary: 200073 = o200k + specials),
 * imported twice — from the tiktoken ranks file and from a tokenizer.json of
 * the shape HF exports for o200k models — and checked against an independent
 * encoder, gpt-tokenizer's o200k_base, on the same bundled vocabulary.
 */
import { readFileSync, readdirSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { encode as refEncode } from 'gpt-tokenizer/encoding/o200k_base';
import { gv } from '../../engine/gguf/types.ts';
import { tokenizerSpecFromHf } from '../../engine/tokenizer/hf.ts';
import { loadTokenizer } from '../../engine/tokenizer/load.ts';
import { tokenizerMetadata } from '../../engine/tokenizer/spec.ts';
import { tokenizerSpecFromTiktoken } from '../../engine/tokenizer/tiktoken.ts';
import { TokenType } from '../../engine/tokenizer/tokenizer.ts';
import {
  FIXED_STRINGS,
  SPECIAL_STRINGS,
  encodeWithSpecials,
  hfTokenizerJson,
  referenceRanks,
} from '../fixtures/tokenizers/reference.ts';

/** Specials with gpt-tokenizer's ids, so both sides agree on them. */
const SPECIALS = { '<|endoftext|>': 199999, '<|im_start|>': 200003, '<|im_end|>': 200004 };
const CHIMERA_VOCAB = 200073;

const fromTiktoken = tokenizerSpecFromTiktoken(referenceRanks('o200k_base'), {
  name: 'o200k_base',
  pre: 'gpt-4o',
  specials: SPECIALS,
});
const vocab: Record<string, number> = {};
fromTiktoken.tokens.forEach((t, id) => fromTiktoken.token_type[id] === TokenType.normal && (vocab[t] = id));
const json = hfTokenizerJson({ vocab, merges: fromTiktoken.merges, specials: SPECIALS, split: 'o200k' });
const spec = tokenizerSpecFromHf(json, { name: 'o200k_base' });
const meta = new Map(tokenizerMetadata(spec, CHIMERA_VOCAB));
const tok = loadTokenizer(meta);
const plainRef = (s: string) => refEncode(s, { disallowedSpecial: new Set() });

describe('o200k tokenizer (tiktoken ranks and tokenizer.json)', () => {
  it('imports the same vocabulary and merges both ways', () => {
    expect(spec.pre).toBe('gpt-4o');
    expect(spec.tokens).toHaveLength(200005);
    // Loops, not toEqual: diffing 200k-element arrays on failure would swamp the report.
    let differ = -1;
    for (let i = 0; i < spec.tokens.length && differ < 0; i++) {
      if (spec.tokens[i] !== fromTiktoken.tokens[i] || spec.token_type[i] !== fromTiktoken.token_type[i]) differ = i;
    }
    expect(differ).toBe(-1);
    expect(spec.merges.length).toBe(fromTiktoken.merges.length);
    expect(spec.merges.every((m, i) => m === fromTiktoken.merges[i])).toBe(true);
    expect(spec.merges.length).toBe(199998 - 256);
    expect(fromTiktoken.eos_token_id).toBe(199999);
    // Ranks end at 199997; 199998 and 200000..200002 are holes that decode to nothing.
    expect(spec.tokens[199998]).toBe('[PAD199998]');
    expect(spec.token_type[200001]).toBe(TokenType.unused);
  });

  it('fills the Chimera seed vocabulary (200073) and writes pre = gpt-4o', () => {
    expect(tok.vocabSize).toBe(CHIMERA_VOCAB);
    expect(meta.get('tokenizer.ggml.pre')).toEqual(gv.str('gpt-4o'));
    expect(meta.get('tokenizer.ggml.add_bos_token')).toEqual(gv.bool(false));
    expect(tok.bosId).toBeNull();
    expect(tok.eosId).toBe(199999);
    expect(tok.decode([199998, 200001, CHIMERA_VOCAB - 1])).toBe('');
  });

  it('gives known ids', () => {
    expect(tok.encode('Hello world')).toEqual([13225, 2375]);
    expect(tok.encode('hello world')).toEqual([24912, 2375]);
    expect(refEncode('Hello world')).toEqual([13225, 2375]);
  });

  it.each(FIXED_STRINGS.map((s) => [JSON.stringify(s).slice(0, 60), s]))('matches gpt-tokenizer on %s', (_, text) => {
    const ids = tok.encode(text);
    expect(ids).toEqual(plainRef(text));
    expect(tok.decode(ids)).toBe(text);
  });

  it('matches on special tokens, parsed and as plain text, and decodes ChatML', () => {
    const texts = [...SPECIAL_STRINGS, '<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n'];
    for (const text of texts) {
      const parsed = tok.encode(text, { parseSpecial: true });
      expect(parsed, text).toEqual(encodeWithSpecials(text, SPECIALS, plainRef));
      expect(tok.decode(parsed)).toBe(text);
      expect(tok.encode(text), text).toEqual(plainRef(text));
    }
    const chat = tok.encode('<|im_start|>user\nhi<|im_end|>', { parseSpecial: true });
    expect(chat[0]).toBe(200003);
    expect(chat.at(-1)).toBe(200004);
    expect(tok.decode(chat, { skipSpecial: true })).toBe('user\nhi');
    // The loader makes <|im_end|> a stop id because the default (ChatML) template emits it.
    expect(tok.stopIds.has(200004)).toBe(true);
  });

  it('matches gpt-tokenizer on this repository’s tokenizer sources and tests', () => {
    const dir = new URL('../../engine/tokenizer/', import.meta.url);
    let text = readdirSync(dir).map((f) => readFileSync(new URL(f, dir), 'utf8')).join('\n');
    text += readFileSync(new URL('./tokenizer.test.ts', import.meta.url), 'utf8');
    const ids = tok.encode(text);
    expect(ids).toEqual(plainRef(text));
    expect(tok.decode(ids)).toBe(text);
  });
});
