/**
 * Structured outputs over HTTP (server layer, FakeEngine — whose "model"
 * writes its script but lets the real grammar engine and debt ledger decide):
 * response_format / grammar_mode / grammar / tools reach the engine as a
 * grammar, schemas we cannot enforce are 400s naming the keyword, and tool
 * calls come back in the OpenAI shape, streamed and not.
 */
import { describe, expect, it } from 'vitest';
import { errorOf, setup, sseChunks } from './server-test-helpers.ts';

const MODEL = 'fake-model';
const chat = (extra: Record<string, unknown>) => ({ model: MODEL, messages: [{ role: 'user', content: 'hi' }], ...extra });
const schemaFormat = (schema: unknown) => ({ type: 'json_schema', json_schema: { name: 'out', schema, strict: true } });

describe('response_format', () => {
  it('json_schema: the answer validates even though the model wants to write something else', async () => {
    const { post, engine } = setup({ script: () => 'the model would rather chat' });
    const schema = { type: 'object', properties: { n: { type: 'integer', minimum: 3, maximum: 7 }, s: { type: 'string', maxLength: 4 } }, required: ['n', 's'], additionalProperties: false };
    const res = await post('/v1/chat/completions', chat({ response_format: schemaFormat(schema), max_tokens: 64 }));
    expect(res.status).toBe(200);
    const body = await res.json();
    const value = JSON.parse(body.choices[0].message.content);
    expect(Object.keys(value)).toEqual(['n', 's']);
    expect(value.n).toBeGreaterThanOrEqual(3);
    expect(value.n).toBeLessThanOrEqual(7);
    expect(engine.requests[0]!.grammar).toBeDefined();
  });

  it('json_object cut by max_tokens is still a complete object, with finish_reason length', async () => {
    const { post } = setup({ script: () => '{"key": "a long value that does not fit"}' });
    const res = await post('/v1/chat/completions', chat({ response_format: { type: 'json_object' }, max_tokens: 12 }));
    const body = await res.json();
    expect(body.choices[0].finish_reason).toBe('length');
    expect(body.usage.completion_tokens).toBe(12);
    const text: string = body.choices[0].message.content;
    expect(typeof JSON.parse(text)).toBe('object');
    expect(text.startsWith('{"key": "a')).toBe(true);
  });

  it.each([
    ['a json_schema', { response_format: schemaFormat({ type: 'object', properties: { name: { type: 'string' } }, required: ['name'] }) }],
    ['a required tool call', { tools: [{ type: 'function', function: { name: 'get_weather', parameters: { type: 'object' } } }], tool_choice: 'required' }],
  ])('max_tokens below the shortest valid output of %s is a 400 with code max_tokens_too_small', async (_, extra) => {
    const { post } = setup({ script: () => 'x' });
    for (const stream of [false, true]) {
      const res = await post('/v1/chat/completions', chat({ ...extra, max_tokens: 2, stream }));
      expect(res.status).toBe(400);
      const { error } = await errorOf(res);
      expect(error).toMatchObject({ type: 'invalid_request_error', param: 'max_tokens', code: 'max_tokens_too_small' });
      expect(error.message).toMatch(/^max_tokens 2 is too small for the requested format: its shortest valid output takes \d+ tokens$/);
    }
  });

  it('the too-small-budget error names max_completion_tokens when that is what the client sent', async () => {
    const { post } = setup({ script: () => 'x' });
    const res = await post('/v1/chat/completions', chat({ response_format: { type: 'json_object' }, max_completion_tokens: 1 }));
    expect(res.status).toBe(400);
    const { error } = await errorOf(res);
    expect(error).toMatchObject({ param: 'max_completion_tokens', code: 'max_tokens_too_small' });
    expect(error.message).toMatch(/^max_completion_tokens 1 is too small/);
  });

  it('the debt ledger telemetry reaches /metrics (opened, closed, forced)', async () => {
    const { post, get } = setup({ script: () => '{"key": "a long value that does not fit"}' });
    const metric = async (event: string): Promise<number> => {
      const text = await (await get('/metrics')).text();
      const m = new RegExp(`^braid_ledger_obligations_total\\{event="${event}"\\} (\\d+)$`, 'm').exec(text);
      expect(m, `metric for ${event}`).not.toBeNull();
      return Number(m![1]);
    };
    expect(await metric('opened')).toBe(0);
    // Cut by max_tokens inside the string: the object and the string are opened,
    // and both are closed under budget pressure.
    await post('/v1/chat/completions', chat({ response_format: { type: 'json_object' }, max_tokens: 12 }));
    const opened = await metric('opened');
    expect(opened).toBeGreaterThanOrEqual(2);
    expect(await metric('closed')).toBe(opened);
    expect(await metric('forced')).toBeGreaterThanOrEqual(1);
  });

  it('text leaves the output unconstrained', async () => {
    const { post, engine } = setup({ script: () => 'plain' });
    const body = await (await post('/v1/chat/completions', chat({ response_format: { type: 'text' } }))).json();
    expect(body.choices[0].message.content).toBe('plain');
    expect(engine.requests[0]!.grammar).toBeUndefined();
  });

  it.each([
    ['uniqueItems', { type: 'array', items: { type: 'string' }, uniqueItems: true }],
    ['allOf', { allOf: [{ type: 'string' }, { maxLength: 3 }] }],
    ['multipleOf', { type: 'object', properties: { n: { type: 'integer', multipleOf: 5 } } }],
    ['minProperties', { type: 'object', minProperties: 1 }],
    ['not', { not: { type: 'null' } }],
    ['if', { if: { type: 'string' }, then: { maxLength: 2 } }],
    ['patternProperties', { type: 'object', patternProperties: { '^x': { type: 'string' } } }],
    ['format', { type: 'string', format: 'hostname' }],
    ['oneOf', { oneOf: [{ type: 'string' }, { type: 'string', maxLength: 3 }] }],
  ])('an unsupported keyword (%s) is a 400 that names it', async (keyword, schema) => {
    const { post, engine } = setup();
    const res = await post('/v1/chat/completions', chat({ response_format: schemaFormat(schema) }));
    expect(res.status).toBe(400);
    const err = await errorOf(res);
    expect(err.error.code).toBe('unsupported_schema_keyword');
    expect(err.error.param).toBe('response_format');
    expect(err.error.message).toContain(`'${keyword}'`);
    expect(engine.requests).toHaveLength(0);
  });

  it.each([
    ['an unknown type', { type: 'strng' }],
    ['required that is not an array', { type: 'object', required: 'a' }],
    ['minLength above maxLength', { type: 'string', minLength: 5, maxLength: 2 }],
    ['a pattern that does not compile', { type: 'string', pattern: '([a-z]' }],
    ['an unresolvable $ref', { $ref: '#/$defs/missing' }],
    ['an empty integer range', { type: 'integer', minimum: 5, maximum: 4 }],
    ['an empty enum', { enum: [] }],
  ])('an invalid schema (%s) is a 400', async (_what, schema) => {
    const { post } = setup();
    const res = await post('/v1/chat/completions', chat({ response_format: schemaFormat(schema) }));
    expect(res.status).toBe(400);
    const err = await errorOf(res);
    expect(err.error.code).toBe('invalid_schema');
    expect(err.error.param).toBe('response_format');
  });

  it('a schema with no finite instance is a 400', async () => {
    const { post } = setup();
    const schema = { type: 'object', properties: { self: { $ref: '#' } }, required: ['self'], additionalProperties: false };
    const res = await post('/v1/chat/completions', chat({ response_format: schemaFormat(schema) }));
    expect(res.status).toBe(400);
    expect((await errorOf(res)).error.message).toMatch(/no finite output/);
  });

  it('max_tokens below the shortest valid output is a 400', async () => {
    const { post } = setup();
    const schema = { type: 'object', properties: { a_rather_long_property_name: { type: 'string', minLength: 10 } }, required: ['a_rather_long_property_name'] };
    const res = await post('/v1/chat/completions', chat({ response_format: schemaFormat(schema), max_tokens: 5 }));
    expect(res.status).toBe(400);
    expect((await errorOf(res)).error.param).toBe('max_tokens');
  });

  it('only one of response_format, grammar_mode and grammar', async () => {
    const { post } = setup();
    const res = await post('/v1/chat/completions', chat({ response_format: { type: 'json_object' }, grammar: 'root ::= "a"' }));
    expect(res.status).toBe(400);
    expect((await errorOf(res)).error.param).toBe('grammar');
  });

  it('completions accept response_format too', async () => {
    const { post } = setup({ script: () => 'nope' });
    const res = await post('/v1/completions', { model: MODEL, prompt: 'x', max_tokens: 20, response_format: schemaFormat({ enum: ['red', 'green'] }) });
    const body = await res.json();
    expect(['"red"', '"green"']).toContain(body.choices[0].text);
  });
});

