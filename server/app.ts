/**
 * The hono application: middleware in the order a request meets it, then one
 * router per resource. Built from an Engine and a ServerConfig only, so tests
 * drive it with app.request() and a fake engine, and serve.ts binds it to a
 * socket.
 *
 *   request id → metrics → CORS (if configured) → API key (if configured) → body limit → routes
 */
import { Hono } from 'hono';
import { bodyLimit } from 'hono/body-limit';
import { cors } from 'hono/cors';
import type { FineTuning } from '../engine/finetune/service.ts';
import type { Engine } from '../engine/types.ts';
import { apiKeyAuth } from './auth.ts';
import type { ServerConfig } from './config.ts';
import { drainBody } from './drain-body.ts';
import { bodyTooLarge, errorResponse, methodNotAllowed, onError, routeNotFound } from './errors.ts';
import { Metrics, metricsMiddleware } from './metrics.ts';
import { REQUEST_ID_HEADER, requestIdMiddleware } from './request-id.ts';
import { chatRoutes } from './routes/chat.ts';
import { completionRoutes } from './routes/completions.ts';
import { embeddingRoutes } from './routes/embeddings.ts';
import { fileRoutes } from './routes/files.ts';
import { fineTuningRoutes } from './routes/fine-tuning.ts';
import { healthRoutes } from './routes/health.ts';
import { metricsRoutes } from './routes/metrics.ts';
import { modelRoutes } from './routes/models.ts';
import { tokenizeRoutes } from './routes/tokenize.ts';
import type { AppEnv, Deps } from './types.ts';

export interface CreateAppOptions {
  engine: Engine;
  config: ServerConfig;
  /** Shared with the caller when it wants to read counters directly (tests). */
  metrics?: Metrics;
  /** Files and fine-tuning jobs (engine/finetune/); without it those routes are absent. */
  fineTuning?: FineTuning;
}

export function createApp({ engine, config, metrics = new Metrics(), fineTuning }: CreateAppOptions): Hono<AppEnv> {
  const deps: Deps = { engine, config, metrics };
  // Non-strict: "/v1/models/" is "/v1/models", as allowedMethods (the 405 check) already assumes.
  const app = new Hono<AppEnv>({ strict: false });

  app.use('*', requestIdMiddleware());
  app.use('*', metricsMiddleware(metrics));
  if (config.corsOrigins !== null) {
    const origins = config.corsOrigins;
    app.use(
      '*',
      cors({
        origin: origins.includes('*') ? '*' : origins,
        // No allowHeaders: a preflight's requested headers are reflected, because
        // the official SDKs send their own (X-Stainless-*, OpenAI-Organization…)
        // and a fixed list would make browsers block every SDK call.
        allowMethods: ['GET', 'POST', 'DELETE', 'OPTIONS'],
        exposeHeaders: ['retry-after', REQUEST_ID_HEADER],
        maxAge: 600,
      }),
    );
  }
  if (config.apiKey !== undefined) app.use('*', apiKeyAuth(config.apiKey));
  app.use(
    '*',
    bodyLimit({
      maxSize: config.maxBodyBytes,
      // Drained first (up to 4× the limit), so a client still uploading reads the 413 instead of EPIPE.
      onError: async (c) => {
        await drainBody(c.req.raw, 4 * config.maxBodyBytes);
        return errorResponse(bodyTooLarge(config.maxBodyBytes));
      },
    }),
  );

  for (const routes of [healthRoutes, modelRoutes, chatRoutes, completionRoutes, embeddingRoutes, tokenizeRoutes, metricsRoutes]) {
    app.route('/', routes(deps));
  }
  if (fineTuning !== undefined) {
    app.route('/', fileRoutes(fineTuning));
    app.route('/', fineTuningRoutes(fineTuning));
  }

  app.onError(onError);
  app.notFound((c) => {
    const allow = allowedMethods(app, c.req.path);
    const method = c.req.method;
    return errorResponse(allow.length > 0 ? methodNotAllowed(method, c.req.path, allow) : routeNotFound(method, c.req.path));
  });
  return app;
}

/** The methods registered for a path: non-empty means the path exists and the method was wrong (405). */
function allowedMethods(app: Hono<AppEnv>, path: string): string[] {
  const methods = new Set<string>();
  for (const route of app.routes) {
    if (route.method === 'ALL') continue; // middleware, not a resource
    if (patternRegExp(route.path).test(path)) methods.add(route.method);
  }
  return [...methods].sort();
}

const patternCache = new Map<string, RegExp>();

/** "/v1/models/:id" → /^\/v1\/models\/[^/]+$/ (the route syntax this server uses). */
function patternRegExp(pattern: string): RegExp {
  let re = patternCache.get(pattern);
  if (re === undefined) {
    const body = pattern
      .split('/')
      .map((seg) => (seg.startsWith(':') ? '[^/]+' : seg.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')))
      .join('/');
    re = new RegExp(`^${body}/?$`);
    patternCache.set(pattern, re);
  }
  return re;
}
