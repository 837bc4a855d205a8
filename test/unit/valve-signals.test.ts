/**
 * The entropy valve's other signals (engine/valve/signals.ts + valve.ts signalLoops/decide):
 * each moves the loop count the documented way, and the mode and model caps still hold.
 */
import { describe, expect, it } from 'vitest';
import { jsonSchemaGrammar } from '../../engine/grammar/json-schema.ts';
import { CompiledConstraint, Matcher } from '../../engine/grammar/matcher.ts';
import { TokenTrie } from '../../engine/grammar/token-trie.ts';
import { DebtLedger, PRESSURE_WEIGHT } from '../../engine/ledger/ledger.ts';
import { gatherSignals } from '../../engine/valve/signals.ts';
import { EntropyValve, signalLoops, valveLevel } from '../../engine/valve/valve.ts';
import { FakeTokenizer } from './fake-engine.ts';

const FULL = PRESSURE_WEIGHT; // the ledger's pressure when the debt fills the budget

describe('valve signals: the combination rule', () => {
  it('entropy alone is the entropy rule, capped', () => {
    for (const h of [0, 0.5, 0.999, 1, 1.5, 1.999, 2, 5]) {
      expect(signalLoops({ entropyBits: h }, 4)).toBe(valveLevel(h));
      expect(signalLoops({ entropyBits: h }, 2)).toBe(Math.min(2, valveLevel(h)));
    }
  });

  it('grammar branching: a forced step runs 1 loop, a narrow choice at most 2, a wide one is unchanged', () => {
    expect(signalLoops({ entropyBits: 6, branchingBits: 0 }, 4)).toBe(1); // one allowed token
    expect(signalLoops({ entropyBits: 6, branchingBits: 1 }, 4)).toBe(2); // two allowed tokens
    expect(signalLoops({ entropyBits: 6, branchingBits: Math.log2(3) }, 4)).toBe(2);
    expect(signalLoops({ entropyBits: 6, branchingBits: 12 }, 4)).toBe(4);
    // branching only lowers: a low-entropy step stays low however wide the grammar is
    expect(signalLoops({ entropyBits: 0.2, branchingBits: 12 }, 4)).toBe(1);
  });

  it('debt pressure: full pressure lifts one level; none changes nothing; more never lowers', () => {
    expect(signalLoops({ entropyBits: 0, debtPressure: 0 }, 4)).toBe(1);
    expect(signalLoops({ entropyBits: 0, debtPressure: FULL }, 4)).toBe(2); // +θ/2 bits
    expect(signalLoops({ entropyBits: 1.5, debtPressure: FULL }, 4)).toBe(4);
    // a quarter of full (tightness ½) adds θ/8 = 0.25 bits
    expect(signalLoops({ entropyBits: 0.7, debtPressure: FULL / 4 }, 4)).toBe(1);
    expect(signalLoops({ entropyBits: 0.8, debtPressure: FULL / 4 }, 4)).toBe(2);
    let prev = 0;
    for (let p = 0; p <= FULL; p += FULL / 16) {
      const l = signalLoops({ entropyBits: 0.9, debtPressure: p }, 4);
      expect(l).toBeGreaterThanOrEqual(prev);
      prev = l;
    }
    // but a forced step stays at 1 under any pressure
    expect(signalLoops({ entropyBits: 1.5, debtPressure: FULL, branchingBits: 0 }, 4)).toBe(1);
    expect(() => signalLoops({ entropyBits: 1, debtPressure: -0.1 }, 4)).toThrow(RangeError);
  });

  it('queue depth: each waiting request halves the cap, never below 1 loop', () => {
    const high = { entropyBits: 5 };
    expect([0, 1, 2, 3, 10, 1000].map((q) => signalLoops({ ...high, queueDepth: q }, 4))).toEqual([4, 2, 1, 1, 1, 1]);
    expect([0, 1, 2].map((q) => signalLoops({ ...high, queueDepth: q }, 2))).toEqual([2, 1, 1]);
    // it caps; it does not raise a low step
    expect(signalLoops({ entropyBits: 0, queueDepth: 0 }, 4)).toBe(1);
    expect(() => signalLoops({ ...high, queueDepth: 1.5 }, 4)).toThrow(RangeError);
    expect(() => signalLoops({ ...high, queueDepth: -1 }, 4)).toThrow(RangeError);
  });

  it('the mode cap and the model cap hold whatever the signals', () => {
    const max = { entropyBits: 9, debtPressure: FULL, branchingBits: 12, queueDepth: 0 };
    expect(new EntropyValve('fast', 6).decide(max)).toBe(1);
    expect(new EntropyValve('balanced', 6).decide(max)).toBe(2);
    expect(new EntropyValve('reasoning', 6).decide(max)).toBe(4);
    expect(new EntropyValve('reasoning', 3).decide(max)).toBe(3);
    expect(new EntropyValve('reasoning', 0).decide(max)).toBe(1); // no looping: inert
    expect(new EntropyValve('balanced', 6).decide({ entropyBits: 0, debtPressure: FULL })).toBe(2);
    expect(new EntropyValve('fast', 6).active).toBe(false);
    expect(new EntropyValve('balanced', 6).active).toBe(true);
  });
});

