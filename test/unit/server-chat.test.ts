import { describe, expect, it } from 'vitest';
import { Prng } from '../../engine/sampler/prng.ts';
import { errorOf, setup, sseChunks, sseData, until } from './server-test-helpers.ts';

const MODEL = 'fake-model';
const user = (content: unknown) => ({ model: MODEL, messages: [{ role: 'user', content }] });

describe('POST /v1/chat/completions (non-stream)', () => {
  it('returns the OpenAI chat.completion shape', async () => {
    const { post } = setup({ script: () => 'Hello there' });
    const res = await post('/v1/chat/completions', user('Hi'));
    expect(res.status).toBe(200);
    const body = await res.json();
    expect(body).toMatchObject({
      object: 'chat.completion',
      model: MODEL,
      choices: [{ index: 0, message: { role: 'assistant', content: 'Hello there' }, logprobs: null, finish_reason: 'stop' }],
    });
    expect(body.id).toMatch(/^chatcmpl-/);
    expect(body.system_fingerprint).toMatch(/^fp_[0-9a-f]{10}$/);
    expect(Number.isInteger(body.created)).toBe(true);
    // ChatML: <s> <|im_start|> "user\nHi" <|im_end|> "\n" <|im_start|> "assistant\n" = 1+1+7+1+1+1+10 tokens.
    expect(body.usage.prompt_tokens).toBe(22);
    expect(body.usage.completion_tokens).toBe('Hello there'.length);
    expect(body.usage.total_tokens).toBe(body.usage.prompt_tokens + body.usage.completion_tokens);
  });

  it('counts the prompt as /v1/tokenize does for the same messages', async () => {
    const { post } = setup({ script: () => 'ok' });
    const messages = [
      { role: 'system', content: 'Be brief.' },
      { role: 'user', content: [{ type: 'text', text: 'part one' }, { type: 'text', text: 'part two' }] },
    ];
    const chat = await (await post('/v1/chat/completions', { model: MODEL, messages })).json();
    const tok = await (await post('/v1/tokenize', { model: MODEL, messages })).json();
    expect(chat.usage.prompt_tokens).toBe(tok.count);
  });

  it('joins array-of-text-parts content and passes it through the template', async () => {
    const { post, engine } = setup({ script: () => 'x' });
    await post('/v1/chat/completions', user([{ type: 'text', text: 'a' }, { type: 'text', text: 'b' }]));
    const prompt = engine.tokenizer.decode(engine.requests[0]!.promptTokens);
    expect(prompt).toContain('<|im_start|>user\na\nb<|im_end|>');
    expect(prompt.endsWith('<|im_start|>assistant\n')).toBe(true);
  });

  it('rejects non-text content parts with the offending param', async () => {
    const { post } = setup();
    const res = await post('/v1/chat/completions', user([{ type: 'image_url', image_url: { url: 'x' } }]));
    expect(res.status).toBe(400);
    const { error } = await errorOf(res);
    expect(error.param).toBe('messages[0].content[0].type');
    expect(error.message).toMatch(/only 'text' content parts/);
    expect(error.type).toBe('invalid_request_error');
  });

  it('maps sampling fields and extensions onto the engine request', async () => {
    const { post, engine } = setup({ script: () => 'x' });
    const res = await post('/v1/chat/completions', {
      ...user('hi'),
      temperature: 0.7,
      top_p: 0.9,
      top_k: 40,
      min_p: 0.05,
      repetition_penalty: 1.1,
      presence_penalty: 0.5,
      frequency_penalty: -0.5,
      logit_bias: { '65': 5, '66': -100 },
      seed: 42,
      max_tokens: 7,
      stop: 'END',
    });
    expect(res.status).toBe(200);
    const req = engine.requests[0]!;
    expect(req.sampling).toMatchObject({
      temperature: 0.7,
      topP: 0.9,
      topK: 40,
      minP: 0.05,
      repetitionPenalty: 1.1,
      presencePenalty: 0.5,
      frequencyPenalty: -0.5,
      seed: 42,
    });
    expect([...req.sampling.logitBias]).toEqual([
      [65, 5],
      [66, -100],
    ]);
    expect(req.maxTokens).toBe(7);
    expect(req.stop).toEqual(['END']);
    expect(req.topLogprobs).toBeNull();
  });

  it('uses neutral sampling defaults', async () => {
    const { post, engine } = setup({ script: () => 'x' });
    await post('/v1/chat/completions', user('hi'));
    expect(engine.requests[0]!.sampling).toMatchObject({
      temperature: 1,
      topP: 1,
      topK: 0,
      minP: 0,
      repetitionPenalty: 1,
      presencePenalty: 0,
      frequencyPenalty: 0,
      seed: undefined,
    });
  });

  it('prefers max_completion_tokens over max_tokens and stops with finish_reason length', async () => {
    const { post, engine } = setup();
    const body = await (await post('/v1/chat/completions', { ...user('hi'), max_tokens: 50, max_completion_tokens: 5 })).json();
    expect(engine.requests[0]!.maxTokens).toBe(5);
    expect(body.choices[0].finish_reason).toBe('length');
    expect(body.usage.completion_tokens).toBe(5);
  });

  it('runs n choices with seed + index and counts the prompt once', async () => {
    const { post, engine } = setup();
    const body = await (await post('/v1/chat/completions', { ...user('hi'), n: 3, seed: 10, max_tokens: 12 })).json();
    expect(body.choices.map((c: { index: number }) => c.index)).toEqual([0, 1, 2]);
    expect(engine.requests.map((r) => r.sampling.seed)).toEqual([10, 11, 12]);
    expect(new Set(body.choices.map((c: { message: { content: string } }) => c.message.content)).size).toBeGreaterThan(1);
    expect(body.usage.prompt_tokens).toBe(engine.requests[0]!.promptTokens.length);
    expect(body.usage.completion_tokens).toBe(36);
  });

  it('takes any int64 seed with n > 1: per-choice seeds stay distinct and valid for the sampler, stream and not', async () => {
    const { post, engine } = setup({ script: (req) => `seed${req.sampling.seed}` });
    const max = Number.MAX_SAFE_INTEGER;
    const plain = await post('/v1/chat/completions', { ...user('hi'), n: 2, seed: max });
    expect(plain.status).toBe(200);
    const streamed = await sseChunks(await post('/v1/chat/completions', { ...user('hi'), n: 2, seed: max, stream: true }));
    expect(streamed.at(-1)!['choices']).toMatchObject([{ index: 1, finish_reason: 'stop' }]);
    // 2^63 - 1 arrives as a double past 2^53: still accepted (OpenAI takes int64).
    const int64 = await post('/v1/chat/completions', `{"model": "${MODEL}", "messages": [{"role": "user", "content": "hi"}], "n": 2, "seed": 9223372036854775807}`);
    expect(int64.status).toBe(200);
    const seeds = engine.requests.map((r) => r.sampling.seed!);
    expect(seeds.slice(0, 4)).toEqual([max, 0, max, 0]); // seed + 1 wraps modulo 2^53
    expect(seeds[4]).not.toBe(seeds[5]);
    for (const seed of seeds) expect(() => new Prng(seed)).not.toThrow(); // the real sampler's check
  });

  it.each([1.5, '7', 2 ** 64])('rejects seed %j with a 400 naming seed', async (seed) => {
    const { post } = setup();
    const res = await post('/v1/chat/completions', { ...user('hi'), seed });
    expect(res.status).toBe(400);
    expect((await errorOf(res)).error).toMatchObject({ param: 'seed', code: 'invalid_value' });
  });

  it('is reproducible for a fixed seed', async () => {
    const { post } = setup();
    const a = await (await post('/v1/chat/completions', { ...user('hi'), seed: 7, max_tokens: 20 })).json();
    const b = await (await post('/v1/chat/completions', { ...user('hi'), seed: 7, max_tokens: 20 })).json();
    expect(a.choices[0].message.content).toBe(b.choices[0].message.content);
  });

  it('cuts at a stop sequence (string or array) and excludes it', async () => {
    const { post } = setup({ script: () => 'one two. three' });
    const a = await (await post('/v1/chat/completions', { ...user('hi'), stop: '.' })).json();
    expect(a.choices[0]).toMatchObject({ message: { content: 'one two' }, finish_reason: 'stop' });
    const b = await (await post('/v1/chat/completions', { ...user('hi'), stop: ['zzz', 'two'] })).json();
    expect(b.choices[0].message.content).toBe('one ');
  });

  it('returns chat logprobs with top_logprobs alternatives', async () => {
    const { post } = setup({ script: () => 'abc' });
    const body = await (await post('/v1/chat/completions', { ...user('hi'), logprobs: true, top_logprobs: 2 })).json();
    const content = body.choices[0].logprobs.content;
    expect(content.map((t: { token: string }) => t.token).join('')).toBe('abc');
    for (const t of content) {
      expect(t.logprob).toBeLessThanOrEqual(0);
      expect(t.bytes).toEqual([...Buffer.from(t.token)]);
      expect(t.top_logprobs).toHaveLength(2);
      expect(Object.keys(t.top_logprobs[0]).sort()).toEqual(['bytes', 'logprob', 'token']);
    }
    expect(body.choices[0].logprobs.refusal).toBeNull();
  });

  it('ignores unknown fields as OpenAI does', async () => {
    const { post } = setup({ script: () => 'x' });
    const res = await post('/v1/chat/completions', { ...user('hi'), some_future_field: { a: 1 }, user: 'u-1' });
    expect(res.status).toBe(200);
  });

  it.each([
    [{ n: 0 }, 'n', /at least 1/],
    [{ n: 9 }, 'n', /at most 8/],
    [{ n: 1.5 }, 'n', /integer/],
    [{ temperature: 3 }, 'temperature', /at most 2/],
    [{ top_p: -0.1 }, 'top_p', /at least 0/],
    [{ stop: ['a', 'b', 'c', 'd', 'e'] }, 'stop', /at most 4 items/],
    [{ stop: 5 }, 'stop', /string or an array/],
    [{ top_logprobs: 21, logprobs: true }, 'top_logprobs', /at most 20/],
    [{ top_logprobs: 3 }, 'top_logprobs', /requires 'logprobs'/],
    [{ logit_bias: { abc: 1 } }, 'logit_bias.abc', /token ids/],
    [{ logit_bias: { '5': 101 } }, 'logit_bias.5', /at most 100/],
    [{ logit_bias: { '999999': 1 } }, 'logit_bias', /outside the vocabulary/],
    [{ presence_penalty: 2.5 }, 'presence_penalty', /at most 2/],
    [{ max_tokens: 0 }, 'max_tokens', /at least 1/],
    [{ max_tokens: 10_000 }, 'max_tokens', /maximum context length/],
    [{ messages: [{ role: 'user', content: 'long '.repeat(600) }] }, 'messages', /maximum context length/], // the prompt alone
    [{ stream: 'yes' }, 'stream', /expected boolean/],
    [{ stream_options: { include_usage: true } }, 'stream_options', /only allowed when 'stream'/],
    [{ messages: [] }, 'messages', /at least 1 item\b/],
    [{ messages: [{ role: 'wizard', content: 'x' }] }, 'messages[0].role', /expected one of/],
    [{ messages: [{ role: 'user', content: 42 }] }, 'messages[0].content', /string or an array/],
  ])('rejects %j with param %s', async (patch, param, message) => {
    const { post } = setup({ contextLength: 512 });
    const res = await post('/v1/chat/completions', { ...user('hi'), ...patch });
    expect(res.status).toBe(400);
    const { error } = await errorOf(res);
    expect(error.param).toBe(param);
    expect(error.message).toMatch(message);
    expect(error.message).not.toMatch(/"code":|ZodError|\[\s*\{/); // never a raw zod dump
  });

  it.each([
    ['/v1/chat/completions', { model: MODEL, messages: [{ content: 'x' }] }, 'messages[0].role'],
    ['/v1/completions', { model: MODEL }, 'prompt'],
    ['/v1/chat/completions', { model: MODEL, messages: [{ role: 'user', content: 'x' }, { role: 'assistant', content: 'y', tool_calls: [{ id: 'c', type: 'function' }] }] }, 'messages[1].tool_calls[0].function'],
  ])('%s %j: a field that is absent (enum, union or object) is missing, not invalid', async (path, body, param) => {
    const { post } = setup();
    const res = await post(path, body);
    expect(res.status).toBe(400);
    expect((await errorOf(res)).error).toEqual({
      message: `Missing required parameter: '${param}'.`,
      type: 'invalid_request_error',
      param,
      code: 'missing_required_parameter',
    });
  });

  it.each([
    [[{ role: 'user', content: null }], 'messages[0].content', "Invalid 'messages[0].content': a user message needs content: expected a string or a non-empty array of text parts, got null."],
    [[{ role: 'user', content: [] }], 'messages[0].content', "Invalid 'messages[0].content': a user message needs content: expected a string or a non-empty array of text parts, got an empty array."],
    [[{ role: 'user' }], 'messages[0].content', "Missing required parameter: 'messages[0].content'."],
    [[{ role: 'user', content: 'x' }, { role: 'system', content: null }], 'messages[1].content', /a system message needs content/],
    [[{ role: 'user', content: 'x' }, { role: 'tool', content: '{}' }], 'messages[1].tool_call_id', "Missing required parameter: 'messages[1].tool_call_id'."],
  ])('rejects invalid message %j with a 400 naming %s', async (messages, param, message) => {
    const { post, engine } = setup();
    const res = await post('/v1/chat/completions', { model: MODEL, messages });
    expect(res.status).toBe(400);
    const { error } = await errorOf(res);
    expect(error.param).toBe(param);
    if (typeof message === 'string') expect(error.message).toBe(message);
    else expect(error.message).toMatch(message);
    expect(engine.requests).toEqual([]);
  });

  it('still accepts an assistant turn of tool calls only (content null) and its tool answer', async () => {
    const { post } = setup({ script: () => 'ok' });
    const res = await post('/v1/chat/completions', {
      model: MODEL,
      messages: [
        { role: 'user', content: 'x' },
        { role: 'assistant', content: null, tool_calls: [{ id: 'c1', type: 'function', function: { name: 'f', arguments: '{}' } }] },
        { role: 'tool', tool_call_id: 'c1', content: '{}' },
      ],
    });
    expect(res.status).toBe(200);
  });

  it.each([
    ['functions', [{ name: 'get_weather', parameters: { type: 'object' } }], "'functions' is deprecated and not supported; use 'tools'."],
    ['function_call', 'auto', "'function_call' is deprecated and not supported; use 'tool_choice'."],
    ['function_call', { name: 'get_weather' }, "'function_call' is deprecated and not supported; use 'tool_choice'."],
  ])('refuses the deprecated %s with a 400 unsupported_parameter', async (field, value, message) => {
    const { post, engine } = setup({ script: () => 'plain text' });
    const res = await post('/v1/chat/completions', { ...user('hi'), [field]: value });
    expect(res.status).toBe(400);
    expect((await errorOf(res)).error).toEqual({ message, type: 'invalid_request_error', param: field, code: 'unsupported_parameter' });
    expect(engine.requests).toEqual([]);
  });

  it('still ignores other unknown fields and null functions / function_call', async () => {
    const { post } = setup({ script: () => 'ok' });
    const res = await post('/v1/chat/completions', { ...user('hi'), top_k: 5, some_vendor_field: { x: 1 }, functions: null, function_call: null });
    expect(res.status).toBe(200);
  });

  it('reports a missing model as a missing parameter, an unknown one as 404', async () => {
    const { post } = setup();
    const missing = await post('/v1/chat/completions', { messages: [{ role: 'user', content: 'x' }] });
    expect(missing.status).toBe(400);
    expect((await errorOf(missing)).error).toMatchObject({ param: 'model', message: "Missing required parameter: 'model'." });
    const unknown = await post('/v1/chat/completions', { ...user('x'), model: 'nope' });
    expect(unknown.status).toBe(404);
    expect((await errorOf(unknown)).error).toMatchObject({ code: 'model_not_found', param: 'model' });
  });
});

describe('POST /v1/chat/completions (stream)', () => {
  it('frames chunks as SSE: role first, content deltas, finish chunk, [DONE]', async () => {
    const { post } = setup({ script: () => 'Hello' });
    const res = await post('/v1/chat/completions', { ...user('hi'), stream: true });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^text\/event-stream/);
    const chunks = await sseChunks(res);
    const first = chunks[0] as { object: string; id: string; choices: { delta: unknown }[] };
    expect(first.object).toBe('chat.completion.chunk');
    expect(first.id).toMatch(/^chatcmpl-/);
    expect(first.choices[0]!.delta).toEqual({ role: 'assistant', content: '' });
    expect(new Set(chunks.map((c) => c['id'])).size).toBe(1);
    const text = chunks.map((c) => (c['choices'] as { delta: { content?: string } }[])[0]?.delta.content ?? '').join('');
    expect(text).toBe('Hello');
    const last = chunks.at(-1) as { choices: { delta: unknown; finish_reason: string }[] };
    expect(last.choices[0]).toMatchObject({ delta: {}, finish_reason: 'stop' });
    expect(chunks.every((c) => !('usage' in c))).toBe(true);
  });

  it('include_usage: usage null on every chunk, then a final chunk with choices [] and usage', async () => {
    const { post } = setup({ script: () => 'abcd' });
    const res = await post('/v1/chat/completions', { ...user('hi'), stream: true, stream_options: { include_usage: true } });
    const chunks = await sseChunks(res);
    const last = chunks.at(-1)!;
    expect(last['choices']).toEqual([]);
    expect(last['usage']).toMatchObject({ completion_tokens: 4 });
    expect(chunks.slice(0, -1).every((c) => c['usage'] === null)).toBe(true);
  });

  it('streams n choices one after another with their index', async () => {
    const { post } = setup({ script: (req) => `seed${req.sampling.seed}` });
    const chunks = await sseChunks(await post('/v1/chat/completions', { ...user('hi'), stream: true, n: 2, seed: 1 }));
    const byIndex = new Map<number, string>();
    for (const c of chunks) {
      for (const ch of c['choices'] as { index: number; delta: { content?: string } }[]) {
        byIndex.set(ch.index, (byIndex.get(ch.index) ?? '') + (ch.delta.content ?? ''));
      }
    }
    expect(Object.fromEntries(byIndex)).toEqual({ 0: 'seed1', 1: 'seed2' });
  });

  it('holds back a possible stop prefix and never emits the stop text', async () => {
    const { post } = setup({ script: () => 'abc<EN>d<END>tail' });
    const chunks = await sseChunks(await post('/v1/chat/completions', { ...user('hi'), stream: true, stop: ['<END>'] }));
    const text = chunks.map((c) => (c['choices'] as { delta: { content?: string } }[])[0]?.delta.content ?? '').join('');
    expect(text).toBe('abc<EN>d');
  });

  it('streams logprobs per delta', async () => {
    const { post } = setup({ script: () => 'xy' });
    const chunks = await sseChunks(await post('/v1/chat/completions', { ...user('hi'), stream: true, logprobs: true }));
    const tokens = chunks.flatMap(
      (c) => ((c['choices'] as { logprobs: { content: { token: string }[] } | null }[])[0]?.logprobs?.content ?? []).map((t) => t.token),
    );
    expect(tokens.join('')).toBe('xy');
  });

  it('a full queue is a 503 with Retry-After before any stream starts', async () => {
    const { post, engine } = setup({ slots: 1, maxQueue: 0 });
    engine.pause();
    const running = post('/v1/chat/completions', { ...user('hi'), stream: true, max_tokens: 5 });
    await until(() => engine.stats().activeGenerations === 1, 'first generation holds the only slot');
    const res = await post('/v1/chat/completions', { ...user('hi'), stream: true });
    expect(res.status).toBe(503);
    expect(res.headers.get('retry-after')).toBe('2');
    expect((await errorOf(res)).error).toMatchObject({ type: 'server_error', code: 'queue_full' });
    engine.resume();
    expect((await sseChunks(await running)).length).toBeGreaterThan(1);
  });

  it('disconnecting a streaming client aborts the generation', async () => {
    const { post, get, engine } = setup();
    const ok = await post('/v1/chat/completions', { ...user('hi'), stream: true, max_tokens: 4000 });
    const reader = ok.body!.getReader();
    await reader.read(); // first event arrived: the generation is running
    engine.pause();
    await until(() => engine.stats().activeGenerations === 1, 'generation active');
    const health = await get('/health');
    expect(health.status).toBe(200); // answers while a generation runs
    await reader.cancel();
    await until(() => engine.stats().activeGenerations === 0, 'generation aborted after disconnect');
    expect(engine.requests[0]!.signal.aborted).toBe(true);
    engine.resume();
  });

  it('an error after the stream started is a final error event without [DONE]', async () => {
    const { post } = setup({
      script: (req) => {
        if (req.sampling.seed === 2) throw new Error('boom in choice 2');
        return 'ok';
      },
    });
    const data = await sseData(await post('/v1/chat/completions', { ...user('hi'), stream: true, n: 2, seed: 1 }));
    expect(data).not.toContain('[DONE]');
    const last = JSON.parse(data.at(-1)!);
    expect(last).toEqual({
      error: { message: 'The server had an error while processing your request.', type: 'server_error', param: null, code: 'internal_error' },
    });
  });
});

describe('client disconnect without streaming', () => {
  it('aborts the engine generation through the request signal', async () => {
    const { post, engine } = setup();
    engine.pause();
    const controller = new AbortController();
    const pending = post('/v1/chat/completions', { ...user('hi'), max_tokens: 50 }, { signal: controller.signal });
    await until(() => engine.stats().activeGenerations === 1, 'generation started');
    controller.abort();
    await pending.catch(() => undefined);
    await until(() => engine.stats().activeGenerations === 0, 'generation aborted');
    expect(engine.requests[0]!.signal.aborted).toBe(true);
    engine.resume();
  });
});
