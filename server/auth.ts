/**
 * Bearer API-key check, installed only when a key is configured. /health
 * stays open so load balancers and container health checks need no secret;
 * CORS preflights (OPTIONS) carry no credentials by design and are answered
 * by the CORS middleware before this runs.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import type { MiddlewareHandler } from 'hono';
import { invalidApiKey } from './errors.ts';
import type { AppEnv } from './types.ts';

const OPEN_PATHS = new Set(['/health']);

// Hashing both sides first gives equal-length buffers, so the comparison time
// depends neither on the key's content nor on its length.
const digest = (s: string): Buffer => createHash('sha256').update(s, 'utf8').digest();

export function apiKeyAuth(apiKey: string): MiddlewareHandler<AppEnv> {
  const expected = digest(apiKey);
  return async (c, next) => {
    if (OPEN_PATHS.has(c.req.path) || c.req.method === 'OPTIONS') return next();
    const header = c.req.header('authorization');
    const match = header === undefined ? null : /^Bearer\s+(.+)$/i.exec(header.trim());
    const given = match?.[1];
    if (given === undefined) throw invalidApiKey(false);
    if (!timingSafeEqual(digest(given), expected)) throw invalidApiKey(true);
    return next();
  };
}
