/**
 * The constraint engine without a model: automaton, token trie masks, rollback,
 * the JSON pieces (integer/number ranges, string escapes, UTF-8), regexes,
 * GBNF, and the debt ledger's guarantees.
 */
import { describe, expect, it } from 'vitest';
import { Automaton, DEAD } from '../../engine/grammar/automaton.ts';
import { gbnfGrammar } from '../../engine/grammar/gbnf.ts';
import { GrammarBuilder, type Expr, type Grammar } from '../../engine/grammar/ir.ts';
import { jsonSchemaGrammar } from '../../engine/grammar/json-schema.ts';
import { jsonString, integerRange, numberRange } from '../../engine/grammar/json-text.ts';
import { CompiledConstraint, Matcher } from '../../engine/grammar/matcher.ts';
import { regexToJsonContent } from '../../engine/grammar/regex.ts';
import { TokenTrie } from '../../engine/grammar/token-trie.ts';
import { DebtLedger } from '../../engine/ledger/ledger.ts';
import { FakeTokenizer } from './fake-engine.ts';

const utf8 = new TextEncoder();

function grammarOf(e: Expr, key: string): Grammar {
  const b = new GrammarBuilder();
  b.define('root', e);
  return b.build('root', key);
}

/** Does the automaton accept exactly this text? */
function accepts(g: Grammar | Automaton, text: string): boolean {
  const a = g instanceof Automaton ? g : new Automaton(g);
  const s = a.stepBytes(a.initial, utf8.encode(text));
  return s !== DEAD && a.accepting(s);
}

/** A seeded random walk through the grammar's bytes until it accepts (cost-guided near the end). */
function sampleText(a: Automaton, seed: number, maxBytes = 60): string {
  let x = seed;
  const rnd = () => ((x = (Math.imul(x, 1103515245) + 12345) >>> 0) / 2 ** 32);
  let s = a.initial;
  const out: number[] = [];
  while (out.length < maxBytes && !(a.accepting(s) && rnd() < 0.3)) {
    const budget = maxBytes - out.length - 1;
    const ok: number[] = [];
    for (let b = 0; b < 256; b++) {
      const n = a.step(s, b);
      if (n !== DEAD && a.cost(n) <= budget) ok.push(b);
    }
    if (ok.length === 0) break;
    const b = ok[Math.floor(rnd() * ok.length)]!;
    out.push(b);
    s = a.step(s, b);
  }
  const tail = a.shortestCompletion(s);
  return new TextDecoder().decode(Uint8Array.from([...out, ...tail]));
}

