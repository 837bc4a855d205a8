/**
 * GET /health: liveness. It touches no model and no queue, so it answers
 * while generations run (the engine computes off the event loop).
 */
import { Hono } from 'hono';
import type { AppEnv, Deps } from '../types.ts';

export function healthRoutes({ engine }: Deps): Hono<AppEnv> {
  return new Hono<AppEnv>().get('/health', (c) =>
    c.json({
      status: 'ok',
      models: engine.models().map((m) => m.info.id),
      system: engine.systemInfo(),
    }),
  );
}
