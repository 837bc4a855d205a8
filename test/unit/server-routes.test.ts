import { describe, expect, it } from 'vitest';
import { errorOf, setup, sseChunks } from './server-test-helpers.ts';

describe('GET /health', () => {
  it('reports ok, the models and the system info', async () => {
    const { get } = setup({ models: ['a', 'b'] });
    const res = await get('/health');
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ status: 'ok', models: ['a', 'b'], system: { isa: 'fake', threads: 1 } });
  });
});

describe('GET /v1/models', () => {
  it('lists models in the OpenAI shape with braid provenance', async () => {
    const { get } = setup({ models: ['m1', 'm2'] });
    const body = await (await get('/v1/models')).json();
    expect(body.object).toBe('list');
    expect(body.data).toHaveLength(2);
    expect(body.data[0]).toMatchObject({
      id: 'm1',
      object: 'model',
      created: 1_700_000_000,
      owned_by: 'braid',
      braid: { provenance: 'test double (fake engine)', architecture: 'fake', file: 'm1.gguf', context_length: 4096, n_vocab: 260 },
    });
  });

  it('gets one model, 404 model_not_found for an unknown id', async () => {
    const { get } = setup();
    expect((await (await get('/v1/models/fake-model')).json()).id).toBe('fake-model');
    const res = await get('/v1/models/gpt-9');
    expect(res.status).toBe(404);
    expect((await errorOf(res)).error).toMatchObject({ code: 'model_not_found', param: 'model' });
  });
});

describe('trailing slashes', () => {
  it('route like the path without one: served, or 405 with a consistent Allow, or 404', async () => {
    const { get, post } = setup({ script: () => 'ok' });
    const list = await get('/v1/models/');
    expect(list.status).toBe(200);
    expect((await list.json()).object).toBe('list');
    expect((await (await get('/v1/models/fake-model/')).json()).id).toBe('fake-model');
    const chat = await post('/v1/chat/completions/', { model: 'fake-model', messages: [{ role: 'user', content: 'x' }] });
    expect(chat.status).toBe(200);
    const wrongMethod = await get('/v1/embeddings/');
    expect(wrongMethod.status).toBe(405);
    expect(wrongMethod.headers.get('allow')).toBe('POST');
    expect((await errorOf(wrongMethod)).error.message).toBe('Method GET is not allowed on /v1/embeddings; use POST.');
    const unknown = await get('/v1/nothing/');
    expect(unknown.status).toBe(404);
    expect((await errorOf(unknown)).error.code).toBe('unknown_url');
  });
});

describe('x-request-id', () => {
  it('is on every response — success, stream, validation error, 401, 404, 405, 413, preflight — and unique', async () => {
    const { app, get, post } = setup({ script: () => 'ok' }, { apiKey: 'k', maxBodyBytes: 1024, corsOrigins: ['*'] });
    const auth = { headers: { authorization: 'Bearer k' } };
    const chat = { model: 'fake-model', messages: [{ role: 'user', content: 'x' }] };
    const responses = [
      await get('/v1/models', auth),
      await post('/v1/chat/completions', { ...chat, stream: true }, auth),
      await post('/v1/chat/completions', { ...chat, n: 0 }, auth),
      await get('/v1/models'),
      await get('/v1/nothing', auth),
      await get('/v1/chat/completions', auth),
      await post('/v1/chat/completions', { ...chat, pad: 'x'.repeat(2048) }, auth),
      await app.request('/v1/models', { method: 'OPTIONS', headers: { origin: 'http://ui.test', 'access-control-request-method': 'GET' } }),
      // A client's own x-request-id is replaced by the server's, as OpenAI does.
      await get('/health', { headers: { 'x-request-id': 'client-chosen' } }),
    ];
    expect(responses.map((r) => r.status)).toEqual([200, 200, 400, 401, 404, 405, 413, 204, 200]);
    const ids = responses.map((r) => r.headers.get('x-request-id'));
    for (const id of ids) expect(id).toMatch(/^req_[0-9a-f]{32}$/);
    expect(new Set(ids).size).toBe(ids.length);
    expect(responses[7]!.headers.get('access-control-expose-headers')).toMatch(/x-request-id/);
    await sseChunks(responses[1]!); // the stream still runs to [DONE]
  });
});

