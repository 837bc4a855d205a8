/**
 * Shared plumbing for the server unit tests: an app over a FakeEngine, JSON
 * requests through app.request(), and an SSE reader built on
 * eventsource-parser (the parser the OpenAI ecosystem uses).
 */
import { createParser } from 'eventsource-parser';
import { createApp } from '../../server/app.ts';
import { defaultConfig, type ServerConfig } from '../../server/config.ts';
import { Metrics } from '../../server/metrics.ts';
import { FakeEngine, type FakeEngineOptions } from './fake-engine.ts';

export function setup(engineOpts: FakeEngineOptions = {}, config: Partial<ServerConfig> = {}) {
  const engine = new FakeEngine(engineOpts);
  const metrics = new Metrics();
  const app = createApp({ engine, config: defaultConfig(config), metrics });
  const post = (path: string, body: unknown, init: RequestInit = {}): Promise<Response> =>
    Promise.resolve(
      app.request(path, {
        method: 'POST',
        ...init,
        headers: { 'content-type': 'application/json', ...(init.headers as Record<string, string> | undefined) },
        body: typeof body === 'string' ? body : JSON.stringify(body),
      }),
    );
  const get = (path: string, init: RequestInit = {}): Promise<Response> => Promise.resolve(app.request(path, init));
  return { engine, app, metrics, post, get };
}

export interface ErrorEnvelope {
  error: { message: string; type: string; param: string | null; code: string | null };
}

/** Asserts-by-shape helper: returns the envelope or throws with the body for a readable failure. */
export async function errorOf(res: Response): Promise<ErrorEnvelope> {
  const body: unknown = await res.json();
  if (typeof body !== 'object' || body === null || !('error' in body)) throw new Error(`not an error envelope: ${JSON.stringify(body)}`);
  return body as ErrorEnvelope;
}

/** Every `data:` payload of an SSE response, in order (the literal "[DONE]" included). */
export async function sseData(res: Response): Promise<string[]> {
  const out: string[] = [];
  const parser = createParser({ onEvent: (e) => out.push(e.data) });
  const reader = res.body!.getReader();
  const decoder = new TextDecoder();
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    parser.feed(decoder.decode(value, { stream: true }));
  }
  return out;
}

/** The JSON chunks of a stream that must end with [DONE]. */
export async function sseChunks(res: Response): Promise<Record<string, unknown>[]> {
  const data = await sseData(res);
  if (data.at(-1) !== '[DONE]') throw new Error(`stream did not end with [DONE]: ${JSON.stringify(data.slice(-2))}`);
  return data.slice(0, -1).map((d) => JSON.parse(d) as Record<string, unknown>);
}

/**
 * Polls a condition with a bounded deadline: for effects that happen on the
 * event loop after a client action (an abort reaching the engine).
 */
export async function until(cond: () => boolean, what: string, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for: ${what}`);
    await new Promise((resolve) => setImmediate(resolve));
  }
}
