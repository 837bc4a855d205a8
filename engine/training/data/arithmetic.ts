/**
 * Arithmetic chats from a seeded PRNG: sums, differences and products of
 * small numbers ("What is 17 + 25?" → "17 + 25 = 42."). Problem i of a seed is
 * a pure function of (seed, i), so a source of them needs no storage and any
 * example can be rebuilt. About 5 % of problems (by a stable hash of the
 * operator and operands) never appear in training; evaluation asks them.
 */
import type { Prng } from '../../sampler/prng.ts';
import { singleTurnChat, type ChatExample } from './chat-example.ts';
import { isHeldOut, randomInt, seededPrng, stableHash } from './stable-hash.ts';

export type ArithmeticOp = '+' | '-' | '*';

export interface ArithmeticProblem {
  op: ArithmeticOp;
  a: number;
  b: number;
  result: number;
}

export interface ArithmeticOptions {
  /** Operands of + and − are 0..maxAddend (default 99); differences are never negative. */
  maxAddend?: number;
  /** Operands of × are 0..maxFactor (default 12). */
  maxFactor?: number;
}

export const ARITHMETIC_HELD_OUT_FRACTION = 0.05;
const SPLIT_SALT = 'arithmetic';
const OPS: readonly ArithmeticOp[] = ['+', '-', '*'];
const WORDS: Record<ArithmeticOp, string> = { '+': 'plus', '-': 'minus', '*': 'times' };

const QUESTIONS: readonly ((a: number, op: ArithmeticOp, b: number) => string)[] = [
  (a, op, b) => `What is ${a} ${op} ${b}?`,
  (a, op, b) => `Calculate ${a} ${op} ${b}.`,
  (a, op, b) => `${a} ${op} ${b} = ?`,
  (a, op, b) => `What is ${a} ${WORDS[op]} ${b}?`,
];

function limits(opts: ArithmeticOptions): { maxAddend: number; maxFactor: number } {
  const maxAddend = opts.maxAddend ?? 99;
  const maxFactor = opts.maxFactor ?? 12;
  for (const [k, v] of [['maxAddend', maxAddend], ['maxFactor', maxFactor]] as const) {
    if (!Number.isInteger(v) || v < 1) throw new RangeError(`arithmetic: ${k} must be a positive integer, got ${v}`);
  }
  return { maxAddend, maxFactor };
}

function problem(op: ArithmeticOp, a: number, b: number): ArithmeticProblem {
  const result = op === '+' ? a + b : op === '-' ? a - b : a * b;
  return { op, a, b, result };
}

export function isArithmeticHeldOut(p: { op: ArithmeticOp; a: number; b: number }): boolean {
  return isHeldOut(SPLIT_SALT, `${p.a} ${p.op} ${p.b}`, ARITHMETIC_HELD_OUT_FRACTION);
}

/** Draws a problem; a − b is drawn with a ≥ b. */
function draw(prng: Prng, lim: { maxAddend: number; maxFactor: number }): ArithmeticProblem {
  const op = OPS[randomInt(prng, OPS.length)]!;
  const max = op === '*' ? lim.maxFactor : lim.maxAddend;
  let a = randomInt(prng, max + 1);
  let b = randomInt(prng, max + 1);
  if (op === '-' && a < b) [a, b] = [b, a];
  return problem(op, a, b);
}

/** Training problem `index` of `seed`: redrawn until it is not held out. */
export function arithmeticProblem(seed: number, index: number, opts: ArithmeticOptions = {}): ArithmeticProblem {
  const lim = limits(opts);
  const prng = seededPrng(seed, `arithmetic ${index}`);
  for (;;) {
    const p = draw(prng, lim);
    if (!isArithmeticHeldOut(p)) return p;
  }
}

/** The answer the model should give: "17 + 25 = 42." */
export function arithmeticAnswer(p: ArithmeticProblem): string {
  return `${p.a} ${p.op} ${p.b} = ${p.result}.`;
}

/** The canonical question (evaluation asks this form). */
export function arithmeticQuestion(p: ArithmeticProblem): string {
  return QUESTIONS[0]!(p.a, p.op, p.b);
}

/** A problem as a chat, its phrasing chosen by a stable hash of the problem. */
export function arithmeticChat(p: ArithmeticProblem): ChatExample {
  const h = stableHash(`${p.a} ${p.op} ${p.b}`);
  return singleTurnChat(QUESTIONS[h % QUESTIONS.length]!(p.a, p.op, p.b), arithmeticAnswer(p), h >>> 8);
}

/** Every held-out problem within the limits, in (op, a, b) order. */
export function heldOutArithmetic(opts: ArithmeticOptions = {}): ArithmeticProblem[] {
  const lim = limits(opts);
  const out: ArithmeticProblem[] = [];
  for (const op of OPS) {
    const max = op === '*' ? lim.maxFactor : lim.maxAddend;
    for (let a = 0; a <= max; a++) {
      for (let b = 0; b <= (op === '-' ? a : max); b++) {
        const p = problem(op, a, b);
        if (isArithmeticHeldOut(p)) out.push(p);
      }
    }
  }
  return out;
}