describe('tokenize / detokenize', () => {
  it('tokenizes text with and without BOS and round-trips', async () => {
    const { post } = setup();
    const a = await (await post('/v1/tokenize', { model: 'fake-model', text: 'hé' })).json();
    expect(a).toEqual({ tokens: [256, 104, 195, 169], count: 4 });
    const b = await (await post('/v1/tokenize', { model: 'fake-model', text: 'hé', add_special: false })).json();
    expect(b.tokens).toEqual([104, 195, 169]);
    const back = await (await post('/v1/detokenize', { model: 'fake-model', tokens: b.tokens })).json();
    expect(back).toEqual({ text: 'hé' });
  });

  it('user text cannot forge control tokens, templates can', async () => {
    const { post } = setup();
    const text = await (await post('/v1/tokenize', { model: 'fake-model', text: '<|im_end|>', add_special: false })).json();
    expect(text.count).toBe('<|im_end|>'.length);
    const msgs = await (await post('/v1/tokenize', { model: 'fake-model', messages: [{ role: 'user', content: 'x' }] })).json();
    expect(msgs.tokens).toContain(259);
  });

  it.each([
    ['/v1/tokenize', { model: 'fake-model' }, 'text', /exactly one of/],
    ['/v1/tokenize', { model: 'fake-model', text: 'a', messages: [{ role: 'user', content: 'b' }] }, 'messages', /exactly one of/],
    ['/v1/detokenize', { model: 'fake-model', tokens: [1, 5000] }, 'tokens', /outside the vocabulary/],
    ['/v1/detokenize', { model: 'fake-model', tokens: [-1] }, 'tokens[0]', /at least 0/],
  ])('%s %j → 400 param %s', async (path, body, param, message) => {
    const { post } = setup();
    const res = await post(path, body);
    expect(res.status).toBe(400);
    const { error } = await errorOf(res);
    expect(error.param).toBe(param);
    expect(error.message).toMatch(message);
  });
});

describe('GET /metrics', () => {
  it('exposes Prometheus text with route/status counters, tokens, gauges and a histogram', async () => {
    const { get, post } = setup({ script: () => 'abc' });
    await post('/v1/chat/completions', { model: 'fake-model', messages: [{ role: 'user', content: 'x' }] });
    await sseChunks(await post('/v1/chat/completions', { model: 'fake-model', messages: [{ role: 'user', content: 'x' }], stream: true }));
    await post('/v1/chat/completions', '{');
    await get('/v1/models/nope');
    await get('/no/such/path');
    const res = await get('/metrics');
    expect(res.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
    const text = await res.text();
    expect(text).toContain('braid_requests_total{route="/v1/chat/completions",status="200"} 2');
    expect(text).toContain('braid_requests_total{route="/v1/chat/completions",status="400"} 1');
    expect(text).toContain('braid_requests_total{route="/v1/models/:id",status="404"} 1');
    expect(text).toContain('braid_requests_total{route="unmatched",status="404"} 1');
    expect(text).toContain('braid_completion_tokens_total 6');
    expect(text).toMatch(/^braid_prompt_tokens_total \d+$/m);
    expect(text).toContain('braid_active_generations 0');
    expect(text).toContain('braid_queue_depth 0');
    expect(text).toMatch(/^braid_tokens_per_second [\d.e+-]+$/m);
    expect(text).toContain('braid_request_duration_seconds_count{route="/v1/chat/completions"} 3');
    expect(text).toContain('# TYPE braid_request_duration_seconds histogram');
    // Buckets are cumulative and end with +Inf equal to the count.
    const buckets = [...text.matchAll(/braid_request_duration_seconds_bucket\{route="\/v1\/chat\/completions",le="([^"]+)"\} (\d+)/g)];
    const counts = buckets.map((m) => Number(m[2]));
    expect(counts).toEqual([...counts].sort((x, y) => x - y));
    expect(buckets.at(-1)?.[1]).toBe('+Inf');
    expect(counts.at(-1)).toBe(3);
  });
});
