/**
 * JSON's lexical pieces as grammar expressions: bounded whitespace, string
 * characters (raw UTF-8 or escapes, never a lone surrogate), characters from
 * a code point set written the way JSON must write them, integers in a range,
 * and numbers in a range. Each accepts a subset of what JSON allows — no
 * exponents, at most 15 integer digits, bounded whitespace — and nothing
 * outside it.
 */
import { alt, byteExpr, charsExpr, empty, lit, opt, repeat, seq, type Expr } from './ir.ts';
import { codeRangesExpr, MAX_CP, normalize, subtract, type CodeRanges } from './utf8.ts';

/** Whitespace between JSON tokens: nothing, a space, or a newline and up to 8 spaces of indent. */
export const JSON_WS: Expr = opt(alt(lit(' '), seq(lit('\n'), repeat(lit(' '), 0, 8))));

const HEX = byteExpr([0x30, 0x39], [0x61, 0x66], [0x41, 0x46]);

/** Short escapes and the characters they stand for. */
const SHORT_ESCAPES: [string, number][] = [
  ['\\"', 0x22],
  ['\\\\', 0x5c],
  ['\\/', 0x2f],
  ['\\b', 0x08],
  ['\\f', 0x0c],
  ['\\n', 0x0a],
  ['\\r', 0x0d],
  ['\\t', 0x09],
];

/** \uXXXX of a non-surrogate code unit (a surrogate pair would count as two characters for a minLength check). */
const UNICODE_ESCAPE: Expr = seq(
  lit('\\u'),
  alt(seq(byteExpr([0x30, 0x39], [0x61, 0x63], [0x41, 0x43], [0x65, 0x66], [0x45, 0x46]), HEX), seq(charsExpr('dD'), byteExpr([0x30, 0x37]))),
  HEX,
  HEX,
);

const RAW_EXCLUDED: CodeRanges = [
  [0, 0x1f],
  [0x22, 0x22],
  [0x5c, 0x5c],
];

/** One character of a JSON string's content, any character. */
export const JSON_STRING_CHAR: Expr = alt(
  codeRangesExpr(subtract([[0, MAX_CP]], RAW_EXCLUDED)),
  ...SHORT_ESCAPES.map(([e]) => lit(e)),
  UNICODE_ESCAPE,
);

/** One character out of a code point set, as JSON string content (escaping what must be). */
export function jsonCharIn(ranges: CodeRanges): Expr {
  const set = normalize(ranges);
  const out: Expr[] = [];
  const raw = subtract(set, RAW_EXCLUDED);
  if (raw.length > 0) out.push(codeRangesExpr(raw));
  const has = (cp: number) => set.some(([a, b]) => a <= cp && cp <= b);
  for (const [e, cp] of SHORT_ESCAPES) if (has(cp)) out.push(lit(e));
  for (let cp = 0; cp < 0x20; cp++) {
    if (has(cp) && !SHORT_ESCAPES.some(([, c]) => c === cp)) out.push(lit(`\\u00${cp.toString(16).padStart(2, '0')}`));
  }
  if (out.length === 0) throw new Error('empty character set');
  return alt(...out);
}

export const jsonString = (content: Expr): Expr => seq(lit('"'), content, lit('"'));

/** Most integer digits generated (keeps integers exact in a double). */
export const MAX_DIGITS = 15;
const MAX_INT = 10n ** BigInt(MAX_DIGITS) - 1n;
const DIGIT = byteExpr([0x30, 0x39]);

const digitRange = (a: number, b: number): Expr => byteExpr([0x30 + a, 0x30 + b]);

/** Equal-length digit strings x ≤ y: every digit string between them. */
function sameLength(x: string, y: string): Expr {
  if (x.length === 0) return empty;
  if (x === y) return lit(x);
  const x0 = Number(x[0]);
  const y0 = Number(y[0]);
  const xr = x.slice(1);
  const yr = y.slice(1);
  if (x0 === y0) return seq(lit(x[0]!), sameLength(xr, yr));
  const parts: Expr[] = [];
  const lowFull = /^0*$/.test(xr);
  const highFull = /^9*$/.test(yr);
  const midLo = lowFull ? x0 : x0 + 1;
  const midHi = highFull ? y0 : y0 - 1;
  if (!lowFull) parts.push(seq(digitRange(x0, x0), sameLength(xr, '9'.repeat(xr.length))));
  if (midLo <= midHi) parts.push(seq(digitRange(midLo, midHi), repeat(DIGIT, xr.length, xr.length)));
  if (!highFull) parts.push(seq(digitRange(y0, y0), sameLength('0'.repeat(yr.length), yr)));
  return alt(...parts);
}