describe('automaton', () => {
  it('integer ranges accept exactly the integers in range, without leading zeros', () => {
    for (const [lo, hi] of [[-15, 123], [0, 0], [7, 7], [-200, -100], [99, 101], [0, 9], [10, 99]] as const) {
      const a = new Automaton(grammarOf(integerRange(BigInt(lo), BigInt(hi))!, `int${lo},${hi}`));
      for (let n = -250; n <= 250; n++) expect(accepts(a, String(n)), `${n} in [${lo}, ${hi}]`).toBe(n >= lo && n <= hi);
      expect(accepts(a, '007')).toBe(false);
      expect(accepts(a, '-0')).toBe(false);
    }
  });

  it('number ranges produce only numbers within the bounds (exclusive ones too)', () => {
    const cases = [
      { min: 0, minExclusive: true, max: 1, maxExclusive: true },
      { min: -2.5, minExclusive: false, max: -0.5, maxExclusive: false },
      { min: 0.1, minExclusive: false, max: 0.2, maxExclusive: false },
      { min: -Infinity, minExclusive: false, max: Infinity, maxExclusive: false },
      { min: 5, minExclusive: true, max: 6, maxExclusive: false },
    ];
    for (const b of cases) {
      const a = new Automaton(grammarOf(numberRange(b), `num${JSON.stringify(b)}`));
      for (let i = 0; i < 200; i++) {
        const v = Number(JSON.parse(sampleText(a, i * 7919 + 1, 24)));
        expect(b.minExclusive ? v > b.min : v >= b.min, `${v} vs ${JSON.stringify(b)}`).toBe(true);
        expect(b.maxExclusive ? v < b.max : v <= b.max, `${v} vs ${JSON.stringify(b)}`).toBe(true);
      }
    }
  });

  it('JSON strings: escapes, multi-byte characters, no raw control characters or lone surrogates', () => {
    const g = jsonSchemaGrammar({ type: 'string' });
    for (const ok of ['"a"', '"é"', '"日本"', '"😀"', '"\\n\\t\\"\\\\\\/"', '"\\u00e9"', '""']) expect(accepts(g, ok), ok).toBe(true);
    for (const bad of ['"\n"', '"\\ud800"', '"\\x"', '"a', 'a"', '"\\u12"']) expect(accepts(g, bad), bad).toBe(false);
    const a = new Automaton(g);
    // Invalid UTF-8 is rejected byte by byte: a lone continuation byte, an overlong form.
    for (const bytes of [[0x22, 0x80], [0x22, 0xc0, 0x80], [0x22, 0xed, 0xa0, 0x80]]) expect(a.stepBytes(a.initial, Uint8Array.from(bytes))).toBe(DEAD);
  });

  it('minLength/maxLength count characters, not bytes', () => {
    const g = jsonSchemaGrammar({ type: 'string', minLength: 2, maxLength: 2 });
    expect(accepts(g, '"日本"')).toBe(true);
    expect(accepts(g, '"\\n😀"')).toBe(true);
    expect(accepts(g, '"日"')).toBe(false);
    expect(accepts(g, '"abc"')).toBe(false);
  });

  it('regex patterns: everything generated matches the JavaScript RegExp', () => {
    for (const p of ['^[a-z]+@[a-z]+\\.(com|org)$', '^\\d{2,4}-[A-F]?x*$', '^(?:ab|c){1,3}$', '^[^a-z"]{3}$', '^\\w\\s\\W$', '^é+ü?$', '^\\.\\*\\\\$']) {
      const a = new Automaton(grammarOf(jsonString(regexToJsonContent(p)), `re${p}`));
      const re = new RegExp(p, 'u');
      for (let i = 0; i < 60; i++) {
        const s = JSON.parse(sampleText(a, i + 1, 40)) as string;
        expect(re.test(s), `${JSON.stringify(s)} !~ ${p}`).toBe(true);
      }
    }
  });

  it('costs and the shortest completion', () => {
    const a = new Automaton(jsonSchemaGrammar({ type: 'object', properties: { a: { type: 'array', minItems: 2, items: { type: 'integer' } } }, required: ['a'] }));
    expect(new TextDecoder().decode(a.shortestCompletion(a.initial))).toBe('{"a":[0,0]}');
    expect(a.cost(a.initial)).toBe('{"a":[0,0]}'.length);
    const s = a.stepBytes(a.initial, utf8.encode('{"a":[12'));
    expect(a.cost(s)).toBe(',0]}'.length);
  });

  it('right recursion loops in constant space: a long string interior is one state', () => {
    const a = new Automaton(jsonSchemaGrammar({ type: 'string' }));
    const s1 = a.stepBytes(a.initial, utf8.encode('"abc'));
    const s2 = a.stepBytes(s1, utf8.encode('x'.repeat(5000)));
    expect(s2).toBe(s1);
  });
});

