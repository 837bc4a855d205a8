/**
 * Binds the app to a socket: loads the engine, starts @hono/node-server on
 * the configured host/port (0 = ephemeral; the real port is reported) and
 * returns a handle whose close() drains connections and frees the engine.
 */
import type { AddressInfo } from 'node:net';
import type { Server } from 'node:http';
import { serve } from '@hono/node-server';
import { createEngine } from '../engine/engine.ts';
import { FineTuning } from '../engine/finetune/service.ts';
import type { Engine } from '../engine/types.ts';
import { createApp } from './app.ts';
import type { ServerConfig } from './config.ts';

export interface RunningServer {
  url: string;
  port: number;
  engine: Engine;
  /** Uploaded files and fine-tuning jobs in config.dataDir. */
  fineTuning: FineTuning;
  /** Stops accepting, gives open requests graceMs to finish, then cuts them and disposes the engine. */
  close(graceMs?: number): Promise<void>;
}

export async function startServer(config: ServerConfig): Promise<RunningServer> {
  const engine = await createEngine({
    models: config.models,
    ...(config.threads !== undefined ? { threads: config.threads } : {}),
    ...(config.slots !== undefined ? { slots: config.slots } : {}),
    ...(config.maxQueue !== undefined ? { maxQueue: config.maxQueue } : {}),
  });
  let server: Server;
  let fineTuning: FineTuning;
  try {
    // Serves the models of succeeded jobs and queues again the jobs a previous process left running.
    fineTuning = await FineTuning.open({ dataDir: config.dataDir, host: engine });
    const app = createApp({ engine, config, fineTuning });
    server = await new Promise<Server>((resolve, reject) => {
      // serve() creates a node:http Server unless told to use http2/https; we never do.
      const s = serve({ fetch: app.fetch, hostname: config.host, port: config.port }, () => resolve(s)) as Server;
      s.once('error', reject);
    });
  } catch (err) {
    await engine.dispose();
    throw err;
  }
  fineTuning.start();
  const port = (server.address() as AddressInfo).port;
  const host = config.host.includes(':') ? `[${config.host}]` : config.host;

  let closing: Promise<void> | undefined;
  const close = (graceMs = 5000): Promise<void> => {
    closing ??= (async () => {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeIdleConnections();
      const timer = setTimeout(() => server.closeAllConnections(), graceMs);
      timer.unref();
      await closed;
      clearTimeout(timer);
      // The running job checkpoints and is queued again before the engine goes away.
      await fineTuning.stop();
      await engine.dispose();
    })();
    return closing;
  };
  return { url: `http://${host}:${port}`, port, engine, fineTuning, close };
}
