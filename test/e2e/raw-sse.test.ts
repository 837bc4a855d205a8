/**
 * Raw HTTP against a real braid server: SSE framing byte for byte (undici +
 * eventsource-parser), liveness during a long generation, cancellation on
 * disconnect, body limits and resilience to garbage.
 */
import { createParser } from 'eventsource-parser';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunningServer } from '../../server/serve.ts';
import { banStops, startTestServer, until } from './harness.ts';

let server: RunningServer;
let modelId: string;

beforeAll(async () => {
  server = await startTestServer({ maxBodyBytes: 1024 * 1024 });
  modelId = server.engine.models()[0]!.info.id;
});

afterAll(async () => {
  await server?.close();
});

const json = (body: unknown) => ({
  method: 'POST' as const,
  headers: { 'content-type': 'application/json' },
  body: JSON.stringify(body),
});

/** Reads a whole SSE body into its data payloads. */
async function readSse(body: AsyncIterable<Buffer>): Promise<string[]> {
  const data: string[] = [];
  const parser = createParser({ onEvent: (e) => data.push(e.data) });
  const decoder = new TextDecoder();
  for await (const chunk of body) parser.feed(decoder.decode(chunk, { stream: true }));
  return data;
}

async function metric(name: string): Promise<number> {
  const res = await request(`${server.url}/metrics`);
  const text = await res.body.text();
  const line = text.split('\n').find((l) => l.startsWith(`${name} `));
  if (line === undefined) throw new Error(`metric ${name} missing`);
  return Number(line.slice(name.length + 1));
}

describe('raw SSE', () => {
  it('chat stream: text/event-stream, chunk objects, include_usage, data: [DONE]', async () => {
    const res = await request(
      `${server.url}/v1/chat/completions`,
      json({
        model: modelId,
        messages: [{ role: 'user', content: 'hi' }],
        max_tokens: 5,
        stream: true,
        stream_options: { include_usage: true },
        logit_bias: banStops(server),
      }),
    );
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-type']).toMatch(/^text\/event-stream/);
    const data = await readSse(res.body);
    expect(data.at(-1)).toBe('[DONE]');
    const chunks = data.slice(0, -1).map((d) => JSON.parse(d));
    expect(chunks.every((c) => c.object === 'chat.completion.chunk')).toBe(true);
    expect(chunks[0].choices[0].delta.role).toBe('assistant');
    const usageChunk = chunks.at(-1);
    expect(usageChunk.choices).toEqual([]);
    expect(usageChunk.usage.completion_tokens).toBe(5);
    expect(chunks.slice(0, -1).every((c) => c.usage === null)).toBe(true);
    expect(chunks.at(-2).choices[0].finish_reason).toBe('length');
  });

  it('completions stream ends with [DONE] too', async () => {
    const res = await request(`${server.url}/v1/completions`, json({ model: modelId, prompt: 'Once', max_tokens: 3, stream: true }));
    const data = await readSse(res.body);
    expect(data.at(-1)).toBe('[DONE]');
    expect(JSON.parse(data[0]!).object).toBe('text_completion');
  });
});

describe('liveness and cancellation', () => {
  it('/health answers during a long stream; disconnecting stops the generation', async () => {
    const info = server.engine.models()[0]!.info;
    const maxTokens = Math.min(info.contextLength - 64, 4096);
    const before = server.engine.stats().completionTokensTotal;
    const controller = new AbortController();
    const res = await request(`${server.url}/v1/chat/completions`, {
      ...json({ model: modelId, messages: [{ role: 'user', content: 'go' }], max_tokens: maxTokens, stream: true, logit_bias: banStops(server) }),
      signal: controller.signal,
    });
    expect(res.statusCode).toBe(200);
    const iterator = res.body[Symbol.asyncIterator]();
    await iterator.next(); // the first event: the generation is running

    const health = await request(`${server.url}/health`);
    expect(health.statusCode).toBe(200);
    expect((await health.body.json()) as { status: string }).toMatchObject({ status: 'ok' });
    expect(await metric('braid_active_generations')).toBe(1);

    controller.abort();
    await until(async () => (await metric('braid_active_generations')) === 0, 'active generations back to 0 after disconnect');
    expect(server.engine.stats().activeGenerations).toBe(0);
    const generated = server.engine.stats().completionTokensTotal - before;
    expect(generated).toBeLessThan(maxTokens); // stopped early, not run to max_tokens
  });
});

describe('limits and robustness', () => {
  it('a body over the limit gets 413 in the error envelope', async () => {
    const huge = JSON.stringify({ model: modelId, prompt: 'x'.repeat(2 * 1024 * 1024) });
    const res = await request(`${server.url}/v1/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: huge });
    expect(res.statusCode).toBe(413);
    expect(((await res.body.json()) as { error: { code: string } }).error.code).toBe('request_too_large');
  });

  it('garbage never crashes the server; a valid request succeeds afterwards', async () => {
    const garbage: (string | Buffer)[] = [
      '{',
      '}{',
      'null',
      '{"model":',
      '{"model": "x", "messages": [{"role": "user", "content": {"a": 1}}]}',
      '{"model": "' + modelId + '", "messages": [{"role": "user", "content": "x"}], "n": "many", "text": 5}',
      Buffer.from([0xff, 0xfe, 0x00, 0x01, 0x80]),
      '{"model": "' + modelId + '", "prompt": [[-1]]}',
      '{"model": "' + modelId + '", "prompt": [99999999]}',
      '{"__proto__": {"polluted": true}, "model": "' + modelId + '"}',
    ];
    for (let round = 0; round < 3; round++) {
      for (const body of garbage) {
        for (const path of ['/v1/chat/completions', '/v1/completions', '/v1/tokenize']) {
          const res = await request(`${server.url}${path}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body });
          const text = await res.body.text();
          expect(res.statusCode, `${path} ${String(body)}`).toBeGreaterThanOrEqual(400);
          expect(res.statusCode, `${path} ${String(body)}`).toBeLessThan(500);
          expect(JSON.parse(text)).toHaveProperty('error.message');
        }
      }
    }
    const ok = await request(`${server.url}/v1/chat/completions`, json({ model: modelId, messages: [{ role: 'user', content: 'hi' }], max_tokens: 2 }));
    expect(ok.statusCode).toBe(200);
    expect(((await ok.body.json()) as { choices: unknown[] }).choices).toHaveLength(1);
  });
});
