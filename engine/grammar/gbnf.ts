/**
 * GBNF (llama.cpp's grammar format) → grammar IR, for the raw `grammar`
 * request extension and the built-in modes.
 *
 *   root   ::= item* "!"          # rules: name ::= alternatives; `root` is the start
 *   item   ::= [a-z0-9_] | "(" item* ")" | other
 *   other  ::= [^()] {1,3}         # quantifiers: * + ? {m} {m,} {m,n}
 *
 * Terminals: "literals" and [classes] (ranges, ^ negation) with escapes \n \r
 * \t \\ \" \] \xHH \uHHHH \UHHHHHHHH; `.` is any character. Characters are
 * Unicode code points matched as UTF-8. Rule names are [A-Za-z0-9_-]+.
 */
import { alt, empty, GrammarBuilder, GrammarError, lit, ref, repeat, seq, type Expr, type Grammar } from './ir.ts';
import { codeRangesExpr, complement, MAX_CP, normalize, type CodeRanges } from './utf8.ts';

const NAME = /^[A-Za-z][A-Za-z0-9_-]*/;

class GbnfParser {
  private i = 0;
  readonly referenced = new Set<string>();

  constructor(private readonly src: string) {}

  private fail(msg: string): never {
    const line = this.src.slice(0, this.i).split('\n').length;
    throw new GrammarError(`grammar line ${line}: ${msg}`);
  }

  /** Skips spaces and comments; newlines too when `newlines`. */
  private space(newlines: boolean): void {
    for (;;) {
      const c = this.src[this.i];
      if (c === '#') while (this.i < this.src.length && this.src[this.i] !== '\n') this.i++;
      else if (c === ' ' || c === '\t' || c === '\r' || (newlines && c === '\n')) this.i++;
      else return;
    }
  }

  /** At `name ::=`? */
  private atRuleStart(): boolean {
    const m = NAME.exec(this.src.slice(this.i));
    if (m === null) return false;
    return /^[ \t]*::=/.test(this.src.slice(this.i + m[0].length));
  }

  parse(b: GrammarBuilder): void {
    this.space(true);
    while (this.i < this.src.length) {
      const m = NAME.exec(this.src.slice(this.i));
      if (m === null || !this.atRuleStart()) this.fail('expected a rule (name ::= ...)');
      this.i += m[0].length;
      this.space(false);
      this.i += 3; // ::=
      this.space(true);
      if (b.rules.has(m[0])) this.fail(`rule '${m[0]}' is defined twice`);
      b.define(m[0], this.alternatives(0));
      this.space(true);
    }
  }

  private alternatives(depth: number): Expr {
    const alts = [this.sequence(depth)];
    while (this.src[this.i] === '|') {
      this.i++;
      this.space(true);
      alts.push(this.sequence(depth));
    }
    return alt(...alts);
  }

  private sequence(depth: number): Expr {
    const items: Expr[] = [];
    for (;;) {
      // Inside parentheses a sequence may span lines; at top level a newline ends it
      // unless the next line continues with an alternative or is not a new rule.
      this.space(depth > 0);
      if (depth === 0 && this.src[this.i] === '\n') {
        const save = this.i;
        this.space(true);
        if (this.i >= this.src.length || this.atRuleStart()) {
          this.i = save;
          break;
        }
        continue; // a continuation line (or one starting with '|')
      }
      const c = this.src[this.i];
      if (c === undefined || c === '|' || c === ')' || c === '\n') break;
      if (this.atRuleStart()) break;
      items.push(this.quantified(this.term(depth)));
    }
    return items.length === 0 ? empty : seq(...items);
  }

  private quantified(e0: Expr): Expr {
    let e = e0;
    for (;;) {
      const c = this.src[this.i];
      if (c === '*') e = repeat(e, 0);
      else if (c === '+') e = repeat(e, 1);
      else if (c === '?') e = repeat(e, 0, 1);
      else if (c === '{') {
        const m = /^\{\s*(\d+)\s*(,\s*(\d*)\s*)?\}/.exec(this.src.slice(this.i));
        if (m === null) this.fail('bad repetition {m,n}');
        const min = Number(m[1]);
        const max = m[2] === undefined ? min : m[3] === '' ? Infinity : Number(m[3]);
        if (max < min) this.fail(`bad repetition ${m[0]}`);
        e = repeat(e, min, max);
        this.i += m[0].length - 1;
      } else return e;
      this.i++;
    }
  }

  private term(depth: number): Expr {
    const c = this.src[this.i]!;
    if (c === '"') {
      this.i++;
      let text = '';
      while (this.src[this.i] !== '"') {
        if (this.i >= this.src.length) this.fail('unterminated string literal');
        text += String.fromCodePoint(this.char());
      }
      this.i++;
      return lit(text);
    }
    if (c === '[') return codeRangesExpr(this.charClass());
    if (c === '.') {
      this.i++;
      return codeRangesExpr([[0, MAX_CP]]);
    }
    if (c === '(') {
      this.i++;
      this.space(true);
      const e = this.alternatives(depth + 1);
      this.space(true);
      if (this.src[this.i] !== ')') this.fail("expected ')'");
      this.i++;
      return e;
    }
    const m = NAME.exec(this.src.slice(this.i));
    if (m === null) this.fail(`unexpected '${c}'`);
    this.i += m[0].length;
    this.referenced.add(m[0]);
    return ref(m[0]);
  }

  private charClass(): CodeRanges {
    this.i++; // [
    const negate = this.src[this.i] === '^';
    if (negate) this.i++;
    const ranges: CodeRanges = [];
    while (this.src[this.i] !== ']') {
      if (this.i >= this.src.length) this.fail('unterminated character class');
      const lo = this.char();
      if (this.src[this.i] === '-' && this.src[this.i + 1] !== ']') {
        this.i++;
        const hi = this.char();
        if (hi < lo) this.fail('bad range in character class');
        ranges.push([lo, hi]);
      } else ranges.push([lo, lo]);
    }
    this.i++;
    if (ranges.length === 0 && !negate) this.fail('empty character class');
    return negate ? complement(ranges) : normalize(ranges);
  }

  /** One (possibly escaped) character of a literal or class. */
  private char(): number {
    const c = this.src.codePointAt(this.i)!;
    this.i += c > 0xffff ? 2 : 1;
    if (c !== 0x5c) return c;
    const e = this.src[this.i++];
    const simple: Record<string, number> = { n: 10, r: 13, t: 9, '\\': 92, '"': 34, ']': 93, '[': 91, '-': 45, '^': 94 };
    if (e !== undefined && simple[e] !== undefined) return simple[e]!;
    const digits = e === 'x' ? 2 : e === 'u' ? 4 : e === 'U' ? 8 : 0;
    if (digits === 0) this.fail(`unknown escape \\${e ?? ''}`);
    const hex = this.src.slice(this.i, this.i + digits);
    if (!/^[0-9a-fA-F]+$/.test(hex) || hex.length !== digits) this.fail(`bad \\${e} escape`);
    this.i += digits;
    const v = parseInt(hex, 16);
    if (v > MAX_CP) this.fail('code point out of range');
    return v;
  }
}

/** Parses GBNF text (start rule `root`). Throws GrammarError with a line number. */
export function gbnfGrammar(text: string, key = `gbnf:${text}`): Grammar {
  const b = new GrammarBuilder();
  const p = new GbnfParser(text);
  p.parse(b);
  if (!b.rules.has('root')) throw new GrammarError("the grammar has no 'root' rule");
  for (const name of p.referenced) if (!b.rules.has(name)) throw new GrammarError(`undefined rule '${name}'`);
  return b.build('root', key);
}
