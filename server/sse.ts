/**
 * Server-sent events in OpenAI's framing: one `data: <json>` event per chunk,
 * `data: [DONE]` at the end. An error after the stream started cannot change
 * the status any more, so it is sent as a final `data: {"error": …}` event and
 * the stream closes without [DONE].
 *
 * hono's stream writes swallow failures, so after every write we check
 * whether the client is gone and stop producing instead of computing tokens
 * nobody will read.
 */
import type { Context } from 'hono';
import { streamSSE } from 'hono/streaming';
import { AbortedError } from '../engine/errors.ts';
import { toApiError } from './errors.ts';
import type { AppEnv } from './types.ts';

export type Send = (payload: unknown) => Promise<void>;

export function sseResponse(
  c: Context<AppEnv>,
  abort: AbortController,
  produce: (send: Send) => Promise<void>,
): Response {
  let finished!: () => void;
  c.set(
    'streamDone',
    new Promise<void>((resolve) => {
      finished = resolve;
    }),
  );
  c.header('X-Accel-Buffering', 'no'); // proxies (nginx) must not buffer the stream
  return streamSSE(c, async (stream) => {
    stream.onAbort(() => abort.abort(new AbortedError('client disconnected')));
    const send: Send = async (payload) => {
      if (stream.aborted || abort.signal.aborted) throw new AbortedError('client disconnected');
      await stream.writeSSE({ data: JSON.stringify(payload) });
      if (stream.aborted) throw new AbortedError('client disconnected');
    };
    try {
      await produce(send);
      await stream.writeSSE({ data: '[DONE]' });
    } catch (err) {
      if (!stream.aborted && !abort.signal.aborted) {
        await stream.writeSSE({ data: JSON.stringify(toApiError(err).body()) });
      }
    } finally {
      finished();
    }
  });
}
