/**
 * The structured-output acceptance corpus: realistic API schemas (the shapes
 * people send to chat.completions with response_format json_schema or as tool
 * parameters) plus edge cases generated from every supported keyword. Each
 * entry must compile; test/model/structured-outputs.test.ts samples from the
 * default model under it and validates with ajv.
 */

export interface CorpusSchema {
  name: string;
  schema: Record<string, unknown>;
}

const str = { type: 'string' };
const int = { type: 'integer' };
const num = { type: 'number' };
const bool = { type: 'boolean' };
const obj = (properties: Record<string, unknown>, required = Object.keys(properties), extra: Record<string, unknown> = {}) => ({
  type: 'object',
  properties,
  required,
  additionalProperties: false,
  ...extra,
});

const realistic: CorpusSchema[] = [
  { name: 'weather', schema: obj({ location: str, unit: { type: 'string', enum: ['celsius', 'fahrenheit'] } }, ['location']) },
  { name: 'calendar_event', schema: obj({ name: str, date: { type: 'string', format: 'date' }, participants: { type: 'array', items: str } }) },
  { name: 'math_reasoning', schema: obj({ steps: { type: 'array', items: obj({ explanation: str, output: str }) }, final_answer: str }) },
  { name: 'ui_recursive', schema: { $defs: { ui: obj({ type: { enum: ['div', 'button', 'header', 'section', 'field', 'form'] }, label: str, children: { type: 'array', items: { $ref: '#/$defs/ui' } }, attributes: { type: 'array', items: obj({ name: str, value: str }) } }) }, $ref: '#/$defs/ui' } },
  { name: 'moderation', schema: obj({ is_violating: bool, category: { type: ['string', 'null'], enum: ['violence', 'sexual', 'self_harm', null] }, explanation_if_violating: { type: ['string', 'null'] } }) },
  { name: 'research_paper', schema: obj({ title: str, authors: { type: 'array', items: str }, abstract: str, keywords: { type: 'array', items: str, maxItems: 5 } }) },
  { name: 'person', schema: obj({ name: { type: 'string', minLength: 1, maxLength: 40 }, age: { type: 'integer', minimum: 0, maximum: 150 }, email: { type: 'string', format: 'email' } }, ['name']) },
  { name: 'address', schema: obj({ street: str, city: str, zip: { type: 'string', pattern: '^[0-9]{5}(-[0-9]{4})?$' }, country: { type: 'string', enum: ['US', 'CA', 'MX'] } }) },
  { name: 'order', schema: obj({ order_id: { type: 'string', format: 'uuid' }, items: { type: 'array', minItems: 1, maxItems: 3, items: obj({ sku: { type: 'string', pattern: '^[A-Z]{3}-[0-9]{3}$' }, quantity: { type: 'integer', minimum: 1, maximum: 99 }, price: { type: 'number', minimum: 0 } }) }, total: { type: 'number', minimum: 0 }, created_at: { type: 'string', format: 'date-time' } }) },
  { name: 'sentiment', schema: obj({ sentiment: { enum: ['positive', 'negative', 'neutral'] }, confidence: { type: 'number', minimum: 0, maximum: 1 } }) },
  { name: 'entities', schema: obj({ entities: { type: 'array', items: obj({ text: str, type: { enum: ['PERSON', 'ORG', 'LOC', 'DATE'] }, start: { type: 'integer', minimum: 0 }, end: { type: 'integer', minimum: 0 } }) } }) },
  { name: 'classification', schema: obj({ label: { type: 'string', enum: ['spam', 'ham'] } }) },
  { name: 'translation', schema: obj({ source_language: { type: 'string', pattern: '^[a-z]{2}$' }, target_language: { type: 'string', pattern: '^[a-z]{2}$' }, text: str }) },
  { name: 'sql_query', schema: obj({ query: str, tables: { type: 'array', items: str, minItems: 1 }, is_read_only: bool }) },
  { name: 'search_call', schema: obj({ query: str, top_k: { type: 'integer', minimum: 1, maximum: 50 }, filters: obj({ since: { type: 'string', format: 'date' }, language: { type: ['string', 'null'] } }, []) }, ['query']) },
  { name: 'product', schema: obj({ id: int, name: str, price: { type: 'number', exclusiveMinimum: 0 }, tags: { type: 'array', items: str }, dimensions: obj({ length: num, width: num, height: num }, ['length', 'width']) }, ['id', 'name', 'price']) },
  { name: 'invoice', schema: obj({ invoice_number: { type: 'string', pattern: '^INV-[0-9]{4,6}$' }, date: { type: 'string', format: 'date' }, lines: { type: 'array', items: obj({ description: str, amount: { type: 'number', minimum: -1000, maximum: 1000 } }) }, paid: bool }) },
  { name: 'json_patch', schema: { type: 'array', items: obj({ op: { enum: ['add', 'remove', 'replace', 'move', 'copy', 'test'] }, path: { type: 'string', pattern: '^(/[a-z0-9]+)*$' }, value: {} }, ['op', 'path']) } },
  { name: 'geojson_point', schema: obj({ type: { const: 'Point' }, coordinates: { type: 'array', prefixItems: [{ type: 'number', minimum: -180, maximum: 180 }, { type: 'number', minimum: -90, maximum: 90 }], minItems: 2, maxItems: 2 } }) },
  { name: 'shape_union', schema: { oneOf: [obj({ kind: { const: 'circle' }, radius: { type: 'number', minimum: 0 } }), obj({ kind: { const: 'square' }, side: { type: 'number', minimum: 0 } }), obj({ kind: { const: 'rect' }, w: num, h: num })] } },
  { name: 'api_response', schema: { anyOf: [obj({ ok: { const: true }, data: obj({ id: int, value: str }) }), obj({ ok: { const: false }, error: obj({ code: int, message: str }) })] } },
  { name: 'tree', schema: { $ref: '#/definitions/node', definitions: { node: obj({ value: int, children: { type: 'array', maxItems: 3, items: { $ref: '#/definitions/node' } } }, ['value']) } } },
  { name: 'linked_list', schema: { $defs: { node: obj({ v: { type: 'integer', minimum: 0, maximum: 9 }, next: { anyOf: [{ $ref: '#/$defs/node' }, { type: 'null' }] } }) }, $ref: '#/$defs/node' } },
  { name: 'root_recursion', schema: { type: 'object', properties: { name: str, sub: { type: 'array', items: { $ref: '#' }, maxItems: 2 } }, required: ['name'], additionalProperties: false } },
  { name: 'log_entry', schema: obj({ timestamp: { type: 'string', format: 'date-time' }, level: { enum: ['debug', 'info', 'warn', 'error'] }, message: str, context: { type: 'object', additionalProperties: str } }) },
  { name: 'metrics_map', schema: { type: 'object', additionalProperties: { type: 'number', minimum: 0, maximum: 100 } } },
  { name: 'user_profile', schema: obj({ id: { type: 'string', format: 'uuid' }, username: { type: 'string', pattern: '^[a-z][a-z0-9_]{2,15}$' }, bio: { type: 'string', maxLength: 60 }, followers: { type: 'integer', minimum: 0 }, verified: bool }, ['id', 'username']) },
  { name: 'recipe', schema: obj({ title: str, servings: { type: 'integer', minimum: 1, maximum: 12 }, ingredients: { type: 'array', minItems: 1, items: obj({ name: str, grams: { type: 'number', minimum: 0, maximum: 5000 } }) }, steps: { type: 'array', items: str } }) },
  { name: 'flight_search', schema: obj({ origin: { type: 'string', pattern: '^[A-Z]{3}$' }, destination: { type: 'string', pattern: '^[A-Z]{3}$' }, depart: { type: 'string', format: 'date' }, return: { type: ['string', 'null'], format: 'date' }, passengers: { type: 'integer', minimum: 1, maximum: 9 }, cabin: { enum: ['economy', 'premium', 'business', 'first'] } }, ['origin', 'destination', 'depart']) },
  { name: 'function_args_send_email', schema: obj({ to: { type: 'array', items: { type: 'string', format: 'email' }, minItems: 1, maxItems: 3 }, subject: { type: 'string', maxLength: 80 }, body: str, cc: { type: 'array', items: { type: 'string', format: 'email' } } }, ['to', 'subject', 'body']) },
  { name: 'color', schema: obj({ hex: { type: 'string', pattern: '^#[0-9a-fA-F]{6}$' }, rgb: { type: 'array', items: { type: 'integer', minimum: 0, maximum: 255 }, minItems: 3, maxItems: 3 } }) },
  { name: 'time_slot', schema: obj({ start: { type: 'string', format: 'time' }, end: { type: 'string', format: 'time' } }) },
  { name: 'semver', schema: obj({ version: { type: 'string', pattern: '^(0|[1-9][0-9]*)\\.(0|[1-9][0-9]*)\\.(0|[1-9][0-9]*)$' } }) },
  { name: 'phone', schema: obj({ phone: { type: 'string', pattern: '^\\+?[1-9]\\d{1,14}$' } }) },
  { name: 'url_like', schema: obj({ url: { type: 'string', pattern: '^https?://[a-z0-9.-]+(/[a-z0-9._-]*)*$' } }) },
  { name: 'matrix', schema: obj({ rows: { type: 'array', maxItems: 3, items: { type: 'array', maxItems: 3, items: num } } }) },
  { name: 'key_value_pairs', schema: { type: 'array', maxItems: 4, items: { type: 'array', prefixItems: [str, { type: ['number', 'string', 'boolean', 'null'] }], items: false } } },
  { name: 'nullable_fields', schema: obj({ a: { type: ['string', 'null'] }, b: { type: ['integer', 'null'], minimum: 0 }, c: { anyOf: [{ type: 'null' }, { type: 'array', items: bool }] } }) },
  { name: 'optional_everything', schema: obj({ a: str, b: int, c: bool, d: { type: 'array', items: int } }, []) },
  { name: 'chain_of_thought', schema: obj({ reasoning: { type: 'array', items: str, maxItems: 4 }, answer: { type: 'string', enum: ['A', 'B', 'C', 'D'] }, confidence: { type: 'integer', minimum: 0, maximum: 100 } }) },
  { name: 'extraction_table', schema: obj({ headers: { type: 'array', items: str, minItems: 1, maxItems: 4 }, rows: { type: 'array', items: { type: 'array', items: { type: ['string', 'number', 'null'] } }, maxItems: 3 } }) },
  { name: 'unicode_literals', schema: obj({ greeting: { enum: ['héllo', 'こんにちは', '😀 hi', 'naïve'] }, city: { const: 'Zürich' } }) },
  { name: 'temperature_reading', schema: obj({ celsius: { type: 'number', minimum: -273.15, maximum: 1000 }, sensor: { type: 'string', pattern: '^sensor-[0-9]+$' } }) },
  { name: 'percentages', schema: obj({ values: { type: 'array', items: { type: 'number', exclusiveMinimum: 0, exclusiveMaximum: 1 }, maxItems: 4 } }) },
  { name: 'negative_range', schema: obj({ offset: { type: 'integer', minimum: -500, maximum: -20 }, drift: { type: 'number', minimum: -2.5, maximum: -0.5 } }) },
  { name: 'big_integers', schema: obj({ id: { type: 'integer', minimum: 1000000000, maximum: 9999999999 }, neg: { type: 'integer', maximum: -1000000 } }) },
  { name: 'narrow_float', schema: obj({ x: { type: 'number', minimum: 0.1, maximum: 0.2 }, y: { type: 'number', exclusiveMinimum: 2.5, exclusiveMaximum: 2.75 } }) },
  { name: 'tool_get_stock_price', schema: obj({ ticker: { type: 'string', pattern: '^[A-Z]{1,5}$' }, exchange: { enum: ['NYSE', 'NASDAQ'] } }, ['ticker']) },
  { name: 'tool_create_ticket', schema: obj({ title: { type: 'string', minLength: 5, maxLength: 50 }, priority: { enum: ['low', 'medium', 'high', 'urgent'] }, labels: { type: 'array', items: { type: 'string', pattern: '^[a-z-]+$' }, maxItems: 4 }, assignee: { type: ['string', 'null'], format: 'email' } }, ['title', 'priority']) },
  { name: 'conversation', schema: obj({ messages: { type: 'array', maxItems: 3, items: obj({ role: { enum: ['user', 'assistant'] }, content: str }) } }) },
  { name: 'any_json_value', schema: {} },
  { name: 'boolean_root', schema: bool },
  { name: 'string_root', schema: { type: 'string', maxLength: 20 } },
  { name: 'array_root', schema: { type: 'array', items: int, maxItems: 5 } },
  { name: 'number_root', schema: { type: 'number' } },
  { name: 'null_root', schema: { type: 'null' } },
  { name: 'open_object', schema: { type: 'object' } },
  { name: 'required_undeclared', schema: { type: 'object', properties: { a: int }, required: ['a', 'b'] } },
  { name: 'deep_nesting', schema: obj({ a: obj({ b: obj({ c: obj({ d: obj({ e: { type: 'string', maxLength: 5 } }) }) }) }) }) },
  { name: 'annotated', schema: { $schema: 'https://json-schema.org/draft/2020-12/schema', title: 'T', description: 'D', type: 'object', properties: { x: { type: 'integer', description: 'an x', default: 3, examples: [1, 2] } }, required: ['x'], additionalProperties: false } },
];

