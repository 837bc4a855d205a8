/**
 * Sets of Unicode code points as byte-level expressions: a character class
 * like [^"\\] or [α-ω] becomes alternatives of UTF-8 byte-range sequences
 * (the construction of Rust's regex-syntax utf8 module). Surrogates are never
 * produced: they are not valid UTF-8.
 */
import { alt, byteExpr, seq, type Expr } from './ir.ts';

/** Inclusive code point ranges, sorted and non-overlapping after normalize(). */
export type CodeRanges = [number, number][];

export const MAX_CP = 0x10ffff;

export function normalize(ranges: CodeRanges): CodeRanges {
  const s = ranges.filter(([a, b]) => a <= b).sort((x, y) => x[0] - y[0]);
  const out: CodeRanges = [];
  for (const [a, b] of s) {
    const last = out[out.length - 1];
    if (last !== undefined && a <= last[1] + 1) last[1] = Math.max(last[1], b);
    else out.push([a, b]);
  }
  return out;
}

export function complement(ranges: CodeRanges): CodeRanges {
  const out: CodeRanges = [];
  let next = 0;
  for (const [a, b] of normalize(ranges)) {
    if (a > next) out.push([next, a - 1]);
    next = b + 1;
  }
  if (next <= MAX_CP) out.push([next, MAX_CP]);
  return out;
}

export function subtract(ranges: CodeRanges, minus: CodeRanges): CodeRanges {
  const keep = complement(minus);
  const out: CodeRanges = [];
  for (const [a, b] of normalize(ranges)) {
    for (const [c, d] of keep) {
      const lo = Math.max(a, c);
      const hi = Math.min(b, d);
      if (lo <= hi) out.push([lo, hi]);
    }
  }
  return out;
}

const LIMITS = [0x7f, 0x7ff, 0xffff, MAX_CP];

function encode(cp: number): number[] {
  return [...new TextEncoder().encode(String.fromCodePoint(cp))];
}

/** A range whose ends have the same UTF-8 length → byte-range sequences. */
function sameLength(a: number, b: number, out: Expr[]): void {
  const n = encode(a).length;
  if (n === 1) {
    out.push(byteExpr([a, b]));
    return;
  }
  // Split until every position is a plain byte range: [a, b] is "rectangular"
  // when the continuation bytes run from 0x80 to 0xbf below the first differing byte.
  for (let i = 1; i < n; i++) {
    const m = (1 << (6 * i)) - 1; // the low bits held by the last i bytes
    if ((a & ~m) !== (b & ~m)) {
      if ((a & m) !== 0) {
        sameLength(a, a | m, out);
        sameLength((a | m) + 1, b, out);
        return;
      }
      if ((b & m) !== m) {
        sameLength(a, (b & ~m) - 1, out);
        sameLength(b & ~m, b, out);
        return;
      }
    }
  }
  const ea = encode(a);
  const eb = encode(b);
  out.push(seq(...ea.map((x, i) => byteExpr([x, eb[i]!]))));
}

/** Any one character from the set, as UTF-8 bytes. Throws on an empty set. */
export function codeRangesExpr(ranges: CodeRanges): Expr {
  const out: Expr[] = [];
  for (const [a0, b0] of subtract(ranges, [[0xd800, 0xdfff]])) {
    let a = a0;
    for (const lim of LIMITS) {
      if (a > b0) break;
      if (a > lim) continue;
      const hi = Math.min(b0, lim);
      sameLength(a, hi, out);
      a = hi + 1;
    }
  }
  if (out.length === 0) throw new Error('empty character class');
  return alt(...out);
}
