/** GET /metrics: Prometheus text exposition format. */
import { Hono } from 'hono';
import type { AppEnv, Deps } from '../types.ts';

export function metricsRoutes({ engine, metrics }: Deps): Hono<AppEnv> {
  return new Hono<AppEnv>().get('/metrics', (c) =>
    c.body(metrics.render(engine.stats()), 200, { 'content-type': 'text/plain; version=0.0.4; charset=utf-8' }),
  );
}