describe('valve signals: gathered from a real grammar and ledger', () => {
  const tok = new FakeTokenizer();
  const trie = new TokenTrie(Array.from({ length: tok.vocabSize }, (_, id) => tok.tokenBytes(id)), tok.specialIds, tok.stopIds);
  const ledgerFor = (schema: unknown, maxTokens: number) =>
    new DebtLedger(new Matcher(new CompiledConstraint(jsonSchemaGrammar(schema), trie)), tok, maxTokens);
  const feed = (l: DebtLedger, text: string) => {
    for (const b of new TextEncoder().encode(text)) l.accept(b);
  };

  it('without a ledger: entropy and queue only', () => {
    expect(gatherSignals(1.25, { ledger: null, remaining: 10, queueDepth: 3 })).toEqual({ entropyBits: 1.25, queueDepth: 3 });
  });

  it('branching is log2 of the tokens constrain() leaves finite: 0 bits where the grammar forces a byte', () => {
    const schema = { type: 'object', properties: { answer: { type: 'boolean' } }, required: ['answer'] };
    const l = ledgerFor(schema, 64);
    feed(l, '{"ans'); // inside a fixed key: the next byte is forced
    const forced = gatherSignals(3, { ledger: l, remaining: 50, queueDepth: 0 });
    expect(forced.branchingBits).toBe(0);
    const logits = new Float32Array(tok.vocabSize);
    l.constrain(logits, 50);
    expect(logits.filter((x) => x > -Infinity).length).toBe(1);

    const s = ledgerFor({ type: 'object', properties: { s: { type: 'string' } }, required: ['s'] }, 64);
    feed(s, '{"s":"ab'); // inside a free string: many bytes allowed
    const wide = gatherSignals(3, { ledger: s, remaining: 50, queueDepth: 0 });
    const finite = new Float32Array(tok.vocabSize);
    s.constrain(finite, 50);
    expect(wide.branchingBits).toBeCloseTo(Math.log2(finite.filter((x) => x > -Infinity).length), 12);
    expect(wide.branchingBits!).toBeGreaterThan(5);
    // and the valve: a forced step runs 1 loop even at high entropy, the wide one keeps its level
    const v = new EntropyValve('reasoning', 6);
    expect(v.decide(forced)).toBe(1);
    expect(v.decide(wide)).toBe(4);
  });

  it('debt pressure rises as the budget tightens, and matches what constrain() applies', () => {
    const schema = { type: 'object', properties: { s: { type: 'string' } }, required: ['s'] };
    const l = ledgerFor(schema, 64);
    feed(l, '{"s":"ab'); // debt: the closing quote and brace
    const loose = gatherSignals(0, { ledger: l, remaining: 60, queueDepth: 0 }).debtPressure!;
    const tight = gatherSignals(0, { ledger: l, remaining: 3, queueDepth: 0 }).debtPressure!;
    expect(loose).toBeGreaterThan(0);
    expect(loose).toBeLessThan(0.01);
    expect(tight).toBeCloseTo(FULL, 12); // debt 2 with budget 2
    expect(new EntropyValve('reasoning', 6).decide({ entropyBits: 0, debtPressure: tight })).toBe(2);
  });

  it('a forced shortest completion (max_tokens below the debt) counts as one allowed token', () => {
    const l = ledgerFor({ enum: ['abcdefgh'] }, 10);
    expect(l.allowedCount(10)).toBe(1);
  });
});
