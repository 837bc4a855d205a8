/**
 * The grammar IR every constraint compiles to: named rules of expressions over
 * *bytes* (not characters), so that a token whose bytes end inside a UTF-8
 * character, or span several grammar elements, is checked exactly. JSON Schema
 * (json-schema.ts), GBNF text (gbnf.ts), regexes (regex.ts), the modes
 * (modes.ts) and tool calls (tool-calls.ts) all build these; automaton.ts
 * compiles them to a pushdown automaton.
 *
 * A grammar may describe a *subset* of what a schema allows (e.g. bounded
 * whitespace, no exponents in numbers): every string it accepts must validate,
 * and it must accept at least one string.
 */

/** One byte out of a set: 256 bits in 8 words. */
export type ByteSet = Uint32Array;

export type Expr =
  | { k: 'byte'; set: ByteSet }
  | { k: 'seq'; items: Expr[] }
  | { k: 'alt'; items: Expr[] }
  | { k: 'ref'; name: string }
  /** max: Infinity for unbounded. */
  | { k: 'repeat'; item: Expr; min: number; max: number };

export interface Grammar {
  rules: Map<string, Expr>;
  root: string;
  /**
   * Identifies the grammar for caching compiled automata and masks (same key
   * ⇒ same language). Built from the request's spec, e.g. the schema's JSON.
   */
  key: string;
}

/** Thrown for a grammar that cannot be compiled (undefined rule, left recursion, empty language). */
export class GrammarError extends Error {
  override readonly name = 'GrammarError';
}

export function byteSet(...ranges: [number, number][]): ByteSet {
  const s = new Uint32Array(8);
  for (const [lo, hi] of ranges) for (let b = lo; b <= hi; b++) s[b >> 5]! |= 1 << (b & 31);
  return s;
}

export const hasByte = (s: ByteSet, b: number): boolean => (s[b >> 5]! & (1 << (b & 31))) !== 0;

export const byteExpr = (...ranges: [number, number][]): Expr => ({ k: 'byte', set: byteSet(...ranges) });

/** Characters of a string given as ASCII/bytes (e.g. '[a-z]' → byteExpr). */
export function charsExpr(chars: string): Expr {
  const ranges: [number, number][] = [];
  for (const c of new TextEncoder().encode(chars)) ranges.push([c, c]);
  return byteExpr(...ranges);
}

const utf8 = new TextEncoder();

/** The exact UTF-8 bytes of a string. */
export function lit(text: string): Expr {
  return { k: 'seq', items: [...utf8.encode(text)].map((b) => byteExpr([b, b])) };
}

export const seq = (...items: Expr[]): Expr => (items.length === 1 ? items[0]! : { k: 'seq', items });
export const alt = (...items: Expr[]): Expr => (items.length === 1 ? items[0]! : { k: 'alt', items });
export const ref = (name: string): Expr => ({ k: 'ref', name });
export const repeat = (item: Expr, min: number, max = Infinity): Expr => ({ k: 'repeat', item, min, max });
export const opt = (item: Expr): Expr => repeat(item, 0, 1);
export const empty: Expr = { k: 'seq', items: [] };

/** A rule table being filled, with fresh names for helper rules. */
export class GrammarBuilder {
  readonly rules = new Map<string, Expr>();
  private n = 0;

  define(name: string, e: Expr): string {
    this.rules.set(name, e);
    return name;
  }

  fresh(prefix: string): string {
    return `${prefix}#${this.n++}`;
  }

  build(root: string, key: string): Grammar {
    return { rules: this.rules, root, key };
  }

  /**
   * Copies another grammar's rules in under `prefix` (refs renamed to match, so
   * its names cannot collide with this table's) and returns its root's new name.
   */
  include(g: Grammar, prefix: string): string {
    const rename = (e: Expr): Expr => {
      switch (e.k) {
        case 'ref':
          return ref(prefix + e.name);
        case 'seq':
        case 'alt':
          return { k: e.k, items: e.items.map(rename) };
        case 'repeat':
          return { ...e, item: rename(e.item) };
        default:
          return e;
      }
    };
    for (const [name, e] of g.rules) this.rules.set(prefix + name, rename(e));
    return prefix + g.root;
  }
}
