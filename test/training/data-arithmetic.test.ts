import { describe, expect, it } from 'vitest';
import {
  ARITHMETIC_HELD_OUT_FRACTION,
  arithmeticChat,
  arithmeticProblem,
  heldOutArithmetic,
  isArithmeticHeldOut,
} from '../../engine/training/data/arithmetic.ts';
import { seededPermutation, seededPrng, stableHash } from '../../engine/training/data/stable-hash.ts';

describe('seeded randomness', () => {
  it('is a pure function of (seed, name), and names and seeds give different streams', () => {
    const draw = (seed: number, name: string) => Array.from({ length: 4 }, ((p) => () => p.nextU32())(seededPrng(seed, name)));
    expect(draw(7, 'a')).toEqual(draw(7, 'a'));
    expect(draw(7, 'a')).not.toEqual(draw(7, 'b'));
    expect(draw(7, 'a')).not.toEqual(draw(8, 'a'));
    const p = seededPermutation(3, 'x', 1000);
    expect([...p].sort((a, b) => a - b)).toEqual(Array.from({ length: 1000 }, (_, i) => i));
    expect(p).toEqual(seededPermutation(3, 'x', 1000));
    expect(stableHash('ca01')).toBe(stableHash('ca01'));
  });
});

describe('arithmetic chats', () => {
  it('generates correct, deterministic training problems that are never held out', () => {
    const ops = new Set<string>();
    for (let i = 0; i < 2000; i++) {
      const p = arithmeticProblem(42, i);
      expect(p).toEqual(arithmeticProblem(42, i));
      expect(isArithmeticHeldOut(p)).toBe(false);
      const expected = p.op === '+' ? p.a + p.b : p.op === '-' ? p.a - p.b : p.a * p.b;
      expect(p.result).toBe(expected);
      expect(p.result).toBeGreaterThanOrEqual(0);
      expect(Math.max(p.a, p.b)).toBeLessThanOrEqual(p.op === '*' ? 12 : 99);
      ops.add(p.op);
    }
    expect([...ops].sort()).toEqual(['*', '+', '-']);
    expect(arithmeticProblem(42, 5)).not.toEqual(arithmeticProblem(43, 5));
  });

  it('renders a question and an answer of the form "a op b = c."', () => {
    const chat = arithmeticChat({ op: '+', a: 17, b: 25, result: 42 });
    const user = chat.messages.find((m) => m.role === 'user')!;
    expect(user.content).toMatch(/17 (\+|plus) 25/);
    expect(chat.messages.at(-1)).toEqual({ role: 'assistant', content: '17 + 25 = 42.' });
  });

  it('holds out ~5 % of operand pairs, stably, disjoint from what training draws', () => {
    const held = heldOutArithmetic();
    expect(held).toEqual(heldOutArithmetic());
    const all = 100 * 100 + 100 * 101 / 2 + 13 * 13; // a + b, a − b with a ≥ b, a × b
    expect(held.length / all).toBeGreaterThan(ARITHMETIC_HELD_OUT_FRACTION * 0.8);
    expect(held.length / all).toBeLessThan(ARITHMETIC_HELD_OUT_FRACTION * 1.2);
    const heldKeys = new Set(held.map((p) => `${p.a}${p.op}${p.b}`));
    for (let i = 0; i < 5000; i++) {
      const p = arithmeticProblem(1, i);
      expect(heldKeys.has(`${p.a}${p.op}${p.b}`)).toBe(false);
    }
    expect(held.every((p) => isArithmeticHeldOut(p))).toBe(true);
  });
});
