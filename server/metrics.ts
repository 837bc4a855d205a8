/**
 * Prometheus metrics, rendered in the text exposition format (0.0.4). The
 * HTTP counters live here; token totals, queue depth and throughput are read
 * from the engine at scrape time, so there is one source of truth for each.
 *
 * The route label is the matched route pattern ("/v1/models/:id"), never the
 * raw path, so a client cannot blow up the label cardinality.
 */
import type { MiddlewareHandler } from 'hono';
import { matchedRoutes } from 'hono/route';
import type { EngineStats } from '../engine/types.ts';
import type { AppEnv } from './types.ts';

const DURATION_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120] as const;

interface Histogram {
  counts: number[]; // per bucket, not cumulative
  sum: number;
  count: number;
}

export class Metrics {
  private readonly requests = new Map<string, { route: string; status: string; value: number }>();
  private readonly durations = new Map<string, Histogram>();

  observe(route: string, status: number, seconds: number): void {
    const key = `${route}\0${status}`;
    const entry = this.requests.get(key) ?? { route, status: String(status), value: 0 };
    entry.value += 1;
    this.requests.set(key, entry);

    const h = this.durations.get(route) ?? { counts: DURATION_BUCKETS.map(() => 0), sum: 0, count: 0 };
    const bucket = DURATION_BUCKETS.findIndex((le) => seconds <= le);
    if (bucket >= 0) h.counts[bucket] = (h.counts[bucket] ?? 0) + 1;
    h.sum += seconds;
    h.count += 1;
    this.durations.set(route, h);
  }

  render(stats: EngineStats): string {
    const lines: string[] = [];
    const family = (name: string, type: string, help: string): void => {
      lines.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`);
    };

    family('braid_requests_total', 'counter', 'HTTP requests by matched route and status.');
    for (const r of this.requests.values()) {
      lines.push(`braid_requests_total{route="${escapeLabel(r.route)}",status="${r.status}"} ${r.value}`);
    }

    family('braid_request_duration_seconds', 'histogram', 'Request duration; streamed responses until their last event.');
    for (const [route, h] of this.durations) {
      const label = `route="${escapeLabel(route)}"`;
      let cumulative = 0;
      DURATION_BUCKETS.forEach((le, i) => {
        cumulative += h.counts[i] ?? 0;
        lines.push(`braid_request_duration_seconds_bucket{${label},le="${le}"} ${cumulative}`);
      });
      lines.push(`braid_request_duration_seconds_bucket{${label},le="+Inf"} ${h.count}`);
      lines.push(`braid_request_duration_seconds_sum{${label}} ${h.sum}`);
      lines.push(`braid_request_duration_seconds_count{${label}} ${h.count}`);
    }

    family('braid_prompt_tokens_total', 'counter', 'Prompt tokens evaluated.');
    lines.push(`braid_prompt_tokens_total ${stats.promptTokensTotal}`);
    family('braid_completion_tokens_total', 'counter', 'Completion tokens generated.');
    lines.push(`braid_completion_tokens_total ${stats.completionTokensTotal}`);
    family('braid_tokens_per_second', 'gauge', 'Completion tokens per second over the most recent generations.');
    lines.push(`braid_tokens_per_second ${stats.recentTokensPerSecond}`);
    family('braid_queue_depth', 'gauge', 'Generations waiting for a slot.');
    lines.push(`braid_queue_depth ${stats.queueDepth}`);
    family('braid_active_generations', 'gauge', 'Generations running now.');
    lines.push(`braid_active_generations ${stats.activeGenerations}`);
    family(
      'braid_ledger_obligations_total',
      'counter',
      'Debt-ledger obligations (open brackets, strings, fences) in constrained outputs: opened, closed, and closed under budget pressure (forced).',
    );
    for (const event of ['opened', 'closed', 'forced'] as const) {
      lines.push(`braid_ledger_obligations_total{event="${event}"} ${stats.ledger[event]}`);
    }
    family('braid_ledger_forced_steps_total', 'counter', 'Decode steps at which the budget removed otherwise legal tokens.');
    lines.push(`braid_ledger_forced_steps_total ${stats.ledger.forcedSteps}`);
    return `${lines.join('\n')}\n`;
  }
}

const escapeLabel = (v: string): string => v.replaceAll('\\', '\\\\').replaceAll('"', '\\"').replaceAll('\n', '\\n');

/** The pattern of the route that handled the request; middleware-only matches mean no route. */
function routeLabel(c: Parameters<MiddlewareHandler<AppEnv>>[0]): string {
  const routes = matchedRoutes(c);
  for (let i = routes.length - 1; i >= 0; i--) {
    const r = routes[i];
    if (r !== undefined && r.method !== 'ALL') return r.path;
  }
  return 'unmatched';
}

/** Counts and times every request; a streamed response is timed until it ends. */
export function metricsMiddleware(metrics: Metrics): MiddlewareHandler<AppEnv> {
  return async (c, next) => {
    const start = performance.now();
    await next();
    const route = routeLabel(c);
    const status = c.res.status;
    const done = c.get('streamDone');
    const record = (): void => metrics.observe(route, status, (performance.now() - start) / 1000);
    if (done === undefined) record();
    else void done.then(record);
  };
}
