import type { Server } from 'node:http';
import { connect, type AddressInfo } from 'node:net';
import { serve } from '@hono/node-server';
import { describe, expect, it, vi } from 'vitest';
import { InvalidRequestError } from '../../engine/errors.ts';
import { errorOf, setup } from './server-test-helpers.ts';

const chat = { model: 'fake-model', messages: [{ role: 'user', content: 'hi' }] };

describe('error envelope', () => {
  it.each([
    ['{"model": "fake-model", ', /could not parse the JSON body/],
    ['', /body is empty/],
    ['[1,2]', /must be a JSON object/],
    ['"just a string"', /must be a JSON object/],
  ])('malformed body %j → 400 invalid_json', async (raw, message) => {
    const { post } = setup();
    const res = await post('/v1/chat/completions', raw);
    expect(res.status).toBe(400);
    expect(res.headers.get('content-type')).toMatch(/application\/json/);
    const { error } = await errorOf(res);
    expect(error).toMatchObject({ type: 'invalid_request_error', code: 'invalid_json', param: null });
    expect(error.message).toMatch(message);
  });

  it('unknown route → 404 envelope', async () => {
    const { get } = setup();
    const res = await get('/v1/nothing-here');
    expect(res.status).toBe(404);
    expect((await errorOf(res)).error).toMatchObject({ code: 'unknown_url', type: 'invalid_request_error' });
  });

  it('wrong method on a known route → 405 with Allow', async () => {
    const { get, post } = setup();
    const res = await get('/v1/chat/completions');
    expect(res.status).toBe(405);
    expect(res.headers.get('allow')).toBe('POST');
    expect((await errorOf(res)).error.code).toBe('method_not_allowed');
    const onParam = await post('/v1/models/fake-model', {});
    expect(onParam.status).toBe(405);
    expect(onParam.headers.get('allow')).toBe('GET');
  });

  it('body over --max-body-bytes → 413 envelope', async () => {
    const { post } = setup({}, { maxBodyBytes: 1024 });
    const res = await post('/v1/chat/completions', { ...chat, padding: 'x'.repeat(2048) });
    expect(res.status).toBe(413);
    expect((await errorOf(res)).error).toMatchObject({ code: 'request_too_large' });
    const small = await post('/v1/chat/completions', chat);
    expect(small.status).toBe(200);
  });

  it('engine InvalidRequestError → 400 with its param and code', async () => {
    const { post, engine } = setup();
    vi.spyOn(engine.models()[0]!, 'generate').mockImplementation(() => {
      throw new InvalidRequestError('prompt too long for this model', 'messages', 'context_length_exceeded');
    });
    const res = await post('/v1/chat/completions', chat);
    expect(res.status).toBe(400);
    expect((await errorOf(res)).error).toEqual({
      message: 'prompt too long for this model',
      type: 'invalid_request_error',
      param: 'messages',
      code: 'context_length_exceeded',
    });
  });

  it('an unexpected error → 500 with a generic message, logged, never leaked', async () => {
    const { post, engine } = setup();
    const logged = vi.spyOn(console, 'error').mockImplementation(() => undefined);
    vi.spyOn(engine.models()[0]!, 'generate').mockImplementation(() => {
      throw new Error('secret internal detail /etc/passwd');
    });
    const res = await post('/v1/chat/completions', chat);
    expect(res.status).toBe(500);
    const { error } = await errorOf(res);
    expect(error).toMatchObject({ type: 'server_error', code: 'internal_error' });
    expect(error.message).not.toMatch(/secret/);
    expect(logged).toHaveBeenCalled();
    logged.mockRestore();
  });

  it('a loop of garbage bodies leaves the app serving', async () => {
    const { post } = setup({ script: () => 'fine' });
    const garbage = ['{', 'null', '{"messages": "x"}', '\u0000\u0001', '{"model": 5}', '[]', '{"model":"fake-model","messages":[{}]}', '1e999'];
    for (const g of garbage) {
      const res = await post('/v1/chat/completions', g);
      expect(res.status).toBe(400);
    }
    const ok = await post('/v1/chat/completions', chat);
    expect(ok.status).toBe(200);
  });
});

describe('a client that resets the socket while sending the body', () => {
  it.each([
    ['content-length: 500', '{"model": "fake-model", '],
    ['transfer-encoding: chunked', '18\r\n{"model": "fake-model", \r\n'],
  ])('(%s) is a 499 in /metrics, not a logged internal error', async (framing, partial) => {
    const { app, get } = setup();
    const logged = vi.spyOn(console, 'error').mockImplementation(() => undefined);
    const server = await new Promise<Server>((resolve) => {
      const s = serve({ fetch: app.fetch, hostname: '127.0.0.1', port: 0 }, () => resolve(s as Server));
    });
    try {
      const { port } = server.address() as AddressInfo;
      const socket = connect(port, '127.0.0.1');
      socket.on('error', () => undefined);
      await new Promise<void>((resolve) => socket.once('connect', resolve));
      // The server has the headers (the handler is running) before the reset.
      const received = new Promise<void>((resolve) => server.once('request', () => resolve()));
      socket.write(`POST /v1/chat/completions HTTP/1.1\r\nhost: localhost\r\ncontent-type: application/json\r\n${framing}\r\n\r\n${partial}`);
      await received;
      socket.resetAndDestroy();
      // The handler finishes on the server's own schedule: poll /metrics (bounded) until it is counted.
      let metrics = '';
      for (const deadline = Date.now() + 5000; !metrics.includes('route="/v1/chat/completions"') && Date.now() < deadline; ) {
        await new Promise((resolve) => setImmediate(resolve)); // let the socket's events run
        metrics = await (await get('/metrics')).text();
      }
      expect(metrics).toContain('braid_requests_total{route="/v1/chat/completions",status="499"} 1');
      expect(metrics).not.toMatch(/status="500"/);
      expect(logged).not.toHaveBeenCalled();
    } finally {
      logged.mockRestore();
      await new Promise((resolve) => server.close(resolve));
    }
  });
});

