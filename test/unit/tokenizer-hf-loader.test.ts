/**
 * The tokenizer.json / tiktoken importers on small hand-made inputs: the ids a
 * tiny vocabulary must give, the GGUF keys the spec becomes, and every
 * refusal. (The full GPT-2 and o200k vocabularies are checked against an
 * independent encoder in tokenizer-hf-gpt2 / tokenizer-hf-o200k.)
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { gv } from '../../engine/gguf/types.ts';
import { hfTokenizerOptionsFromConfig, tokenizerSpecFromHf } from '../../engine/tokenizer/hf.ts';
import { loadTokenizer } from '../../engine/tokenizer/load.ts';
import { preTokenizer } from '../../engine/tokenizer/pretokenize.ts';
import { parseTokenizerSpec, tokenizerMetadata } from '../../engine/tokenizer/spec.ts';
import { mergesFromRanks, parseTiktokenRanks, tokenizerSpecFromTiktoken } from '../../engine/tokenizer/tiktoken.ts';
import { TokenType } from '../../engine/tokenizer/tokenizer.ts';
import { PairRanks } from '../../engine/tokenizer/bpe.ts';
import { StringIndex } from '../../engine/tokenizer/string-index.ts';

const FIXTURE = new URL('../fixtures/tokenizers/tiny-bpe.tokenizer.json', import.meta.url);
type Json = Record<string, unknown> & { model: Record<string, unknown> };
/** A fresh copy each time, so a test can break it without affecting the others. */
const tiny = (): Json => JSON.parse(readFileSync(FIXTURE, 'utf8')) as Json;
const load = (json: unknown, opts = {}) => loadTokenizer(new Map(tokenizerMetadata(tokenizerSpecFromHf(json, opts))));

