/**
 * Structured outputs and tool calls through the official `openai` SDK against
 * a real braid server with the default untrained model: the SDK's parse-style
 * flows (zodResponseFormat, zodFunction), streaming helpers that assemble
 * tool-call deltas, and a tool round trip. The model is noise; only the
 * constraints make these outputs valid.
 */
import OpenAI, { BadRequestError } from 'openai';
import { zodFunction, zodResponseFormat } from 'openai/helpers/zod';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import type { RunningServer } from '../../server/serve.ts';
import { startTestServer } from './harness.ts';

let server: RunningServer;
let client: OpenAI;
let model: string;

beforeAll(async () => {
  server = await startTestServer();
  client = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: 'unused', maxRetries: 0, timeout: 60_000 });
  model = server.engine.models()[0]!.info.id;
});

afterAll(async () => {
  await server?.close();
});

const Event = z.object({
  name: z.string().max(16),
  day: z.enum(['mon', 'tue', 'wed']),
  attendees: z.array(z.string().max(8)).max(3),
  priority: z.number().int().min(1).max(5),
});

const Weather = z.object({ city: z.string().max(12), unit: z.enum(['c', 'f']) });

describe('structured outputs with the openai SDK', () => {
  it('chat.completions.parse with zodResponseFormat returns a parsed, valid object', async () => {
    for (let seed = 0; seed < 5; seed++) {
      const res = await client.chat.completions.parse({
        model,
        messages: [{ role: 'user', content: 'Extract the event.' }],
        response_format: zodResponseFormat(Event, 'event'),
        max_tokens: 200,
        seed,
      });
      const parsed = res.choices[0]!.message.parsed;
      expect(parsed).not.toBeNull();
      expect(Event.safeParse(parsed).success).toBe(true);
    }
  });

  it('the streaming helper yields the same parsed object', async () => {
    const params = { model, messages: [{ role: 'user' as const, content: 'Extract.' }], response_format: zodResponseFormat(Event, 'event'), max_tokens: 200, seed: 11 };
    const stream = client.chat.completions.stream(params);
    const final = await stream.finalChatCompletion();
    const whole = await client.chat.completions.parse(params);
    expect(final.choices[0]!.message.parsed).toEqual(whole.choices[0]!.message.parsed);
    expect(Event.safeParse(final.choices[0]!.message.parsed).success).toBe(true);
  });

  it('json_object mode cut short by max_tokens still parses', async () => {
    const res = await client.chat.completions.create({ model, messages: [{ role: 'user', content: 'JSON please' }], response_format: { type: 'json_object' }, max_tokens: 6, seed: 3 });
    expect(res.choices[0]!.finish_reason).toBe('length');
    expect(typeof JSON.parse(res.choices[0]!.message.content!)).toBe('object');
  });

  it('an unsupported schema keyword is a BadRequestError naming it', async () => {
    const err = await client.chat.completions
      .create({ model, messages: [{ role: 'user', content: 'x' }], response_format: { type: 'json_schema', json_schema: { name: 'x', schema: { type: 'array', uniqueItems: true } } } })
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(BadRequestError);
    expect((err as BadRequestError).message).toContain('uniqueItems');
  });
});

describe('grammar extensions over raw HTTP (real model)', () => {
  const post = async (path: string, body: Record<string, unknown>) => {
    const res = await fetch(`${server.url}${path}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ model, ...body }) });
    return { status: res.status, body: (await res.json()) as Record<string, unknown> };
  };

  it('a GBNF grammar holds at temperature 1', async () => {
    for (let seed = 0; seed < 10; seed++) {
      const { body } = await post('/v1/completions', { prompt: 'Answer:', grammar: 'root ::= ("yes" | "no") ", " [0-9]{1,3} "%"', max_tokens: 20, temperature: 1, seed });
      expect((body.choices as { text: string }[])[0]!.text).toMatch(/^(yes|no), [0-9]{1,3}%$/);
    }
  });

  it('grammar_mode python: brackets and strings closed even when cut by max_tokens', async () => {
    for (let seed = 0; seed < 10; seed++) {
      const { body } = await post('/v1/chat/completions', { messages: [{ role: 'user', content: 'code' }], grammar_mode: 'python', max_tokens: 4 + seed * 3, seed });
      const text = (body.choices as { message: { content: string } }[])[0]!.message.content;
      // Strip comments and string literals, then the brackets must balance.
      const code = text.replace(/#[^\n]*|"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'/g, '');
      expect(code).not.toMatch(/["']/);
      const stack: string[] = [];
      for (const c of code) {
        if ('([{'.includes(c)) stack.push(c);
        else if (')]}'.includes(c)) expect(stack.pop()).toBe('([{'[')]}'.indexOf(c)]);
      }
      expect(stack).toEqual([]);
    }
  });
});

describe('tool calls with the openai SDK', () => {
  const tools = [zodFunction({ name: 'get_weather', parameters: Weather }), zodFunction({ name: 'get_time', parameters: z.object({ tz: z.enum(['UTC', 'CET']) }) })];

  it('parse with zodFunction tools: parsed_arguments valid for the function', async () => {
    const res = await client.chat.completions.parse({ model, messages: [{ role: 'user', content: 'Weather in Oslo?' }], tools, tool_choice: 'required', max_tokens: 300, seed: 5 });
    const choice = res.choices[0]!;
    expect(choice.finish_reason).toBe('tool_calls');
    const calls = choice.message.tool_calls ?? [];
    expect(calls.length).toBeGreaterThanOrEqual(1);
    for (const call of calls) {
      expect(['get_weather', 'get_time']).toContain(call.function.name);
      expect(call.function.parsed_arguments).not.toBeNull();
    }
  });

  it('streamed tool calls are assembled by the SDK into the same calls', async () => {
    const params = {
      model,
      messages: [{ role: 'user' as const, content: 'Weather?' }],
      tools,
      tool_choice: { type: 'function' as const, function: { name: 'get_weather' } },
      parallel_tool_calls: false,
      max_tokens: 200,
      seed: 9,
    };
    const final = await client.chat.completions.stream(params).finalChatCompletion();
    const whole = await client.chat.completions.parse(params);
    const streamed = final.choices[0]!.message.tool_calls ?? [];
    expect(streamed).toHaveLength(1);
    expect(streamed[0]!.function.name).toBe('get_weather');
    expect(Weather.safeParse(JSON.parse(streamed[0]!.function.arguments)).success).toBe(true);
    expect(streamed[0]!.function.arguments).toBe(whole.choices[0]!.message.tool_calls?.[0]?.function.arguments);
  });

  it('a tool round trip: call, tool result, final text answer', async () => {
    const first = await client.chat.completions.create({ model, messages: [{ role: 'user', content: 'Weather in Rome?' }], tools, tool_choice: 'required', parallel_tool_calls: false, max_tokens: 200, seed: 2 });
    const call = first.choices[0]!.message.tool_calls![0]!;
    expect(call.type).toBe('function');
    const second = await client.chat.completions.create({
      model,
      messages: [
        { role: 'user', content: 'Weather in Rome?' },
        first.choices[0]!.message,
        { role: 'tool', tool_call_id: call.id, content: '{"temp_c": 21}' },
      ],
      tools,
      tool_choice: 'none',
      max_tokens: 8,
    });
    expect(typeof second.choices[0]!.message.content).toBe('string');
    expect(second.choices[0]!.message.tool_calls ?? []).toHaveLength(0);
  });
});
