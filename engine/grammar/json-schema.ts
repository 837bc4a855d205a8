/**
 * JSON Schema → grammar. Supported: type (incl. arrays of types), properties,
 * required, additionalProperties, enum, const, anyOf, oneOf (branches must be
 * provably disjoint), allOf of one branch (how schema generators attach a
 * description to a $ref), $ref/$defs/definitions (local, recursion allowed),
 * items, prefixItems, minItems, maxItems, minLength, maxLength, pattern,
 * format (date, date-time, time, email, uuid), minimum, maximum,
 * exclusiveMinimum, exclusiveMaximum, integer. Annotations (title,
 * description, default, examples, …) are ignored. Any other keyword is
 * refused with SchemaError naming it — a constraint is never silently dropped.
 *
 * Objects are written with their properties in declaration order (required
 * ones always, optional ones maybe) and no undeclared properties; whitespace
 * is bounded (json-text.ts). Each is a subset of what the schema allows.
 */
import { alt, empty, GrammarBuilder, lit, opt, ref, repeat, seq, type Expr, type Grammar } from './ir.ts';
import {
  integerBounds,
  integerRange,
  JSON_STRING_CHAR,
  JSON_WS,
  jsonString,
  numberRange,
  type NumberBounds,
} from './json-text.ts';
import { RegexError, regexToJsonContent } from './regex.ts';
import { provablyDisjoint } from './disjoint.ts';
import { anyJsonValueRules, ANY_VALUE, ANY_OBJECT, jsonType } from './json-value.ts';

export class SchemaError extends Error {
  override readonly name = 'SchemaError';
  /** kind 'unsupported': a keyword we do not enforce (named in `keyword`); 'invalid': not a usable schema. */
  constructor(
    readonly kind: 'unsupported' | 'invalid',
    message: string,
    readonly keyword: string | null = null,
  ) {
    super(message);
  }
}

const ANNOTATIONS = new Set(['title', 'description', 'default', 'examples', '$schema', '$id', '$comment', 'deprecated', 'readOnly', 'writeOnly', '$anchor']);
const SUPPORTED = new Set([
  'type', 'properties', 'required', 'additionalProperties', 'enum', 'const', 'anyOf', 'oneOf', 'allOf', '$ref', '$defs', 'definitions',
  'items', 'prefixItems', 'minItems', 'maxItems', 'minLength', 'maxLength', 'pattern', 'format',
  'minimum', 'maximum', 'exclusiveMinimum', 'exclusiveMaximum',
]);
const TYPES = new Set(['object', 'array', 'string', 'number', 'integer', 'boolean', 'null']);
const FAMILY: Record<string, string> = {
  properties: 'object', required: 'object', additionalProperties: 'object',
  items: 'array', prefixItems: 'array', minItems: 'array', maxItems: 'array',
  minLength: 'string', maxLength: 'string', pattern: 'string', format: 'string',
  minimum: 'number', maximum: 'number', exclusiveMinimum: 'number', exclusiveMaximum: 'number',
};

/** Regexes (the json-text subset) for the supported formats, each within what ajv-formats accepts. */
const FORMATS: Record<string, string> = {
  date: '[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|1[0-9]|2[0-8])',
  time: '([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\\.[0-9]{1,3})?(Z|[+-]([01][0-9]|2[0-3]):[0-5][0-9])',
  'date-time':
    '[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|1[0-9]|2[0-8])T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\\.[0-9]{1,3})?(Z|[+-]([01][0-9]|2[0-3]):[0-5][0-9])',
  email: '[a-z0-9]{1,16}(\\.[a-z0-9]{1,16}){0,2}@[a-z0-9]{1,16}(\\.[a-z0-9]{1,16}){0,2}\\.[a-z]{2,6}',
  uuid: '[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}',
};

/** Items or characters generated beyond a minimum when the maximum is larger (keeps the automaton small). */
const MAX_EXTRA = 128;

type Schema = Record<string, unknown> | boolean;

