/**
 * The regex subset of JSON Schema `pattern` (and `format`) compiled to the
 * content of a JSON string: literals, `.`, classes with ranges and negation,
 * \d \w \s \D \W \S, escapes (\n \t \uXXXX \xHH), groups (capturing or
 * `(?:`), alternation, and the quantifiers * + ? {n} {n,} {n,m} (lazy forms
 * too). Anchors ^ and $ are allowed only at the ends; an unanchored pattern is
 * generated as if anchored, which yields a subset of the matching strings.
 * Lookaround and backreferences are refused (RegexError → HTTP 400).
 */
import { alt, empty, repeat, seq, type Expr } from './ir.ts';
import { jsonCharIn } from './json-text.ts';
import { complement, MAX_CP, normalize, type CodeRanges } from './utf8.ts';

export class RegexError extends Error {
  override readonly name = 'RegexError';
}

const cp = (c: string): CodeRanges => [[c.codePointAt(0)!, c.codePointAt(0)!]];

const DIGITS: CodeRanges = [[0x30, 0x39]];
const WORD: CodeRanges = [[0x30, 0x39], [0x41, 0x5a], [0x5f, 0x5f], [0x61, 0x7a]];
const SPACE: CodeRanges = [[0x09, 0x0d], [0x20, 0x20], [0xa0, 0xa0], [0x2028, 0x2029], [0xfeff, 0xfeff]];
const DOT = complement([[0x0a, 0x0a], [0x0d, 0x0d], [0x2028, 0x2029]]);

class Parser {
  private i = 0;
  constructor(private readonly src: string) {}

  parse(): Expr {
    if (this.src.startsWith('^')) this.i = 1;
    const e = this.alternation();
    if (this.i < this.src.length) throw new RegexError(`unexpected '${this.src[this.i]}' at ${this.i} in pattern ${JSON.stringify(this.src)}`);
    return e;
  }

  private peek(): string | undefined {
    return this.src[this.i];
  }

  private alternation(): Expr {
    const alts = [this.sequence()];
    while (this.peek() === '|') {
      this.i++;
      alts.push(this.sequence());
    }
    return alt(...alts);
  }

  private sequence(): Expr {
    const items: Expr[] = [];
    for (;;) {
      const c = this.peek();
      if (c === undefined || c === '|' || c === ')') break;
      if (c === '$') {
        this.i++;
        const next = this.peek();
        if (next !== undefined && next !== '|' && next !== ')') throw new RegexError("'$' is supported only at the end of the pattern");
        continue;
      }
      if (c === '^') throw new RegexError("'^' is supported only at the start of the pattern");
      items.push(this.quantified(this.atom()));
    }
    return items.length === 0 ? empty : seq(...items);
  }

  private quantified(atom: Expr): Expr {
    let e = atom;
    for (;;) {
      const c = this.peek();
      let min: number;
      let max: number;
      if (c === '*') [min, max] = [0, Infinity];
      else if (c === '+') [min, max] = [1, Infinity];
      else if (c === '?') [min, max] = [0, 1];
      else if (c === '{') {
        const m = /^\{(\d+)(,(\d*))?\}/.exec(this.src.slice(this.i));
        if (m === null) return e; // a literal '{' (JS allows it outside unicode mode)
        min = Number(m[1]);
        max = m[2] === undefined ? min : m[3] === '' ? Infinity : Number(m[3]);
        if (max < min) throw new RegexError(`bad repetition ${m[0]}`);
        this.i += m[0].length - 1;
      } else return e;
      this.i++;
      if (this.peek() === '?') this.i++; // lazy: same language
      e = repeat(e, min, max);
    }
  }

  private atom(): Expr {
    const c = this.src[this.i++]!;
    if (c === '(') {
      if (this.src.startsWith('?:', this.i)) this.i += 2;
      else if (this.peek() === '?') throw new RegexError('lookaround and named groups are not supported in patterns');
      const e = this.alternation();
      if (this.src[this.i++] !== ')') throw new RegexError(`unbalanced '(' in pattern ${JSON.stringify(this.src)}`);
      return e;
    }
    if (c === '.') return jsonCharIn(DOT);
    if (c === '[') return jsonCharIn(this.charClass());
    if (c === '\\') return jsonCharIn(this.escape(false));
    if (c === ')' || c === '*' || c === '+' || c === '?') throw new RegexError(`unexpected '${c}' in pattern ${JSON.stringify(this.src)}`);
    const code = this.src.codePointAt(this.i - 1)!;
    if (code > 0xffff) this.i++;
    return jsonCharIn([[code, code]]);
  }

  private charClass(): CodeRanges {
    const negate = this.peek() === '^';
    if (negate) this.i++;
    const out: CodeRanges = [];
    let first = true;
    for (;;) {
      const c = this.src[this.i];
      if (c === undefined) throw new RegexError(`unterminated character class in ${JSON.stringify(this.src)}`);
      if (c === ']' && !first) {
        this.i++;
        break;
      }
      first = false;
      const lo = this.classAtom();
      if (this.peek() === '-' && this.src[this.i + 1] !== ']' && this.src[this.i + 1] !== undefined && lo.length === 1 && lo[0]![0] === lo[0]![1]) {
        this.i++;
        const hi = this.classAtom();
        if (hi.length !== 1 || hi[0]![0] !== hi[0]![1] || hi[0]![0] < lo[0]![0]) throw new RegexError('bad range in character class');
        out.push([lo[0]![0], hi[0]![0]]);
      } else out.push(...lo);
    }
    const set = normalize(out);
    return negate ? complement(set) : set;
  }

  private classAtom(): CodeRanges {
    const c = this.src[this.i++]!;
    if (c === '\\') return this.escape(true);
    const code = this.src.codePointAt(this.i - 1)!;
    if (code > 0xffff) this.i++;
    return [[code, code]];
  }

  private escape(inClass: boolean): CodeRanges {
    const c = this.src[this.i++];
    switch (c) {
      case undefined:
        throw new RegexError('pattern ends with a backslash');
      case 'd':
        return DIGITS;
      case 'D':
        return complement(DIGITS);
      case 'w':
        return WORD;
      case 'W':
        return complement(WORD);
      case 's':
        return SPACE;
      case 'S':
        return complement(SPACE);
      case 'n':
        return cp('\n');
      case 't':
        return cp('\t');
      case 'r':
        return cp('\r');
      case 'f':
        return cp('\f');
      case 'v':
        return cp('\v');
      case '0':
        return [[0, 0]];
      case 'b':
        if (inClass) return cp('\b');
        throw new RegexError('word boundaries (\\b) are not supported in patterns');
      case 'x':
      case 'u': {
        const m = c === 'x' ? /^[0-9a-fA-F]{2}/.exec(this.src.slice(this.i)) : /^([0-9a-fA-F]{4}|\{[0-9a-fA-F]{1,6}\})/.exec(this.src.slice(this.i));
        if (m === null) throw new RegexError(`bad \\${c} escape`);
        this.i += m[0].length;
        const v = parseInt(m[0].replace(/[{}]/g, ''), 16);
        if (v > MAX_CP) throw new RegexError('code point out of range');
        return [[v, v]];
      }
      default:
        if (/[0-9]/.test(c) || c === 'k') throw new RegexError('backreferences are not supported in patterns');
        if (/[a-zA-Z]/.test(c)) throw new RegexError(`the escape \\${c} is not supported in patterns`);
        return cp(c);
    }
  }
}

/** A pattern → the content of a JSON string matching it (a subset when unanchored). */
export function regexToJsonContent(pattern: string): Expr {
  return new Parser(pattern).parse();
}