describe('grammar_mode and grammar', () => {
  it('a GBNF grammar constrains the answer', async () => {
    const { post } = setup({ script: () => 'maybe' });
    const grammar = 'root ::= answer "."\nanswer ::= "yes" | "no" | "maybe later"\n';
    const body = await (await post('/v1/chat/completions', chat({ grammar }))).json();
    expect(body.choices[0].message.content).toBe('maybe later.');
  });

  it.each([
    ['a syntax error', 'root ::= "unterminated'],
    ['an undefined rule', 'root ::= other'],
    ['left recursion', 'root ::= root "a" | "b"'],
    ['no root rule', 'start ::= "a"'],
  ])('an invalid grammar (%s) is a 400', async (_what, grammar) => {
    const { post } = setup();
    const res = await post('/v1/chat/completions', chat({ grammar }));
    expect(res.status).toBe(400);
    const err = await errorOf(res);
    expect(err.error.param).toBe('grammar');
    expect(err.error.code).toBe('invalid_grammar');
  });

  it('python mode closes the brackets and strings the budget cuts off', async () => {
    const { post } = setup({ script: () => 'print(f("abc[' });
    const body = await (await post('/v1/chat/completions', chat({ grammar_mode: 'python', max_tokens: 16 }))).json();
    expect(body.choices[0].message.content).toMatch(/^print\(f\("abc\[.*"\)\)$/);
  });

  it('plain_text mode refuses a closing bracket without its opener', async () => {
    const { post } = setup({ script: () => 'a) b' });
    const body = await (await post('/v1/chat/completions', chat({ grammar_mode: 'plain_text', max_tokens: 8 }))).json();
    expect(body.choices[0].message.content).not.toContain(')');
  });

  it('an unknown mode is a 400', async () => {
    const { post } = setup();
    const res = await post('/v1/chat/completions', chat({ grammar_mode: 'cobol' }));
    expect(res.status).toBe(400);
  });
});

