/**
 * Any JSON value (json_object mode, `true` schemas, unconstrained items):
 * the standard JSON grammar with json-text.ts's bounded whitespace and
 * numbers. Rules are registered under fixed names in a GrammarBuilder.
 */
import { alt, lit, opt, ref, repeat, seq, type Expr, type GrammarBuilder, type Grammar, GrammarBuilder as Builder } from './ir.ts';
import { JSON_STRING_CHAR, JSON_WS, jsonString, numberRange } from './json-text.ts';

export const ANY_VALUE = 'json:value';
export const ANY_OBJECT = 'json:object';
export const ANY_ARRAY = 'json:array';

const UNBOUNDED = { min: -Infinity, minExclusive: false, max: Infinity, maxExclusive: false };

/** Defines json:value, json:object and json:array in b. */
export function anyJsonValueRules(b: GrammarBuilder): void {
  const sep = seq(JSON_WS, lit(','), JSON_WS);
  const str = jsonString(repeat(JSON_STRING_CHAR, 0));
  const kv = seq(str, JSON_WS, lit(':'), JSON_WS, ref(ANY_VALUE));
  const list = (item: Expr): Expr => opt(seq(item, repeat(seq(sep, item), 0)));
  b.define(ANY_OBJECT, seq(lit('{'), JSON_WS, list(kv), JSON_WS, lit('}')));
  b.define(ANY_ARRAY, seq(lit('['), JSON_WS, list(ref(ANY_VALUE)), JSON_WS, lit(']')));
  b.define(
    ANY_VALUE,
    alt(ref(ANY_OBJECT), ref(ANY_ARRAY), str, numberRange(UNBOUNDED), lit('true'), lit('false'), lit('null')),
  );
}

/** response_format json_object: any JSON object. */
export function jsonObjectGrammar(): Grammar {
  const b = new Builder();
  anyJsonValueRules(b);
  return b.build(ANY_OBJECT, 'json_object');
}

/** grammar_mode json: any JSON value. */
export function jsonValueGrammar(): Grammar {
  const b = new Builder();
  anyJsonValueRules(b);
  return b.build(ANY_VALUE, 'json_value');
}

/** The JSON Schema type name of a value ('integer' for whole numbers). */
export function jsonType(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'array';
  if (typeof v === 'number') return Number.isInteger(v) ? 'integer' : 'number';
  return typeof v;
}