describe('an oversized body over a real socket', () => {
  it('is read to its end before the 413, so a client still uploading is not cut off', async () => {
    const { app } = setup({}, { maxBodyBytes: 64 * 1024 });
    const server = await new Promise<Server>((resolve) => {
      const s = serve({ fetch: app.fetch, hostname: '127.0.0.1', port: 0 }, () => resolve(s as Server));
    });
    try {
      const { port } = server.address() as AddressInfo;
      const socket = connect(port, '127.0.0.1');
      const errors: string[] = [];
      socket.on('error', (e) => errors.push(String(e)));
      let response = '';
      socket.on('data', (d) => (response += d.toString()));
      await new Promise<void>((resolve) => socket.once('connect', resolve));
      // 200 KB (over the 64 KB limit) in 10 pieces over ~0.8 s: slower than node-server's 500 ms
      // grace for an unread body, as an upload is when the host is busy.
      const piece = 'x'.repeat(20 * 1024);
      socket.write(`POST /v1/chat/completions HTTP/1.1\r\nhost: localhost\r\ncontent-type: application/json\r\ncontent-length: ${10 * piece.length}\r\n\r\n`);
      let written = 0;
      for (let i = 0; i < 10 && errors.length === 0; i++) {
        await new Promise((resolve) => setTimeout(resolve, 80));
        if (socket.destroyed || socket.writableEnded) break; // the server hung up mid-upload
        await new Promise<void>((resolve) => socket.write(piece, (e) => (e ? errors.push(String(e)) : written++, resolve())));
      }
      expect(written).toBe(10);
      for (const deadline = Date.now() + 3000; !/\r\n\r\n\{.*\}/s.test(response) && errors.length === 0 && Date.now() < deadline; ) {
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
      expect(errors).toEqual([]);
      expect(response).toMatch(/^HTTP\/1\.1 413/);
      expect(response).toContain('"code":"request_too_large"');
      socket.destroy();
    } finally {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    }
  });
});

describe('API key', () => {
  it('is enforced on /v1 routes and /metrics but not /health', async () => {
    const { post, get } = setup({ script: () => 'x' }, { apiKey: 'sk-test' });
    const none = await post('/v1/chat/completions', chat);
    expect(none.status).toBe(401);
    expect((await errorOf(none)).error).toMatchObject({ code: 'invalid_api_key', type: 'invalid_request_error' });
    const wrong = await post('/v1/chat/completions', chat, { headers: { authorization: 'Bearer sk-nope' } });
    expect(wrong.status).toBe(401);
    expect((await errorOf(wrong)).error.message).toMatch(/Incorrect API key/);
    const right = await post('/v1/chat/completions', chat, { headers: { authorization: 'Bearer sk-test' } });
    expect(right.status).toBe(200);
    expect((await get('/metrics')).status).toBe(401);
    expect((await get('/health')).status).toBe(200);
  });
});

describe('CORS', () => {
  it('is off by default', async () => {
    const { get } = setup();
    const res = await get('/v1/models', { headers: { origin: 'http://example.test' } });
    expect(res.headers.get('access-control-allow-origin')).toBeNull();
  });

  it('answers preflights and tags responses for a configured origin, even with an API key', async () => {
    const { app, get } = setup({}, { corsOrigins: ['http://ui.test'], apiKey: 'k' });
    const preflight = await app.request('/v1/chat/completions', {
      method: 'OPTIONS',
      headers: { origin: 'http://ui.test', 'access-control-request-method': 'POST', 'access-control-request-headers': 'authorization' },
    });
    expect(preflight.status).toBe(204);
    expect(preflight.headers.get('access-control-allow-origin')).toBe('http://ui.test');
    const res = await get('/health', { headers: { origin: 'http://ui.test' } });
    expect(res.headers.get('access-control-allow-origin')).toBe('http://ui.test');
  });

  it("allows the headers the official SDK sends (X-Stainless-*) in a preflight for '*'", async () => {
    const { app } = setup({}, { corsOrigins: ['*'] });
    const requested = 'authorization,content-type,x-stainless-os,x-stainless-lang';
    const preflight = await app.request('/v1/chat/completions', {
      method: 'OPTIONS',
      headers: { origin: 'http://ui.test', 'access-control-request-method': 'POST', 'access-control-request-headers': requested },
    });
    expect(preflight.status).toBe(204);
    expect(preflight.headers.get('access-control-allow-origin')).toBe('*');
    const allowed = new Set(preflight.headers.get('access-control-allow-headers')?.toLowerCase().split(',').map((h) => h.trim()));
    for (const h of requested.split(',')) expect(allowed).toContain(h);
  });
});