function nonNegative(a: bigint, b: bigint): Expr {
  const parts: Expr[] = [];
  for (let d = String(a).length; d <= String(b).length; d++) {
    const lo = d === 1 ? 0n : 10n ** BigInt(d - 1);
    const hi = 10n ** BigInt(d) - 1n;
    const x = a > lo ? a : lo;
    const y = b < hi ? b : hi;
    if (x <= y) parts.push(sameLength(String(x), String(y)));
  }
  return alt(...parts);
}

/** Decimal integers in [lo, hi] (null: unbounded, i.e. up to 15 digits). Null when empty. */
export function integerRange(lo: bigint | null, hi: bigint | null): Expr | null {
  const a = lo === null || lo < -MAX_INT ? -MAX_INT : lo;
  const b = hi === null || hi > MAX_INT ? MAX_INT : hi;
  if (a > b) return null;
  if (a >= 0n) return nonNegative(a, b);
  if (b < 0n) return seq(lit('-'), nonNegative(-b, -a));
  return alt(seq(lit('-'), nonNegative(1n, -a)), nonNegative(0n, b));
}

/** A fraction that is never zero: ".5", ".25", … so "I.f" lies strictly between I and I+1. */
const FRACTION: Expr = seq(lit('.'), repeat(DIGIT, 0, 5), byteExpr([0x31, 0x39]));

export interface NumberBounds {
  min: number;
  minExclusive: boolean;
  max: number;
  maxExclusive: boolean;
}

const big = (x: number): bigint | null => (Number.isFinite(x) ? BigInt(x) : null);

/** The integers a number must lie between (inclusive), as bigints (null: unbounded). */
export function integerBounds(b: NumberBounds): [bigint | null, bigint | null] {
  const lo = b.minExclusive ? Math.floor(b.min) + 1 : Math.ceil(b.min);
  const hi = b.maxExclusive ? Math.ceil(b.max) - 1 : Math.floor(b.max);
  return [big(lo), big(hi)];
}

/**
 * JSON numbers within bounds: the integers in range, plus "I.f" for whole
 * unit intervals (I, I+1) inside the range (and "-K.f" on the negative side).
 * A range too narrow for either gets one exact value: its midpoint.
 */
export function numberRange(b: NumberBounds): Expr {
  const parts: Expr[] = [];
  const [ilo, ihi] = integerBounds(b);
  const ints = integerRange(ilo, ihi);
  if (ints !== null) parts.push(ints);
  const fin = (x: number, fallback: bigint) => (Number.isFinite(x) ? BigInt(x) : fallback);
  // Non-negative I with I ≥ min and I + 1 ≤ max.
  const posLo = b.min <= 0 ? 0n : fin(Math.ceil(b.min), 0n);
  const posHi = fin(Math.floor(b.max), MAX_INT + 1n) - 1n;
  const pos = posLo <= posHi ? integerRange(posLo, posHi) : null;
  if (pos !== null) parts.push(seq(pos, FRACTION));
  // Negative -K.f ∈ (-(K+1), -K): K + 1 ≤ -min and -K ≤ max.
  const negLo = b.max >= 0 ? 0n : fin(Math.ceil(-b.max), 0n);
  const negHi = fin(Math.floor(-b.min), MAX_INT + 1n) - 1n;
  const neg = negLo <= negHi ? integerRange(negLo, negHi) : null;
  if (neg !== null) parts.push(seq(lit('-'), neg, FRACTION));
  if (parts.length > 0) return alt(...parts);
  const mid = b.min === b.max ? b.min : (b.min + b.max) / 2;
  return lit(JSON.stringify(mid));
}
