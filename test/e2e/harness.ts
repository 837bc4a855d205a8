/**
 * A real braid server for end-to-end tests: the real engine, the default
 * model (models/chimera-tiny.gguf), an ephemeral port on loopback, and a
 * fresh data dir in the OS temp dir (never ./data, whose queued fine-tuning
 * jobs a test server would otherwise pick up). One compute thread: the test
 * machines are shared.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { defaultConfig, PACKAGE_ROOT, type ServerConfig } from '../../server/config.ts';
import { startServer, type RunningServer } from '../../server/serve.ts';

export const MODEL_PATH = path.join(PACKAGE_ROOT, 'models', 'chimera-tiny.gguf');

export function startTestServer(overrides: Partial<ServerConfig> = {}): Promise<RunningServer> {
  const dataDir = mkdtempSync(path.join(tmpdir(), 'braid-e2e-data-'));
  return startServer(defaultConfig({ host: '127.0.0.1', port: 0, models: [MODEL_PATH], threads: 1, dataDir, ...overrides }));
}

/** logit_bias that bans every end-of-generation token, so a run lasts exactly max_tokens. */
export function banStops(server: RunningServer): Record<string, number> {
  const model = server.engine.models()[0];
  if (model === undefined) throw new Error('no model loaded');
  return Object.fromEntries([...model.tokenizer.stopIds].map((id) => [String(id), -100]));
}

/** Polls with a bounded deadline (effects that land on the server's event loop later). */
export async function until(cond: () => boolean | Promise<boolean>, what: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for: ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}
