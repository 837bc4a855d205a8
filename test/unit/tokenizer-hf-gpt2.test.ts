/**
 * GPT-2 (the MoA model card's tokenizer) from a tokenizer.json, against an
 * independent encoder: gpt-tokenizer's r50k_base, which is GPT-2's vocabulary
 * with GPT-2's ids. The tokenizer.json is built from that package's bundled
 * ranks file, so both sides encode with the same vocabulary and any
 * difference is ours.
 */
import { describe, expect, it } from 'vitest';
import { decode as refDecode, encode as refEncode } from 'gpt-tokenizer/encoding/r50k_base';
import { BYTE_TO_CHAR } from '../../engine/tokenizer/byte-map.ts';
import { hfTokenizerOptionsFromConfig, tokenizerSpecFromHf } from '../../engine/tokenizer/hf.ts';
import { loadTokenizer } from '../../engine/tokenizer/load.ts';
import { tokenizerMetadata } from '../../engine/tokenizer/spec.ts';
import { mergesFromRanks, parseTiktokenRanks } from '../../engine/tokenizer/tiktoken.ts';
import {
  FIXED_STRINGS,
  SPECIAL_STRINGS,
  encodeWithSpecials,
  hfTokenizerJson,
  referenceRanks,
} from '../fixtures/tokenizers/reference.ts';

const EOT = 50256;
const ranks = parseTiktokenRanks(referenceRanks('r50k_base'));
const vocab: Record<string, number> = { '<|endoftext|>': EOT };
ranks.forEach((s, r) => (vocab[[...s!].map((c) => BYTE_TO_CHAR[c.charCodeAt(0)]!).join('')] = r));
// The newer tokenizer.json form: merges as [left, right] pairs.
const merges = mergesFromRanks(ranks).map((m) => m.split(' ') as [string, string]);
// ignore_merges as Llama-3-era exports set it: accepted because every GPT-2 token is reachable by merging.
const json = hfTokenizerJson({ vocab, merges, specials: { '<|endoftext|>': EOT }, split: 'gpt2', ignoreMerges: true });
// GPT-2's tokenizer_config.json: no pad token, so pad = eos.
const config = { bos_token: '<|endoftext|>', eos_token: '<|endoftext|>', unk_token: '<|endoftext|>', add_prefix_space: false };
const spec = tokenizerSpecFromHf(json, { ...hfTokenizerOptionsFromConfig(config), name: 'gpt2' });
const tok = loadTokenizer(new Map(tokenizerMetadata(spec)));

describe('GPT-2 tokenizer.json', () => {
  it('has GPT-2’s shape: 50257 tokens, 50000 merges, <|endoftext|> as bos = eos = pad, no bos added', () => {
    expect(spec.pre).toBe('gpt-2');
    expect(spec.tokens).toHaveLength(50257);
    expect(spec.merges).toHaveLength(50000);
    expect(spec.merges[0]).toBe('Ġ t');
    expect([spec.bos_token_id, spec.eos_token_id, spec.padding_token_id]).toEqual([EOT, EOT, EOT]);
    expect(spec.add_bos_token).toBe(false);
    expect(tok.vocabSize).toBe(50257);
    expect(tok.bosId).toBeNull();
    expect(tok.eosId).toBe(EOT);
    expect([...tok.specialIds]).toEqual([EOT]);
  });

  it('gives the well-known ids', () => {
    expect(tok.encode('Hello world')).toEqual([15496, 995]);
    expect(tok.encode(' the')).toEqual([262]);
    expect(tok.encode('<|endoftext|>', { parseSpecial: true })).toEqual([EOT]);
    // gpt-tokenizer agrees where its special-token search works (at the start).
    expect(refEncode('<|endoftext|>Hello', { allowedSpecial: 'all' })).toEqual([EOT, 15496]);
  });

  it.each(FIXED_STRINGS.map((s) => [JSON.stringify(s).slice(0, 60), s]))('matches gpt-tokenizer on %s', (_, text) => {
    const ids = tok.encode(text);
    expect(ids).toEqual(refEncode(text));
    expect(tok.decode(ids)).toBe(text);
    expect(refDecode(ids)).toBe(text);
  });

  it('matches gpt-tokenizer on special tokens, parsed and as plain text', () => {
    for (const text of SPECIAL_STRINGS) {
      const parsed = tok.encode(text, { parseSpecial: true });
      const plainRef = (s: string) => refEncode(s, { disallowedSpecial: new Set() });
      expect(parsed, text).toEqual(encodeWithSpecials(text, { '<|endoftext|>': EOT }, plainRef));
      expect(tok.decode(parsed)).toBe(text);
      const plain = tok.encode(text);
      expect(plain, text).toEqual(plainRef(text));
      expect(plain).not.toContain(EOT);
      expect(tok.decode(plain)).toBe(text);
    }
    expect(tok.decode(tok.encode('a<|endoftext|>b', { parseSpecial: true }), { skipSpecial: true })).toBe('ab');
  });

  it('matches gpt-tokenizer on this repository’s tokenizer sources and tests', async () => {
    const { readFileSync, readdirSync } = await import('node:fs');
    const dir = new URL('../../engine/tokenizer/', import.meta.url);
    let text = readdirSync(dir).map((f) => readFileSync(new URL(f, dir), 'utf8')).join('\n');
    text += readFileSync(new URL('./tokenizer.test.ts', import.meta.url), 'utf8');
    expect(text.length).toBeGreaterThan(30_000);
    const ids = tok.encode(text);
    expect(ids).toEqual(refEncode(text, { disallowedSpecial: new Set() }));
    expect(tok.decode(ids)).toBe(text);
  });
});