const weather = {
  type: 'function',
  function: {
    name: 'get_weather',
    description: 'Current weather',
    parameters: { type: 'object', properties: { city: { type: 'string', maxLength: 12 }, unit: { enum: ['c', 'f'] } }, required: ['city', 'unit'], additionalProperties: false },
  },
};
const time = { type: 'function', function: { name: 'get_time', parameters: { type: 'object', properties: {}, additionalProperties: false } } };

describe('tool calls', () => {
  it('tool_choice required: a call in the OpenAI shape, arguments valid for the schema', async () => {
    const { post } = setup({ script: () => '<tool_call>{"name": "get_weather", "arguments": {"city": "Paris", "unit": "c"}}</tool_call>' });
    const body = await (await post('/v1/chat/completions', chat({ tools: [weather, time], tool_choice: 'required', max_tokens: 120 }))).json();
    const choice = body.choices[0];
    expect(choice.finish_reason).toBe('tool_calls');
    expect(choice.message.content).toBeNull();
    expect(choice.message.tool_calls).toHaveLength(1);
    const call = choice.message.tool_calls[0];
    expect(call).toMatchObject({ type: 'function', function: { name: 'get_weather' } });
    expect(call.id).toMatch(/^call_/);
    expect(JSON.parse(call.function.arguments)).toEqual({ city: 'Paris', unit: 'c' });
  });

  it('a named tool_choice forces that function even when the model wants another', async () => {
    const { post } = setup({ script: () => '<tool_call>{"name": "get_weather", "arguments": {}}</tool_call>' });
    const body = await (await post('/v1/chat/completions', chat({ tools: [weather, time], tool_choice: { type: 'function', function: { name: 'get_time' } }, max_tokens: 80 }))).json();
    expect(body.choices[0].message.tool_calls.map((c: { function: { name: string } }) => c.function.name)).toEqual(['get_time']);
  });

  it('auto lets the model answer in text', async () => {
    const { post } = setup({ script: () => 'No tool needed.' });
    const body = await (await post('/v1/chat/completions', chat({ tools: [weather], tool_choice: 'auto' }))).json();
    expect(body.choices[0]).toMatchObject({ message: { content: 'No tool needed.' }, finish_reason: 'stop' });
    expect(body.choices[0].message.tool_calls).toBeUndefined();
  });

  it('parallel calls, and parallel_tool_calls false allows only one', async () => {
    const two = '<tool_call>{"name": "get_time", "arguments": {}}</tool_call>\n<tool_call>{"name": "get_time", "arguments": {}}</tool_call>';
    const { post } = setup({ script: () => two });
    const par = await (await post('/v1/chat/completions', chat({ tools: [time], tool_choice: 'required', max_tokens: 200 }))).json();
    expect(par.choices[0].message.tool_calls).toHaveLength(2);
    const one = await (await post('/v1/chat/completions', chat({ tools: [time], tool_choice: 'required', parallel_tool_calls: false, max_tokens: 100 }))).json();
    expect(one.choices[0].message.tool_calls).toHaveLength(1);
  });

  it('streams tool calls as deltas: id, type and name first, then arguments', async () => {
    const { post } = setup({ script: () => '<tool_call>{"name": "get_weather", "arguments": {"city": "Oslo", "unit": "f"}}</tool_call>' });
    const res = await post('/v1/chat/completions', chat({ tools: [weather], tool_choice: 'required', stream: true, max_tokens: 120 }));
    const chunks = await sseChunks(res);
    type Delta = { content?: string; tool_calls?: { index: number; id?: string; type?: string; function: { name?: string; arguments: string } }[] };
    const deltas = chunks.map((c) => (c.choices as { delta: Delta; finish_reason: string | null }[])[0]!);
    const calls = deltas.flatMap((d) => d.delta.tool_calls ?? []);
    expect(calls[0]).toMatchObject({ index: 0, type: 'function', function: { name: 'get_weather', arguments: '' } });
    expect(calls[0]!.id).toMatch(/^call_/);
    expect(JSON.parse(calls.map((c) => c.function.arguments).join(''))).toEqual({ city: 'Oslo', unit: 'f' });
    // Arguments arrive piece by piece as they are generated, not in one block at the end.
    expect(calls.filter((c) => c.function.arguments !== '').length).toBeGreaterThan(5);
    expect(deltas.map((d) => d.delta.content ?? '').join('')).toBe('');
    expect(deltas.at(-1)!.finish_reason).toBe('tool_calls');
  });

  it('streams parallel calls with their own indexes; auto streams text as content', async () => {
    const two = '<tool_call>{"name": "get_time", "arguments": {}}</tool_call>\n<tool_call>{"name": "get_weather", "arguments": {"city": "A\\"}", "unit": "c"}}</tool_call>';
    const { post } = setup({ script: () => two });
    const chunks = await sseChunks(await post('/v1/chat/completions', chat({ tools: [weather, time], stream: true, max_tokens: 200 })));
    type Call = { index: number; id?: string; function: { name?: string; arguments: string } };
    const deltas = chunks.flatMap((c) => (c.choices as { delta: { tool_calls?: Call[] } }[])[0]!.delta.tool_calls ?? []);
    const byIndex = (k: number) => deltas.filter((d) => d.index === k);
    expect(byIndex(0)[0]!.function.name).toBe('get_time');
    expect(byIndex(1)[0]!.function.name).toBe('get_weather');
    expect(byIndex(0).map((d) => d.function.arguments).join('')).toBe('{}');
    expect(JSON.parse(byIndex(1).map((d) => d.function.arguments).join(''))).toEqual({ city: 'A"}', unit: 'c' });
    const text = setup({ script: () => '<tool the answer' });
    const tchunks = await sseChunks(await text.post('/v1/chat/completions', chat({ tools: [weather], stream: true })));
    const content = tchunks.map((c) => (c.choices as { delta: { content?: string } }[])[0]!.delta.content ?? '').join('');
    expect(content).toBe('<tool the answer');
  });

  it('tool messages and earlier calls are rendered into the prompt', async () => {
    const { post, engine } = setup({ script: () => 'It is sunny.' });
    const messages = [
      { role: 'user', content: 'Weather in Rome?' },
      { role: 'assistant', content: null, tool_calls: [{ id: 'call_1', type: 'function', function: { name: 'get_weather', arguments: '{"city":"Rome","unit":"c"}' } }] },
      { role: 'tool', tool_call_id: 'call_1', content: '{"temp": 21}' },
    ];
    const body = await (await post('/v1/chat/completions', { model: MODEL, messages, tools: [weather] })).json();
    expect(body.choices[0].message.content).toBe('It is sunny.');
    const prompt = engine.tokenizer.decode(engine.requests[0]!.promptTokens);
    expect(prompt).toContain('<tools>');
    expect(prompt).toContain('<tool_call>{"name": "get_weather", "arguments": {"city":"Rome","unit":"c"}}</tool_call>');
    expect(prompt).toContain('<|im_start|>tool\n{"temp": 21}<|im_end|>');
  });

  describe('tools beside a response_format (as agent frameworks send them)', () => {
    const format = schemaFormat({ type: 'object', properties: { answer: { type: 'string', maxLength: 8 } }, required: ['answer'], additionalProperties: false });

    it('auto: a call is still a call', async () => {
      const { post } = setup({ script: () => '<tool_call>{"name": "get_time", "arguments": {}}</tool_call>' });
      const body = await (await post('/v1/chat/completions', chat({ tools: [time], response_format: format, max_tokens: 80 }))).json();
      expect(body.choices[0].finish_reason).toBe('tool_calls');
      expect(body.choices[0].message.tool_calls.map((c: { function: { name: string } }) => c.function.name)).toEqual(['get_time']);
    });

    it('auto: a text answer is held to the format, streamed and not', async () => {
      for (const stream of [false, true]) {
        const { post } = setup({ script: () => 'the model would rather chat' });
        const res = await post('/v1/chat/completions', chat({ tools: [time], response_format: format, max_tokens: 64, stream }));
        expect(res.status).toBe(200);
        const content = stream
          ? (await sseChunks(res)).map((c) => (c.choices as { delta: { content?: string } }[])[0]?.delta.content ?? '').join('')
          : (await res.json()).choices[0].message.content;
        const value = JSON.parse(content);
        expect(Object.keys(value)).toEqual(['answer']);
        expect(value.answer.length).toBeLessThanOrEqual(8);
      }
    });

    it('required: calls only (the format has no text to shape)', async () => {
      const { post } = setup({ script: () => '{"answer": "x"}' });
      const body = await (await post('/v1/chat/completions', chat({ tools: [time], tool_choice: 'required', response_format: format, max_tokens: 80 }))).json();
      expect(body.choices[0].finish_reason).toBe('tool_calls');
      expect(body.choices[0].message.tool_calls).toHaveLength(1);
    });

    it('the grammar extensions stay exclusive with tools: a 400 naming them', async () => {
      const { post } = setup();
      for (const extra of [{ grammar: 'root ::= "a"' }, { grammar_mode: 'python' }]) {
        const res = await post('/v1/chat/completions', chat({ tools: [time], ...extra }));
        expect(res.status).toBe(400);
        const { error } = await errorOf(res);
        expect(error).toMatchObject({ param: 'tools', code: 'unsupported_parameter' });
        expect(error.message).toContain(Object.keys(extra)[0]);
      }
    });
  });

  it('tool_choice none leaves the output free and the tools out of the prompt', async () => {
    const { post, engine } = setup({ script: () => 'text' });
    await post('/v1/chat/completions', chat({ tools: [weather], tool_choice: 'none' }));
    expect(engine.requests[0]!.grammar).toBeUndefined();
    expect(engine.tokenizer.decode(engine.requests[0]!.promptTokens)).not.toContain('<tools>');
  });

  it('400s: unknown named tool, unsupported parameter keyword, duplicate names', async () => {
    const { post } = setup();
    const unknown = await post('/v1/chat/completions', chat({ tools: [weather], tool_choice: { type: 'function', function: { name: 'nope' } } }));
    expect((await errorOf(unknown)).error.param).toBe('tool_choice');
    const bad = { type: 'function', function: { name: 'f', parameters: { type: 'object', properties: { x: { type: 'number', multipleOf: 2 } } } } };
    const res = await post('/v1/chat/completions', chat({ tools: [weather, bad] }));
    const err = await errorOf(res);
    expect(err.error.param).toBe('tools[1].function.parameters');
    expect(err.error.message).toContain("'multipleOf'");
    const dup = await post('/v1/chat/completions', chat({ tools: [weather, weather] }));
    expect(dup.status).toBe(400);
  });
});
