import { describe, expect, it } from 'vitest';
import { gv, type GgufValue } from '../../engine/gguf/types.ts';
import { BYTE_TO_CHAR, CHAR_TO_BYTE } from '../../engine/tokenizer/byte-map.ts';
import { loadTokenizer } from '../../engine/tokenizer/load.ts';
import { preTokenizer } from '../../engine/tokenizer/pretokenize.ts';
import { readTokenizerSpec, tokenizerMetadata, type TokenizerSpec } from '../../engine/tokenizer/spec.ts';
import { trainBpe } from '../../engine/tokenizer/train.ts';
import { DEFAULT_TOKENIZER_PATH } from '../../engine/model-init/init-chimera.ts';

const spec = readTokenizerSpec(DEFAULT_TOKENIZER_PATH);
const tok = loadTokenizer(new Map(tokenizerMetadata(spec)));

/** A small deterministic PRNG so "random" inputs are the same every run. */
function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => (s = (Math.imul(s ^ (s >>> 15), 0x2c1b3c6d) + 0x9e3779b9) >>> 0) / 4294967296;
}

const SAMPLES = [
  '',
  'Hello, world!',
  'The jury said it did find that many of Georgia\'s registration laws "are outmoded".',
  '  leading and trailing spaces   ',
  'tabs\tand\nnewlines\r\n\n\nend',
  '日本語のテキストと中文字符',
  'emoji 👩‍👩‍👧‍👦 🚀🔥 family and flags 🇫🇷',
  'combining: e\u0301 a\u0308 n\u0303 Z\u0351\u0352\u0353',
  'Ελληνικά, русский, العربية, עברית, हिन्दी',
  'numbers 1234567890 3.14159 -42 1e10',
  "it's don't we'll they've I'm you'd",
  '<|im_start|>user\nhi<|im_end|>',
  '\u0000\u0001\u007f control chars',
  'x'.repeat(1000),
];

function randomCodePoints(r: () => number, n: number): string {
  let s = '';
  for (let i = 0; i < n; i++) {
    const range = r();
    let cp: number;
    if (range < 0.4) cp = 0x20 + Math.floor(r() * 0x5f);
    else if (range < 0.55) cp = [0x20, 0x0a, 0x09, 0x3000][Math.floor(r() * 4)]!;
    else if (range < 0.75) cp = 0x80 + Math.floor(r() * 0x780);
    else if (range < 0.9) cp = 0x800 + Math.floor(r() * (0xd800 - 0x800));
    else cp = 0x10000 + Math.floor(r() * 0x100000);
    s += String.fromCodePoint(cp);
  }
  return s;
}