/** Edge cases: each supported keyword alone and in small combinations. */
function edgeCases(): CorpusSchema[] {
  const out: CorpusSchema[] = [];
  const add = (name: string, schema: Record<string, unknown>) => out.push({ name, schema });
  const types = ['string', 'integer', 'number', 'boolean', 'null'];
  for (const t of types) {
    add(`type_${t}`, { type: t });
    add(`prop_${t}`, obj({ v: { type: t } }));
    add(`optional_${t}`, obj({ v: { type: t } }, []));
    add(`array_of_${t}`, { type: 'array', items: { type: t }, maxItems: 4 });
  }
  const lengths: [number, number][] = [[0, 0], [0, 1], [1, 1], [2, 5], [0, 3], [3, 3], [10, 12], [1, 40]];
  for (const [i, [a, b]] of lengths.entries()) {
    add(`strlen_${i}`, obj({ s: { type: 'string', minLength: a, maxLength: b } }));
    add(`items_${i}`, obj({ xs: { type: 'array', items: { type: 'integer', minimum: 0, maximum: 9 }, minItems: Math.min(a, 6), maxItems: Math.min(b, 6) } }));
  }
  add('strlen_min_only', obj({ s: { type: 'string', minLength: 4 } }));
  add('items_min_only', obj({ xs: { type: 'array', items: bool, minItems: 2 } }));
  const intRanges: [number | undefined, number | undefined][] = [[0, 0], [0, 9], [-9, 9], [1, 100], [99, 1001], [-1000, -999], [123, 4567], [undefined, 0], [0, undefined], [-5, undefined], [undefined, -5], [7, 7], [-1, 1], [1900, 2100], [0, 65535]];
  for (const [i, [lo, hi]] of intRanges.entries()) {
    const s: Record<string, unknown> = { type: 'integer' };
    if (lo !== undefined) s.minimum = lo;
    if (hi !== undefined) s.maximum = hi;
    add(`int_range_${i}`, obj({ n: s }));
  }
  const exclusive: Record<string, number>[] = [{ exclusiveMinimum: 0 }, { exclusiveMaximum: 0 }, { exclusiveMinimum: -1, exclusiveMaximum: 1 }, { exclusiveMinimum: 5, maximum: 6 }, { minimum: 0.5, exclusiveMaximum: 3.5 }];
  for (const [i, e] of exclusive.entries()) {
    add(`num_excl_${i}`, obj({ x: { type: 'number', ...e } }));
    add(`int_excl_${i}`, obj({ x: { type: 'integer', ...e } }));
  }
  const numRanges: [number, number][] = [[0, 1], [-1, 0], [-10.5, 10.5], [0.001, 0.002], [100, 100.5], [-3.7, -3.2], [1e6, 1e6 + 3]];
  for (const [i, [lo, hi]] of numRanges.entries()) add(`num_range_${i}`, obj({ x: { type: 'number', minimum: lo, maximum: hi } }));
  const patterns = ['^[a-z]+$', '^\\d{3}-\\d{4}$', '^(foo|bar|baz)$', '^[A-Z][a-z]*( [A-Z][a-z]*)*$', '^[^"\\\\]{0,8}$', '^\\w+@\\w+\\.com$', '^a*b+c?$', '^[0-9a-f]{2}(:[0-9a-f]{2}){5}$', '^.{1,5}$', '^\\s*x\\s*$', '^\\$[0-9]+(\\.[0-9]{2})?$', '^["\\\\/]+$', '^[α-ω]{1,3}$', '^(?:ab|cd){2}$', 'abc', '^\\u00e9+$', '^x{2,}$', '^[\\t\\n ]+$'];
  for (const [i, p] of patterns.entries()) add(`pattern_${i}`, obj({ s: { type: 'string', pattern: p } }));
  for (const f of ['date', 'date-time', 'time', 'email', 'uuid']) {
    add(`format_${f}`, obj({ v: { type: 'string', format: f } }));
    add(`format_${f}_array`, { type: 'array', items: { type: 'string', format: f }, minItems: 1, maxItems: 2 });
  }
  const enums: unknown[][] = [['a'], ['a', 'b', 'c'], [1, 2, 3], [true], [null, 0, 'x'], [1.5, -2.25], [{ k: 1 }, [1, 2]], ['quote"inside', 'back\\slash', 'new\nline'], ['', ' '], ['ab', 'abc', 'abcd']];
  for (const [i, e] of enums.entries()) add(`enum_${i}`, obj({ e: { enum: e } }));
  const consts: unknown[] = ['fixed', 42, -0.5, false, null, { a: [1, { b: 'c' }] }, [], 'ünïcödé'];
  for (const [i, c] of consts.entries()) add(`const_${i}`, obj({ c: { const: c } }));
  add('type_union', obj({ u: { type: ['string', 'integer', 'boolean', 'null', 'array', 'object'] } }));
  add('anyof_primitives', obj({ u: { anyOf: [str, int, { type: 'null' }] } }));
  add('anyof_overlapping', obj({ u: { anyOf: [{ type: 'string', maxLength: 3 }, { type: 'string', pattern: '^z+$' }] } }));
  add('oneof_types', obj({ u: { oneOf: [str, int, bool] } }));
  add('oneof_enums', obj({ u: { oneOf: [{ enum: ['a', 'b'] }, { enum: ['c'] }] } }));
  add('oneof_discriminated_refs', { $defs: { cat: obj({ pet: { const: 'cat' }, lives: { type: 'integer', minimum: 1, maximum: 9 } }), dog: obj({ pet: { const: 'dog' }, good: bool }) }, type: 'object', properties: { animal: { oneOf: [{ $ref: '#/$defs/cat' }, { $ref: '#/$defs/dog' }] } }, required: ['animal'], additionalProperties: false });
  add('prefix_items_only', { type: 'array', prefixItems: [str, int, bool] });
  add('prefix_items_closed', { type: 'array', prefixItems: [str, int], items: false });
  add('prefix_items_then_items', { type: 'array', prefixItems: [{ const: 'head' }], items: int, maxItems: 4 });
  add('prefix_items_min', { type: 'array', prefixItems: [int], minItems: 3, maxItems: 3 });
  add('prefix_items_max_cut', { type: 'array', prefixItems: [int, str, bool], maxItems: 2 });
  add('prefix_items_nested', { type: 'array', prefixItems: [{ type: 'array', prefixItems: [int, int], items: false }, str], items: false });
  add('empty_array_only', { type: 'array', maxItems: 0 });
  add('empty_object_only', { type: 'object', additionalProperties: false });
  add('map_of_arrays', { type: 'object', additionalProperties: { type: 'array', items: int, maxItems: 2 } });
  add('map_of_enums', { type: 'object', additionalProperties: { enum: ['on', 'off'] } });
  add('keyword_names', obj({ type: str, properties: int, $ref: bool, 'with space': str, 'quote"key': int, 'ключ': str }));
  add('many_optional', obj(Object.fromEntries('abcdefghij'.split('').map((k) => [k, int])), ['c', 'h']));
  add('all_optional_many', obj(Object.fromEntries('abcdef'.split('').map((k) => [k, bool])), []));
  add('defs_chain', { $defs: { a: { $ref: '#/$defs/b' }, b: { $ref: '#/$defs/c' }, c: { type: 'integer', minimum: 3, maximum: 4 } }, $ref: '#/$defs/a' });
  add('mutual_recursion', { $defs: { even: obj({ next: { anyOf: [{ $ref: '#/$defs/odd' }, { type: 'null' }] } }), odd: obj({ next: { $ref: '#/$defs/even' } }) }, $ref: '#/$defs/even' });
  add('recursive_json_like', { $defs: { v: { anyOf: [str, num, bool, { type: 'null' }, { type: 'array', items: { $ref: '#/$defs/v' }, maxItems: 3 }, { type: 'object', additionalProperties: { $ref: '#/$defs/v' } }] } }, $ref: '#/$defs/v' });
  add('untyped_string_keywords', obj({ s: { maxLength: 3 } }));
  add('untyped_number_keywords', obj({ n: { minimum: 5, maximum: 6 } }));
  add('untyped_object_keywords', obj({ o: { properties: { x: int }, required: ['x'], additionalProperties: false } }));
  add('untyped_mixed_keywords', obj({ m: { maxLength: 2, maximum: 3, maxItems: 1 } }));
  add('bool_schema_props', { type: 'object', properties: { any: true }, required: ['any'], additionalProperties: false });
  add('nested_arrays', { type: 'array', maxItems: 2, items: { type: 'array', maxItems: 2, items: { type: 'array', maxItems: 2, items: int } } });
  add('array_of_objects_required', { type: 'array', minItems: 2, maxItems: 2, items: obj({ id: int }) });
  add('string_with_typed_enum', obj({ s: { type: 'string', enum: ['x', 1, null, 'y'] } }));
  add('integer_float_bounds', obj({ n: { type: 'integer', minimum: 0.5, maximum: 3.5 } }));
  add('long_min_string', obj({ s: { type: 'string', minLength: 12, maxLength: 14 } }));
  add('datetime_and_enum', obj({ at: { type: 'string', format: 'date-time' }, tz: { enum: ['UTC', 'CET'] } }));
  return out;
}

export const SCHEMAS: CorpusSchema[] = [...realistic, ...edgeCases()];
