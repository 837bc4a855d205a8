/**
 * A fresh x-request-id on every response, errors and preflights included, as
 * OpenAI sends one: a client quoting it in a bug report names one request.
 * An x-request-id the client sent is not reused (OpenAI generates its own
 * too), so an id is always unique to this server.
 */
import type { MiddlewareHandler } from 'hono';
import { requestId } from './ids.ts';
import type { AppEnv } from './types.ts';

export const REQUEST_ID_HEADER = 'x-request-id';

export function requestIdMiddleware(): MiddlewareHandler<AppEnv> {
  return async (c, next) => {
    const id = requestId();
    await next();
    // After next(): by now c.res is whatever answered, a route, onError or notFound.
    c.header(REQUEST_ID_HEADER, id);
  };
}
