/**
 * Types shared by the HTTP layer: what every route factory receives and the
 * per-request variables hono carries between middleware and handlers.
 */
import type { Engine } from '../engine/types.ts';
import type { ServerConfig } from './config.ts';
import type { Metrics } from './metrics.ts';

export interface Deps {
  engine: Engine;
  config: ServerConfig;
  metrics: Metrics;
}

export interface AppEnv {
  Variables: {
    /**
     * Set by the SSE helper: settles when a streamed response has finished
     * (or was cut), so the metrics middleware times the whole stream rather
     * than the time to the first byte.
     */
    streamDone: Promise<void> | undefined;
  };
}