describe('byte-level BPE tokenizer (braid-bpe-4k)', () => {
  it('has the trained shape: 4096 tokens, specials at the end, ChatML end-of-turn as a stop id', () => {
    expect(tok.vocabSize).toBe(4096);
    const id = (t: string) => spec.tokens.indexOf(t);
    expect(tok.eosId).toBe(id('<|endoftext|>'));
    expect(tok.bosId).toBe(id('<|endoftext|>'));
    expect([...tok.specialIds].sort()).toEqual([id('<|endoftext|>'), id('<|im_start|>'), id('<|im_end|>')].sort());
    expect(tok.stopIds).toEqual(new Set([id('<|endoftext|>'), id('<|im_end|>')]));
  });

  it('maps all 256 bytes to distinct characters and back', () => {
    expect(new Set(BYTE_TO_CHAR).size).toBe(256);
    BYTE_TO_CHAR.forEach((c, b) => expect(CHAR_TO_BYTE.get(c)).toBe(b));
    expect(BYTE_TO_CHAR[0x20]).toBe('Ġ');
    expect(BYTE_TO_CHAR[0x0a]).toBe('Ċ');
  });

  it('round-trips sample texts (emoji, CJK, combining marks, controls)', () => {
    for (const text of SAMPLES) {
      const ids = tok.encode(text);
      expect(tok.decode(ids)).toBe(text);
      expect(ids.every((i) => Number.isInteger(i) && i >= 0 && i < tok.vocabSize && !tok.specialIds.has(i))).toBe(true);
    }
  });

  it('compresses English (merges actually apply)', () => {
    const text = 'The jury further said in term-end presentments that the City Executive Committee';
    const ids = tok.encode(text);
    expect(ids.length).toBeLessThan(text.length / 3);
    expect(tok.decode(tok.encode(' the'))).toBe(' the');
    expect(tok.encode(' the')).toHaveLength(1);
  });

  it('round-trips random Unicode strings', () => {
    const r = rng(1);
    for (let i = 0; i < 300; i++) {
      const text = randomCodePoints(r, 1 + Math.floor(r() * 60));
      expect(tok.decode(tok.encode(text))).toBe(text);
    }
  });

  it('round-trips random byte-level content (decoded with replacement characters)', () => {
    const r = rng(2);
    const dec = new TextDecoder();
    for (let i = 0; i < 300; i++) {
      const bytes = Uint8Array.from({ length: 1 + Math.floor(r() * 80) }, () => Math.floor(r() * 256));
      const text = dec.decode(bytes);
      expect(tok.decode(tok.encode(text))).toBe(text);
    }
  });

  it('matches a reference BPE (lowest rank first, all occurrences) on random pieces', () => {
    const ranks = new Map(spec.merges.map((m, i) => [m, i]));
    const idOf = new Map(spec.tokens.map((t, i) => [t, i]));
    const reference = (piece: string): number[] => {
      let parts = [...new TextEncoder().encode(piece)].map((b) => BYTE_TO_CHAR[b]!);
      for (;;) {
        let best = -1;
        let bestRank = Infinity;
        for (let i = 0; i + 1 < parts.length; i++) {
          const r = ranks.get(`${parts[i]} ${parts[i + 1]}`);
          if (r !== undefined && r < bestRank) [best, bestRank] = [i, r];
        }
        if (best < 0) break;
        const [a, b] = [parts[best]!, parts[best + 1]!];
        const next: string[] = [];
        for (let i = 0; i < parts.length; i++) {
          if (i + 1 < parts.length && parts[i] === a && parts[i + 1] === b) {
            next.push(a + b);
            i++;
          } else next.push(parts[i]!);
        }
        parts = next;
      }
      return parts.map((p) => idOf.get(p)!);
    };
    const pre = preTokenizer('braid');
    const r = rng(3);
    const letters = 'etaoinshrdlucmfwypvbgkqjxz ';
    const texts = [...SAMPLES];
    for (let i = 0; i < 300; i++) {
      texts.push(Array.from({ length: 3 + Math.floor(r() * 30) }, () => letters[Math.floor(r() * letters.length)]).join(''));
    }
    for (const text of texts) {
      const expected = pre(text).flatMap(reference);
      expect(tok.encode(text), JSON.stringify(text)).toEqual(expected);
    }
  });

  it('matches special tokens only when parseSpecial is set', () => {
    const text = '<|im_start|>user\nhi<|im_end|>\n';
    const start = spec.tokens.indexOf('<|im_start|>');
    const end = spec.tokens.indexOf('<|im_end|>');
    const plain = tok.encode(text);
    expect(plain).not.toContain(start);
    expect(plain).not.toContain(end);
    const parsed = tok.encode(text, { parseSpecial: true });
    expect(parsed[0]).toBe(start);
    expect(parsed).toContain(end);
    expect(parsed.length).toBeLessThan(plain.length);
    expect(tok.decode(parsed)).toBe(text);
    expect(tok.decode(parsed, { skipSpecial: true })).toBe('user\nhi\n');
    expect(tok.encode('<|im_end|><|im_end|>', { parseSpecial: true })).toEqual([end, end]);
    expect(new TextDecoder().decode(tok.tokenBytes(end))).toBe('<|im_end|>');
    expect(() => tok.decode([tok.vocabSize])).toThrow(/outside the vocabulary/);
  });

  it('stream decoder: never emits U+FFFD for valid UTF-8 and concatenates to decode()', () => {
    const r = rng(4);
    const texts = [...SAMPLES];
    for (let i = 0; i < 100; i++) texts.push(randomCodePoints(r, 40));
    let sawSplitCharacter = false;
    for (const text of texts) {
      const ids = tok.encode(text);
      const stream = tok.createStreamDecoder();
      let out = '';
      for (const id of ids) {
        const piece = stream.push(id);
        expect(piece).not.toContain('\uFFFD');
        out += piece;
        if (new TextDecoder().decode(tok.tokenBytes(id)).includes('\uFFFD')) sawSplitCharacter = true;
      }
      out += stream.flush();
      expect(out).toBe(tok.decode(ids));
      expect(out).toBe(text);
    }
    // The test is only meaningful if some tokens carry partial characters.
    expect(sawSplitCharacter).toBe(true);
  });

  it('stream decoder: invalid bytes and skipSpecial agree with decode()', () => {
    const byteId = (b: number) => spec.tokens.indexOf(BYTE_TO_CHAR[b]!);
    const end = spec.tokens.indexOf('<|im_end|>');
    // "é" cut short (0xC3 then "A"), a lone continuation byte, and a truncated 4-byte sequence at the end.
    const ids = [byteId(0xc3), byteId(0x41), byteId(0x80), end, byteId(0xf0), byteId(0x9f)];
    for (const skipSpecial of [false, true]) {
      const stream = tok.createStreamDecoder({ skipSpecial });
      const out = ids.map((id) => stream.push(id)).join('') + stream.flush();
      expect(out).toBe(tok.decode(ids, { skipSpecial }));
    }
    expect(tok.decode(ids, { skipSpecial: true })).toBe('\uFFFDA\uFFFD\uFFFD');
  });

  it('encodes 100 KB prompts quickly, including one 100 KB piece', () => {
    const words = ['the', 'jury', 'said', 'Fulton', 'County', 'election', '1961', ',', '.', '\n\n', 'über', '日本'];
    const r = rng(5);
    let text = '';
    while (text.length < 100_000) text += words[Math.floor(r() * words.length)] + ' ';
    const uniq = randomCodePoints(rng(6), 20_000); // few cache hits
    const run = 'a'.repeat(100_000); // one piece: quadratic merging would take minutes
    for (const t of [text, uniq, run]) {
      const t0 = performance.now();
      const ids = tok.encode(t);
      const ms = performance.now() - t0;
      expect(tok.decode(ids)).toBe(t);
      // Generous bound for a shared, noisy machine; typical is tens of ms.
      expect(ms).toBeLessThan(3000);
    }
  });
});