const isObj = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const invalid = (path: string, msg: string) => new SchemaError('invalid', `Invalid JSON schema at ${path}: ${msg}`);
const unsupported = (path: string, keyword: string, why = 'is not supported') =>
  new SchemaError('unsupported', `JSON schema keyword '${keyword}' at ${path} ${why}; braid refuses schemas it cannot enforce.`, keyword);


const typeMatches = (v: unknown, t: string) => jsonType(v) === t || (t === 'number' && jsonType(v) === 'integer');

export class SchemaCompiler {
  private readonly refNames = new Map<string, string>();

  /** Rules are added to b (several schemas may share one builder, e.g. one per tool). */
  constructor(
    private readonly root: unknown,
    private readonly b: GrammarBuilder = new GrammarBuilder(),
  ) {
    if (!b.rules.has(ANY_VALUE)) anyJsonValueRules(b);
  }

  /** The name of the rule for the whole schema's JSON text. */
  rootRule(): string {
    return this.refRule('#', '#');
  }

  compile(key: string): Grammar {
    return this.b.build(this.rootRule(), key);
  }

  /** The rule for a local JSON pointer, defined on first use (recursion goes through the name). */
  private refRule(pointer: string, path: string): string {
    let name = this.refNames.get(pointer);
    if (name !== undefined) return name;
    if (!pointer.startsWith('#')) throw unsupported(path, '$ref', `to another document (${pointer}) is not supported`);
    let target: unknown = this.root;
    const parts = pointer === '#' ? [] : pointer.replace(/^#\/?/, '').split('/');
    for (const raw of parts) {
      const key = decodeURIComponent(raw).replace(/~1/g, '/').replace(/~0/g, '~');
      target = isObj(target) || Array.isArray(target) ? (target as Record<string, unknown>)[key] : undefined;
      if (target === undefined) throw invalid(path, `$ref ${pointer} does not resolve`);
    }
    name = this.b.fresh(`ref:${pointer}`);
    this.refNames.set(pointer, name);
    this.b.define(name, this.schema(target as Schema, pointer));
    return name;
  }

  private schema(s: unknown, path: string): Expr {
    if (s === true) return ref(ANY_VALUE);
    if (s === false) throw invalid(path, 'the schema false accepts nothing');
    if (!isObj(s)) throw invalid(path, 'a schema must be an object or a boolean');
    for (const k of Object.keys(s)) if (!SUPPORTED.has(k) && !ANNOTATIONS.has(k)) throw unsupported(path, k);
    const keys = Object.keys(s).filter((k) => SUPPORTED.has(k) && k !== '$defs' && k !== 'definitions');
    for (const defs of ['$defs', 'definitions']) if (s[defs] !== undefined && !isObj(s[defs])) throw invalid(path, `${defs} must be an object`);

    if (s.$ref !== undefined) {
      if (typeof s.$ref !== 'string') throw invalid(path, '$ref must be a string');
      if (keys.length > 1) throw unsupported(path, keys.find((k) => k !== '$ref')!, 'beside $ref is not supported');
      return ref(this.refRule(s.$ref, path));
    }
    if (s.allOf !== undefined) {
      const branches = s.allOf;
      if (!Array.isArray(branches) || branches.length === 0) throw invalid(path, 'allOf must be a non-empty array');
      // One branch is that branch; an intersection of several would need schema intersection.
      if (branches.length > 1) throw unsupported(path, 'allOf', 'with more than one branch is not supported');
      if (keys.length > 1) throw unsupported(path, keys.find((k) => k !== 'allOf')!, 'beside allOf is not supported');
      return ref(this.subRule(branches[0], `${path}/allOf/0`));
    }
    for (const comb of ['anyOf', 'oneOf'] as const) {
      if (s[comb] === undefined) continue;
      const branches = s[comb];
      if (!Array.isArray(branches) || branches.length === 0) throw invalid(path, `${comb} must be a non-empty array`);
      if (keys.length > 1) throw unsupported(path, keys.find((k) => k !== comb)!, `beside ${comb} is not supported`);
      if (comb === 'oneOf') this.checkDisjoint(branches, path);
      return alt(...branches.map((b, i) => ref(this.subRule(b, `${path}/${comb}/${i}`))));
    }
    const types = this.types(s, path);
    if (s.const !== undefined || s.enum !== undefined) return this.literals(s, types, keys, path);
    const family = new Set(keys.filter((k) => FAMILY[k] !== undefined).map((k) => FAMILY[k]!));
    // Without `type`, a schema constrains only the types its keywords talk about.
    const chosen = types ?? (family.size === 0 ? null : [...family]);
    if (chosen === null) return ref(ANY_VALUE);
    return alt(...chosen.map((t) => this.typed(t, s, path)));
  }

  private subRule(s: unknown, path: string): string {
    return this.b.define(this.b.fresh(path), this.schema(s, path));
  }

  private types(s: Record<string, unknown>, path: string): string[] | null {
    if (s.type === undefined) return null;
    const ts = Array.isArray(s.type) ? s.type : [s.type];
    if (ts.length === 0) throw invalid(path, 'type must not be an empty array');
    for (const t of ts) if (typeof t !== 'string' || !TYPES.has(t)) throw invalid(path, `unknown type ${JSON.stringify(t)}`);
    return ts as string[];
  }

  private literals(s: Record<string, unknown>, types: string[] | null, keys: string[], path: string): Expr {
    const other = keys.find((k) => k !== 'const' && k !== 'enum' && k !== 'type');
    if (other !== undefined) throw unsupported(path, other, 'beside enum/const is not supported');
    let values: unknown[];
    if (s.const !== undefined) values = [s.const];
    else if (Array.isArray(s.enum) && s.enum.length > 0) values = s.enum;
    else throw invalid(path, 'enum must be a non-empty array');
    if (s.const !== undefined && s.enum !== undefined) values = values.filter((v) => (s.enum as unknown[]).some((e) => JSON.stringify(e) === JSON.stringify(v)));
    if (types !== null) values = values.filter((v) => types.some((t) => typeMatches(v, t)));
    if (values.length === 0) throw invalid(path, 'no enum/const value has an allowed type');
    return alt(...values.map((v) => lit(JSON.stringify(v))));
  }

  private typed(t: string, s: Record<string, unknown>, path: string): Expr {
    switch (t) {
      case 'null':
        return lit('null');
      case 'boolean':
        return alt(lit('true'), lit('false'));
      case 'string':
        return this.string(s, path);
      case 'integer':
      case 'number':
        return this.number(t, s, path);
      case 'array':
        return this.array(s, path);
      default:
        return this.object(s, path);
    }
  }

  private count(s: Record<string, unknown>, k: string, path: string): number | undefined {
    const v = s[k];
    if (v === undefined) return undefined;
    if (typeof v !== 'number' || !Number.isInteger(v) || v < 0) throw invalid(path, `${k} must be a non-negative integer`);
    return v;
  }

  private bounded(item: Expr, min: number, max: number | undefined): Expr {
    return repeat(item, min, max === undefined ? Infinity : Math.min(max, min + MAX_EXTRA));
  }

  private string(s: Record<string, unknown>, path: string): Expr {
    const minLen = this.count(s, 'minLength', path) ?? 0;
    const maxLen = this.count(s, 'maxLength', path);
    if (maxLen !== undefined && maxLen < minLen) throw invalid(path, 'maxLength is less than minLength');
    const hasLength = s.minLength !== undefined || s.maxLength !== undefined;
    if (s.pattern !== undefined && s.format !== undefined) throw unsupported(path, 'pattern', 'together with format is not supported');
    let source: string | null = null;
    if (s.format !== undefined) {
      if (typeof s.format !== 'string') throw invalid(path, 'format must be a string');
      source = FORMATS[s.format] ?? null;
      if (source === null) throw unsupported(path, 'format', `"${s.format}" is not supported (supported: ${Object.keys(FORMATS).join(', ')})`);
      if (hasLength) throw unsupported(path, 'minLength', 'together with format is not supported');
    }
    if (s.pattern !== undefined) {
      if (typeof s.pattern !== 'string') throw invalid(path, 'pattern must be a string');
      try {
        new RegExp(s.pattern, 'u');
      } catch (e) {
        throw invalid(path, `pattern does not compile: ${(e as Error).message}`);
      }
      if (hasLength) throw unsupported(path, s.minLength !== undefined ? 'minLength' : 'maxLength', 'together with pattern is not supported');
      source = s.pattern;
    }
    if (source !== null) {
      try {
        return jsonString(regexToJsonContent(source));
      } catch (e) {
        if (e instanceof RegexError) throw unsupported(path, 'pattern', `(${e.message})`);
        throw e;
      }
    }
    return jsonString(this.bounded(JSON_STRING_CHAR, minLen, maxLen));
  }

  private bound(s: Record<string, unknown>, k: string, path: string): number | undefined {
    const v = s[k];
    if (v === undefined) return undefined;
    if (typeof v !== 'number' || !Number.isFinite(v)) throw invalid(path, `${k} must be a number`);
    return v;
  }

  private number(t: 'integer' | 'number', s: Record<string, unknown>, path: string): Expr {
    const min = this.bound(s, 'minimum', path);
    const max = this.bound(s, 'maximum', path);
    const xmin = this.bound(s, 'exclusiveMinimum', path);
    const xmax = this.bound(s, 'exclusiveMaximum', path);
    const b: NumberBounds = { min: -Infinity, minExclusive: false, max: Infinity, maxExclusive: false };
    if (min !== undefined) b.min = min;
    if (xmin !== undefined && xmin >= b.min) Object.assign(b, { min: xmin, minExclusive: true });
    if (max !== undefined) b.max = max;
    if (xmax !== undefined && xmax <= b.max) Object.assign(b, { max: xmax, maxExclusive: true });
    const emptyRange = b.min > b.max || (b.min === b.max && (b.minExclusive || b.maxExclusive));
    if (t === 'integer') {
      const [lo, hi] = integerBounds(b);
      const e = integerRange(lo, hi);
      if (e === null || emptyRange) throw invalid(path, 'no integer satisfies the bounds');
      return e;
    }
    if (emptyRange) throw invalid(path, 'no number satisfies the bounds');
    return numberRange(b);
  }

  private array(s: Record<string, unknown>, path: string): Expr {
    const minItems = this.count(s, 'minItems', path) ?? 0;
    const maxItems = this.count(s, 'maxItems', path);
    if (maxItems !== undefined && maxItems < minItems) throw invalid(path, 'maxItems is less than minItems');
    let prefix: unknown[] = [];
    let items: unknown = s.items;
    if (s.prefixItems !== undefined) {
      if (!Array.isArray(s.prefixItems)) throw invalid(path, 'prefixItems must be an array');
      prefix = s.prefixItems;
    } else if (Array.isArray(items)) {
      prefix = items; // draft-07 tuple form
      items = undefined;
    }
    const fixed = prefix.slice(0, maxItems ?? prefix.length).map((p, i) => ref(this.subRule(p, `${path}/prefixItems/${i}`)));
    const extraMin = Math.max(0, minItems - fixed.length);
    const extraMax = maxItems === undefined ? undefined : maxItems - fixed.length;
    let extra: Expr | null = null;
    if (items === false) {
      if (extraMin > 0) throw invalid(path, 'minItems needs more items than prefixItems allows');
    } else if (items === undefined || items === true) {
      extra = ref(ANY_VALUE);
    } else {
      extra = ref(this.subRule(items, `${path}/items`));
    }
    const sep = seq(JSON_WS, lit(','), JSON_WS);
    const parts: Expr[] = [];
    fixed.forEach((f, i) => parts.push(i === 0 ? f : seq(sep, f)));
    let body: Expr = seq(...parts);
    if (extra !== null) {
      // Unconstrained items after a tuple prefix are written only as far as minItems needs.
      const cap = extra.k === 'ref' && extra.name === ANY_VALUE && fixed.length > 0 ? extraMin : extraMax;
      if (fixed.length > 0) body = seq(body, this.bounded(seq(sep, extra), extraMin, cap));
      else if (extraMin > 0) body = seq(extra, this.bounded(seq(sep, extra), extraMin - 1, cap === undefined ? undefined : cap - 1));
      else if (cap !== 0) body = opt(seq(extra, this.bounded(seq(sep, extra), 0, cap === undefined ? undefined : cap - 1)));
    }
    return seq(lit('['), JSON_WS, body, JSON_WS, lit(']'));
  }

  private object(s: Record<string, unknown>, path: string): Expr {
    if (s.properties !== undefined && !isObj(s.properties)) throw invalid(path, 'properties must be an object');
    const props = (s.properties ?? {}) as Record<string, unknown>;
    if (s.required !== undefined && (!Array.isArray(s.required) || !s.required.every((r) => typeof r === 'string'))) {
      throw invalid(path, 'required must be an array of strings');
    }
    const required = new Set((s.required ?? []) as string[]);
    const ap = s.additionalProperties;
    if (ap !== undefined && typeof ap !== 'boolean' && !isObj(ap)) throw invalid(path, 'additionalProperties must be a boolean or a schema');
    const names = [...Object.keys(props)];
    for (const r of required) {
      if (names.includes(r)) continue;
      if (ap === false) throw invalid(path, `required property '${r}' is not allowed by additionalProperties: false`);
      names.push(r);
    }
    if (names.length === 0) {
      if (ap === false) return seq(lit('{'), JSON_WS, lit('}'));
      if (ap === undefined || ap === true) return ref(ANY_OBJECT);
      // A map: any keys, each value under additionalProperties.
      const value = ref(this.subRule(ap, `${path}/additionalProperties`));
      const kv = seq(jsonString(repeat(JSON_STRING_CHAR, 0)), JSON_WS, lit(':'), JSON_WS, value);
      const sep = seq(JSON_WS, lit(','), JSON_WS);
      return seq(lit('{'), JSON_WS, opt(seq(kv, repeat(seq(sep, kv), 0))), JSON_WS, lit('}'));
    }
    const kv = names.map((n) => {
      const value = props[n] === undefined ? ref(ANY_VALUE) : ref(this.subRule(props[n], `${path}/properties/${n}`));
      return seq(lit(JSON.stringify(n)), JSON_WS, lit(':'), JSON_WS, value);
    });
    // members(i, first): properties i.. with a comma before each unless it is the first written.
    const memo = new Map<string, string>();
    const members = (i: number, first: boolean): Expr => {
      if (i === names.length) return empty;
      const key = `${i}:${first}`;
      let name = memo.get(key);
      if (name === undefined) {
        name = this.b.fresh(`${path}/members`);
        memo.set(key, name);
        const write = seq(first ? empty : seq(JSON_WS, lit(','), JSON_WS), kv[i]!, members(i + 1, false));
        this.b.define(name, required.has(names[i]!) ? write : alt(write, members(i + 1, first)));
      }
      return ref(name);
    };
    return seq(lit('{'), JSON_WS, members(0, true), JSON_WS, lit('}'));
  }

  /** oneOf needs exactly one branch to match: refuse branches we cannot prove disjoint. */
  private checkDisjoint(branches: unknown[], path: string): void {
    for (let i = 0; i < branches.length; i++) {
      for (let j = i + 1; j < branches.length; j++) {
        if (!provablyDisjoint(this.root, branches[i], branches[j])) {
          throw unsupported(path, 'oneOf', `with branches ${i} and ${j} that may both match is not supported (use anyOf, or distinguish them by type or by a const/enum property)`);
        }
      }
    }
  }
}

/** Compiles a JSON schema (throws SchemaError) to a grammar for its JSON text. */
export function jsonSchemaGrammar(schema: unknown): Grammar {
  if (schema === undefined || schema === null) throw new SchemaError('invalid', 'Invalid JSON schema: the schema is missing');
  return new SchemaCompiler(schema).compile(`json_schema:${JSON.stringify(schema)}`);
}