describe('JSON schema keywords', () => {
  const A = { type: 'object', properties: { a: { type: 'integer' } }, required: ['a'], additionalProperties: false };

  it('allOf of one schema is that schema (a described $ref, as generators write it)', () => {
    const g = jsonSchemaGrammar({ $defs: { A }, type: 'object', properties: { x: { allOf: [{ $ref: '#/$defs/A' }], description: 'the x' } }, required: ['x'] });
    expect(accepts(g, '{"x": {"a": 1}}')).toBe(true);
    expect(accepts(g, '{"x": {"a": "1"}}')).toBe(false);
    expect(accepts(g, '{"x": 1}')).toBe(false);
  });

  it('allOf of several schemas, or beside other keywords, is refused by name', () => {
    expect(() => jsonSchemaGrammar({ allOf: [A, { type: 'object' }] })).toThrow(/'allOf' at # .*more than one branch/);
    expect(() => jsonSchemaGrammar({ allOf: [A], type: 'object' })).toThrow(/beside allOf/);
    expect(() => jsonSchemaGrammar({ allOf: [] })).toThrow(/non-empty array/);
  });
});

describe('GBNF', () => {
  it('parses rules, classes, quantifiers, comments and continuation lines', () => {
    const g = gbnfGrammar(`
# a comment
root ::= greeting " " name ("!" | "?")?
greeting ::= "hello"
  | "hi"   # continued on the next line
name ::= [A-Z] [a-z]{1,5} [\\u00e9]*
`);
    for (const ok of ['hello Bob', 'hi Alice!', 'hi Renéé?']) expect(accepts(g, ok), ok).toBe(true);
    for (const bad of ['hello bob', 'hey Bob', 'hi Bobbbbbbb', 'hi B']) expect(accepts(g, bad), bad).toBe(false);
  });

  it('refuses left recursion and nullable repetition', () => {
    expect(() => new Automaton(gbnfGrammar('root ::= root "a" | "a"'))).toThrow(/left-recursive/);
    expect(() => new Automaton(gbnfGrammar('root ::= ("a"?)*'))).toThrow(/left-recursive/);
  });
});

/** A vocabulary with multi-byte and multi-element tokens, for mask tests. */
function testVocab(): Uint8Array[] {
  const words = ['{', '}', '"', '":', '": "', '",', '", "', '"}', 'a', 'ab', 'abc', 'name', '"name', ' ', '\n', '1', '12', '0', '-', '.', 'é', 'true', 'null', ',', ':', '[', ']', '[]', '{}', '{"', 'x"}'];
  const vocab = words.map((w) => utf8.encode(w));
  const e = utf8.encode('é');
  vocab.push(Uint8Array.of(e[0]!), Uint8Array.of(e[1]!), Uint8Array.of(0x22, e[0]!)); // split characters
  for (let b = 0; b < 256; b++) vocab.push(Uint8Array.of(b));
  return vocab;
}

describe('token masks', () => {
  const vocab = testVocab();
  const trie = new TokenTrie(vocab, new Set(), new Set());
  const schema = { type: 'object', properties: { name: { type: 'string', maxLength: 6 }, n: { type: 'integer', minimum: -5, maximum: 120 } }, required: ['name'], additionalProperties: false };

  it('the trie walk allows exactly the tokens a byte-by-byte check allows, at every step', () => {
    const c = new CompiledConstraint(jsonSchemaGrammar(schema), trie);
    const a = c.automaton;
    const m = new Matcher(c);
    for (const piece of ['{"', 'name', '": "', 'é', 'ab', '",', ' ', '"n', '":', '1', '2', '}']) {
      const mask = m.mask();
      const allowed = new Set(mask.ids);
      vocab.forEach((bytes, id) => {
        const s = a.stepBytes(m.state, bytes);
        expect(allowed.has(id), `token ${JSON.stringify(new TextDecoder().decode(bytes))}`).toBe(s !== DEAD);
        if (s !== DEAD) expect(mask.costAfter[mask.ids.indexOf(id)]).toBe(a.cost(s));
      });
      m.advance(utf8.encode(piece));
    }
    expect(m.accepting).toBe(true);
    expect(m.finished).toBe(true);
  });

  it('the whole-subtree shortcut inside unbounded strings gives the same mask', () => {
    const c = new CompiledConstraint(jsonSchemaGrammar({ type: 'object', properties: { s: { type: 'string' } }, required: ['s'] }), trie);
    const a = c.automaton;
    const m = new Matcher(c);
    for (const piece of ['{"', 's', '": "', 'ab', 'é', '\\', 'n', 'abc']) {
      m.advance(utf8.encode(piece));
      const allowed = new Set(m.mask().ids);
      vocab.forEach((bytes, id) => expect(allowed.has(id), new TextDecoder().decode(bytes)).toBe(a.stepBytes(m.state, bytes) !== DEAD));
    }
  });

  it('tokens may split a character or span several grammar elements', () => {
    const c = new CompiledConstraint(jsonSchemaGrammar(schema), trie);
    const m = new Matcher(c);
    m.advance(utf8.encode('{"name": "'));
    const e = utf8.encode('é');
    expect(m.allows(Uint8Array.of(e[0]!))).toBe(true);
    m.advance(Uint8Array.of(e[0]!)); // half a character
    expect(m.allows(utf8.encode('a'))).toBe(false);
    m.advance(Uint8Array.of(e[1]!));
    expect(m.allows(utf8.encode('x"}'))).toBe(true); // closes the string and the object
  });

  it('rolls back N tokens to the exact earlier state', () => {
    const c = new CompiledConstraint(jsonSchemaGrammar(schema), trie);
    const m = new Matcher(c);
    m.advance(utf8.encode('{"'));
    const before = m.state;
    m.advance(utf8.encode('name'));
    m.advance(utf8.encode('": "'));
    m.advance(utf8.encode('ab'));
    m.rollback(3);
    expect(m.state).toBe(before);
    expect(m.length).toBe(1);
    expect(() => m.rollback(2)).toThrow(RangeError);
  });
});

describe('debt ledger', () => {
  const tok = new FakeTokenizer();
  const trie = new TokenTrie(Array.from({ length: tok.vocabSize }, (_, id) => tok.tokenBytes(id)), tok.specialIds, tok.stopIds);

  /** Greedy run where the "model" always prefers `want` (a byte), under the ledger. */
  function run(schema: unknown, maxTokens: number, want: number): { text: string; ledger: DebtLedger } {
    const ledger = new DebtLedger(new Matcher(new CompiledConstraint(jsonSchemaGrammar(schema), trie)), tok, maxTokens);
    const logits = new Float32Array(tok.vocabSize);
    const out: number[] = [];
    for (let i = 0; i < maxTokens; i++) {
      logits.fill(0);
      logits[want] = 5;
      ledger.constrain(logits, maxTokens - i);
      let best = 0;
      for (let j = 1; j < logits.length; j++) if (logits[j]! > logits[best]!) best = j;
      if (tok.stopIds.has(best)) break;
      ledger.accept(best);
      out.push(best);
    }
    return { text: tok.decode(out), ledger };
  }

  it('a run cut by max_tokens is closed in time, at every budget', () => {
    const schema = { type: 'object', properties: { list: { type: 'array', items: { type: 'array', items: { type: 'string' } } } }, required: ['list'] };
    const least = '{"list":[]}'.length;
    for (let max = least; max < least + 40; max++) {
      // The model wants to keep writing "[" (opening ever deeper) — the ledger must still close everything.
      const { text, ledger } = run(schema, max, '['.charCodeAt(0));
      expect(() => JSON.parse(text), text).not.toThrow();
      expect(text.length).toBeLessThanOrEqual(max);
      const t = ledger.telemetry();
      expect(t.opened).toBe(t.closed);
    }
  });

  it('pressure and forcing are reported in the telemetry', () => {
    const { text, ledger } = run({ type: 'object', properties: { s: { type: 'string' } }, required: ['s'] }, 12, 'z'.charCodeAt(0));
    expect(text).toBe('{"s":"zzzz"}');
    const t = ledger.telemetry();
    expect(t.forcedSteps).toBeGreaterThan(0);
    expect(t.forced).toBe(2); // the string and the object were closed under force
  });

  it('below the shortest output: the tokenized shortest completion is forced, or the request refused', () => {
    const c = new CompiledConstraint(jsonSchemaGrammar({ enum: ['abcdefgh'] }), trie);
    expect(() => new DebtLedger(new Matcher(c), tok, 5)).toThrow(/too small/);
  });
});