describe('loadTokenizer errors and padding', () => {
  const base = new Map<string, GgufValue>(tokenizerMetadata(spec));

  it('names missing keys and unsupported models', () => {
    const noTokens = new Map(base);
    noTokens.delete('tokenizer.ggml.tokens');
    expect(() => loadTokenizer(noTokens)).toThrow(/"tokenizer\.ggml\.tokens" is missing/);
    const llama = new Map(base).set('tokenizer.ggml.model', gv.str('llama'));
    expect(() => loadTokenizer(llama)).toThrow(/unsupported tokenizer\.ggml\.model "llama"/);
    const pre = new Map(base).set('tokenizer.ggml.pre', gv.str('qwen2'));
    expect(() => loadTokenizer(pre)).toThrow(/unsupported tokenizer\.ggml\.pre "qwen2"/);
    const eos = new Map(base).set('tokenizer.ggml.eos_token_id', gv.u32(99999));
    expect(() => loadTokenizer(eos)).toThrow(/eos id 99999 is outside/);
  });

  it('pads a larger model vocabulary with unused tokens that decode to nothing', () => {
    const padded = loadTokenizer(new Map(tokenizerMetadata(spec, 4100)));
    expect(padded.vocabSize).toBe(4100);
    expect(padded.specialIds.has(4099)).toBe(true);
    expect(padded.decode([4099])).toBe('');
    expect(() => tokenizerMetadata(spec, 4000)).toThrow(/smaller than tokenizer/);
  });
});

describe('trainBpe', () => {
  const corpus = ['the cat sat on the mat. ', 'the dog sat on the log. ', 'then the cat ate the rat.\n'];
  const opts = { specials: ['<|endoftext|>', '<|im_end|>'], preTokenize: preTokenizer('braid') };
  const train = () => trainBpe(corpus, { ...opts, vocabSize: 256 + 20 + 2, minFrequency: 1 });

  it('is deterministic, hits the requested size and learns frequent pairs first', () => {
    const a = train();
    const b = train();
    expect(a).toEqual(b);
    expect(a.tokens).toHaveLength(278);
    expect(a.merges).toHaveLength(20);
    // "a t" occurs 7 times (cat×2, sat×2, mat, rat, ate), more than any other pair ("h e": 6).
    expect(a.merges[0]).toBe('a t');
    // Ties go to the smallest (left id, right id): all pairs here occur once, "Ġ" is byte 0x20.
    expect(trainBpe(['ba ab'], { ...opts, vocabSize: 256 + 1 + 2, minFrequency: 1 }).merges).toEqual(['Ġ a']);
    expect(a.tokens.slice(-2)).toEqual(['<|endoftext|>', '<|im_end|>']);
    // With the default minFrequency 2 this tiny corpus runs out of repeated pairs before 20 merges.
    const early = trainBpe(corpus, { ...opts, vocabSize: 256 + 20 + 2 });
    expect(early.merges.length).toBeLessThan(20);
    expect(early.tokens.slice(-2)).toEqual(['<|endoftext|>', '<|im_end|>']);
  });

  it('produces a tokenizer that round-trips and uses its merges', () => {
    const t = train();
    const s: TokenizerSpec = {
      ...spec,
      tokens: t.tokens,
      token_type: t.tokenTypes,
      merges: t.merges,
      bos_token_id: 276,
      eos_token_id: 276,
      padding_token_id: 276,
    };
    const small = loadTokenizer(new Map(tokenizerMetadata(s)));
    const text = 'the cat sat on the mat';
    const ids = small.encode(text);
    expect(small.decode(ids)).toBe(text);
    expect(ids.length).toBeLessThan(text.length / 2);
  });
});