describe('tokenizer.json import (tiny fixture)', () => {
  it('builds a GPT-2-style spec: byte-level tokens, merges, specials, no bos added', () => {
    const spec = tokenizerSpecFromHf(tiny());
    expect(spec.model).toBe('gpt2');
    expect(spec.pre).toBe('gpt-2');
    expect(spec.tokens).toHaveLength(263);
    expect(spec.tokens[32]).toBe('Ġ');
    expect(spec.tokens.slice(256)).toEqual(['he', 'Ġt', 'Ġthe', 'll', 'ell', '<|endoftext|>', '<tool>']);
    expect(spec.token_type[255]).toBe(TokenType.normal);
    expect(spec.token_type[261]).toBe(TokenType.control);
    expect(spec.token_type[262]).toBe(TokenType.userDefined);
    expect(spec.merges).toEqual(['h e', 'Ġ t', 'Ġt he', 'l l', 'e ll']);
    // GPT-2's convention: <|endoftext|> is bos, eos and pad.
    expect([spec.bos_token_id, spec.eos_token_id, spec.padding_token_id]).toEqual([261, 261, 261]);
    expect(spec.add_bos_token).toBe(false);
    // A spec is also a valid committed tokenizer file.
    expect(parseTokenizerSpec(JSON.parse(JSON.stringify(spec)))).toEqual(spec);
  });

  it('encodes by merge rank, hand-checked', () => {
    const tok = load(tiny());
    // " the": h+e (rank 0), Ġ+t (1), Ġt+he (2). "hello": h+e first, so "e ll" (rank 4) never applies.
    expect(tok.encode(' the hello')).toEqual([258, 32, 256, 259, 111]);
    // "bell": l+l (3), then e+ll (4).
    expect(tok.encode('bell')).toEqual([98, 260]);
    expect(tok.decode([258, 32, 256, 259, 111])).toBe(' the hello');
  });

  it('matches added tokens as HF does: specials with parseSpecial, skipped by skipSpecial', () => {
    const tok = load(tiny());
    const text = 'the<|endoftext|><tool>';
    const parsed = tok.encode(text, { parseSpecial: true });
    expect(parsed).toEqual([116, 256, 261, 262]);
    expect(tok.encode(text)).not.toContain(261);
    expect(tok.decode(parsed)).toBe(text);
    // Only special added tokens are control tokens; <tool> is user text.
    expect(tok.decode(parsed, { skipSpecial: true })).toBe('the<tool>');
    expect(tok.specialIds.has(261)).toBe(true);
    expect(tok.specialIds.has(262)).toBe(false);
  });

  it('writes add_bos_token = false, so the loaded tokenizer prepends nothing', () => {
    const meta = new Map(tokenizerMetadata(tokenizerSpecFromHf(tiny())));
    expect(meta.get('tokenizer.ggml.add_bos_token')).toEqual(gv.bool(false));
    expect(meta.get('tokenizer.ggml.pre')).toEqual(gv.str('gpt-2'));
    // No chat template in a tokenizer.json: no key, so the server falls back to ChatML.
    expect(meta.has('tokenizer.chat_template')).toBe(false);
    expect(loadTokenizer(meta).bosId).toBeNull();
    expect(loadTokenizer(meta).eosId).toBe(261);
    const withBos = new Map(meta).set('tokenizer.ggml.add_bos_token', gv.bool(true));
    expect(loadTokenizer(withBos).bosId).toBe(261);
    expect(() => loadTokenizer(new Map(meta).set('tokenizer.ggml.add_bos_token', gv.u32(0)))).toThrow(/must be a bool/);
  });

  it('reads merges as [left, right] pairs, and a Split + ByteLevel sequence with the GPT-2 regex', () => {
    const json = tiny();
    json.model.merges = (json.model.merges as string[]).map((m) => m.split(' '));
    json.pre_tokenizer = {
      type: 'Sequence',
      pretokenizers: [
        {
          type: 'Split',
          pattern: { Regex: String.raw`'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+` },
          behavior: 'Isolated',
          invert: false,
        },
        { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: false },
      ],
    };
    const spec = tokenizerSpecFromHf(json);
    expect(spec.merges).toEqual(['h e', 'Ġ t', 'Ġt he', 'l l', 'e ll']);
    expect(spec.pre).toBe('gpt-2');
  });

  it('takes bos/eos/pad, add_bos_token and the chat template from tokenizer_config.json', () => {
    const opts = hfTokenizerOptionsFromConfig({
      bos_token: { content: '<tool>', special: false },
      eos_token: '<|endoftext|>',
      pad_token: null,
      add_bos_token: true,
      chat_template: [
        { name: 'tool_use', template: 'x' },
        { name: 'default', template: '{{ messages }}' },
      ],
    });
    expect(opts).toEqual({ bosToken: '<tool>', eosToken: '<|endoftext|>', addBos: true, chatTemplate: '{{ messages }}' });
    const spec = tokenizerSpecFromHf(tiny(), opts);
    expect([spec.bos_token_id, spec.eos_token_id, spec.padding_token_id, spec.add_bos_token]).toEqual([262, 261, 261, true]);
    expect(spec.chat_template).toBe('{{ messages }}');
    // A Llama-3-style post-processor that prepends a special token also means "add bos".
    const json = tiny();
    json.post_processor = {
      type: 'TemplateProcessing',
      single: [{ SpecialToken: { id: '<|endoftext|>', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }],
    };
    const fromTemplate = tokenizerSpecFromHf(json);
    expect([fromTemplate.bos_token_id, fromTemplate.add_bos_token]).toEqual([261, true]);
    expect(() => hfTokenizerOptionsFromConfig({ eos_token: 3 })).toThrow(/"eos_token" must be a string/);
  });

  const refusals: [string, (j: Json) => void, RegExp][] = [
    ['WordPiece', (j) => (j.model = { type: 'WordPiece', vocab: {} }), /not supported: model type "WordPiece"/],
    ['Unigram', (j) => (j.model = { type: 'Unigram', vocab: [] }), /not supported: model type "Unigram"/],
    ['byte fallback', (j) => (j.model.byte_fallback = true), /not supported: BPE byte_fallback/],
    ['dropout', (j) => (j.model.dropout = 0.1), /not supported: BPE dropout/],
    ['subword prefix', (j) => (j.model.continuing_subword_prefix = '##'), /not supported: BPE continuing_subword_prefix/],
    ['normalizer', (j) => (j.normalizer = { type: 'NFKC' }), /not supported: normalizer NFKC/],
    ['Metaspace', (j) => (j.pre_tokenizer = { type: 'Metaspace', replacement: '▁' }), /not supported: pre_tokenizer Metaspace/],
    ['no pre-tokenizer', (j) => (j.pre_tokenizer = null), /not supported: no pre_tokenizer/],
    ['prefix space', (j) => ((j.pre_tokenizer as Json).add_prefix_space = true), /not supported: ByteLevel add_prefix_space/],
    [
      'unknown regex',
      (j) =>
        (j.pre_tokenizer = {
          type: 'Sequence',
          pretokenizers: [
            { type: 'Split', pattern: { Regex: String.raw`\p{N}+|\s+` }, behavior: 'Isolated', invert: false },
            { type: 'ByteLevel', use_regex: false },
          ],
        }),
      /not supported: Split regex/,
    ],
    ['decoder', (j) => (j.decoder = { type: 'WordPiece' }), /not supported: decoder WordPiece/],
    ['post-processor', (j) => (j.post_processor = { type: 'RobertaProcessing' }), /not supported: post_processor RobertaProcessing/],
    ['lstrip', (j) => ((j.added_tokens as Json[])[0]!.lstrip = true), /not supported: added token "<\|endoftext\|>" with lstrip/],
    ['merge out of vocabulary', (j) => (j.model.merges as string[]).push('x y'), /merge 5 "x y": "xy" is not in the vocabulary/],
    ['merge of one token', (j) => (j.model.merges as string[]).push('he'), /merge 5 "he" is not two tokens/],
    ['merge pair with a space', (j) => (j.model.merges as unknown[]).push(['a b', 'c']), /not supported: merge 5 .* containing a space/],
    ['missing byte', (j) => delete (j.model.vocab as Record<string, number>)['Ā'], /no token for byte 0x00/],
    ['duplicate id', (j) => ((j.model.vocab as Record<string, number>).extra = 7), /vocab id 7 is given to both/],
    ['not an object', (j) => ((j as Record<string, unknown>).model = []), /"model" must be an object/],
  ];
  it.each(refusals)('refuses %s with a clear message', (_, breakIt, message) => {
    const json = tiny();
    breakIt(json);
    expect(() => tokenizerSpecFromHf(json)).toThrow(message);
  });

  it('accepts ignore_merges only when every token can be built by merging (then both rules agree)', () => {
    const json = tiny();
    json.model.ignore_merges = true;
    expect(tokenizerSpecFromHf(json).tokens[258]).toBe('Ġthe');
    // "the" is in the vocabulary, but no merge makes it: HF would emit it whole, braid would not.
    (json.model.vocab as Record<string, number>).the = 263;
    expect(() => tokenizerSpecFromHf(json)).toThrow(/not supported: ignore_merges with 1 tokens that merging cannot build \(first "the"\)/);
    json.model.ignore_merges = false;
    expect(tokenizerSpecFromHf(json).tokens[263]).toBe('the');
  });

  it('refuses an eos that is not in the vocabulary, and needs one named when there is no <|endoftext|>', () => {
    expect(() => tokenizerSpecFromHf(tiny(), { eosToken: '</s>' })).toThrow(/eos token "<\/s>" is not in the vocabulary/);
    const json = tiny();
    json.added_tokens = [];
    delete (json.model.vocab as Record<string, number>)['<|endoftext|>'];
    expect(() => tokenizerSpecFromHf(json)).toThrow(/no eos token/);
    expect(tokenizerSpecFromHf(json, { eosToken: 'Ġthe' }).eos_token_id).toBe(258);
  });
});

describe('pre-tokenizer names', () => {
  it('splits whitespace by Unicode White_Space for imported vocabularies, as HF and tiktoken do', () => {
    // JS \s counts U+FEFF (BOM) as space and misses U+0085 (NEL); onig and Rust regex do the opposite.
    expect(preTokenizer('gpt-2')('a \ufeffb')).toEqual(['a', ' \ufeff', 'b']);
    expect(preTokenizer('gpt2')('a \ufeffb')).toEqual(['a', ' ', '\ufeff', 'b']);
    expect(preTokenizer('gpt-2')('a\u0085\u0085b')).toEqual(['a', '\u0085', '\u0085', 'b']);
    expect(preTokenizer('gpt-4o')('a\u0085\u0085b')).toEqual(['a', '\u0085', '\u0085b']);
  });

  it('applies o200k rules: case runs, contractions, 3-digit groups, newline runs', () => {
    const pre = preTokenizer('gpt-4o');
    expect(pre("helloWorld HTTPServer's 1234567 x\n\n  y")).toEqual([
      'hello',
      'World',
      " HTTPServer's",
      ' ',
      '123',
      '456',
      '7',
      ' x',
      '\n\n',
      ' ',
      ' y',
    ]);
    expect(pre("I'M don't")).toEqual(["I'M", " don't"]);
    expect(pre('a/b;\n\nc')).toEqual(['a', '/b', ';\n\n', 'c']);
  });

  it('refuses an unknown tokenizer.ggml.pre in a spec file', () => {
    const spec = tokenizerSpecFromHf(tiny());
    expect(() => parseTokenizerSpec({ ...spec, pre: 'qwen2' })).toThrow(/"pre" "qwen2" is not one of/);
    expect(() => parseTokenizerSpec({ ...spec, add_bos_token: 'no' })).toThrow(/"add_bos_token" must be a boolean/);
  });
});

describe('tiktoken ranks files', () => {
  const b64 = (s: string) => Buffer.from(s, 'latin1').toString('base64');
  // 256 single bytes, then "ab" (rank 256), "abc" (257) and "bc" (258): "abc" is built before "bc" exists.
  const bytes = Array.from({ length: 256 }, (_, b) => `${b64(String.fromCharCode(b))} ${b}`);
  const file = [...bytes, `${b64('ab')} 256`, `${b64('abc')} 257`, `${b64('bc')} 258`].join('\n') + '\n';

  it('derives merges as BPE over lower ranks, and encodes like tiktoken', () => {
    expect(mergesFromRanks(parseTiktokenRanks(file))).toEqual(['a b', 'ab c', 'b c']);
    const spec = tokenizerSpecFromTiktoken(file, { name: 't', pre: 'gpt-4o', specials: { '<|endoftext|>': 260 } });
    // Rank 259 is unused: an unused placeholder fills the id.
    expect(spec.tokens.slice(256)).toEqual(['ab', 'abc', 'bc', '[PAD259]', '<|endoftext|>']);
    expect(spec.token_type[259]).toBe(TokenType.unused);
    const tok = loadTokenizer(new Map(tokenizerMetadata(spec)));
    expect(tok.encode('abc')).toEqual([257]);
    expect(tok.encode('bcabc')).toEqual([258, 257]);
    expect(tok.encode('<|endoftext|>', { parseSpecial: true })).toEqual([260]);
  });

  it('refuses malformed files', () => {
    expect(() => parseTiktokenRanks('YWI= 1\nYWI 2\n')).not.toThrow();
    expect(() => parseTiktokenRanks('YW*= 1\n')).toThrow(/:1: expected "<base64> <rank>"/);
    expect(() => parseTiktokenRanks('YWI= x\n')).toThrow(/expected "<base64> <rank>"/);
    expect(() => parseTiktokenRanks('YWI= 1\nYWM= 1\n')).toThrow(/:2: rank 1 appears twice/);
    expect(() => mergesFromRanks(parseTiktokenRanks(`${bytes.join('\n')}\n${b64('ab')} 256\n${b64('ab')} 257`))).toThrow(
      /ranks 256 and 257 have the same bytes/,
    );
    expect(() => mergesFromRanks(parseTiktokenRanks(bytes.slice(1).join('\n')))).toThrow(/no token for byte 0x0/);
    // "abc" before "ab" exists: no two lower-ranked tokens make it.
    expect(() => mergesFromRanks(parseTiktokenRanks(`${bytes.join('\n')}\n${b64('abc')} 256`))).toThrow(
      /rank 256 is not a merge of two lower-ranked tokens/,
    );
  });
});

describe('the import hash tables', () => {
  it('StringIndex: grows past its expected size, looks up ranges and joined merges without slicing', () => {
    const index = new StringIndex(1);
    const words = Array.from({ length: 3000 }, (_, i) => `w${i.toString(36)}Ġ`);
    words.forEach((w, i) => expect(index.add(w, i)).toBe(true));
    expect(index.add(words[7]!, 99)).toBe(false); // the first value stays
    expect(index.size).toBe(3000);
    words.forEach((w, i) => expect(index.get(w)).toBe(i));
    expect(index.get(`xx${words[42]!}yy`, 2, 2 + words[42]!.length)).toBe(42);
    const w = words[1234]!;
    expect(index.getWithout(`${w.slice(0, 2)} ${w.slice(2)}`, 2)).toBe(1234);
    expect(index.get('absent')).toBe(-1);
    expect(index.getWithout('w1 zz', 2)).toBe(-1);
  });

  it('PairRanks: grows past its capacity and keeps the first rank of a pair', () => {
    const ranks = new PairRanks(1);
    for (let i = 0; i < 5000; i++) expect(ranks.add(i, 7 * i + 1, i)).toBe(true);
    expect(ranks.add(3, 22, 123)).toBe(false);
    expect(ranks.size).toBe(5000);
    for (let i = 0; i < 5000; i++) expect(ranks.get(i, 7 * i + 1)).toBe(i);
    expect(ranks.get(1, 1)).toBe(-1);
  });
});
