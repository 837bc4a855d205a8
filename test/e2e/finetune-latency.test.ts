/**
 * Chat latency while a fine-tuning job trains in the same server (the yield
 * policy of engine/finetune/gate.ts), on the tiny base model:
 *  - short chat requests sent one after another (a client with a short
 *    pause between them) all succeed while the job runs, and their p95 stays
 *    within a loose bound of the idle p95 measured in the same test (the
 *    2× acceptance figure is measured by `npm run bench -- finetune` on the
 *    default model; this bound only catches a server that stops answering
 *    while it trains: shared CI machines are too noisy for a tight one);
 *  - the policy engaged: the job was held back while requests came in, and
 *    it goes on training once they stop.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import OpenAI, { toFile } from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunningServer } from '../../server/serve.ts';
import { startTestServer, until } from './harness.ts';
import { BASE_ID, chatJsonl, writeTinyBase } from './finetune-helpers.ts';

const dir = mkdtempSync(path.join(tmpdir(), 'braid-ft-latency-'));
let server: RunningServer;
let client: OpenAI;

beforeAll(async () => {
  const base = await writeTinyBase(dir);
  server = await startTestServer({ models: [base], dataDir: path.join(dir, 'data') });
  client = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: 'unused', maxRetries: 0, timeout: 30_000 });
});

afterAll(async () => {
  await server?.close();
  rmSync(dir, { recursive: true, force: true });
});

const p95 = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.ceil(0.95 * xs.length) - 1]!;

async function latencies(n: number): Promise<number[]> {
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    const t0 = performance.now();
    const r = await client.chat.completions.create({ model: BASE_ID, messages: [{ role: 'user', content: `Question ${i}?` }], max_tokens: 8, temperature: 0 });
    out.push(performance.now() - t0);
    expect(r.choices[0]!.message.content).toBeTypeOf('string');
    // A client that reads the answer and asks again at once (well inside the policy's quiet time).
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  return out;
}

describe('chat while a job trains', () => {
  it('keeps answering at close to idle latency, and the job yields then resumes', async () => {
    await latencies(3); // warm-up
    const idle = await latencies(30);

    const file = await client.files.create({ file: await toFile(Buffer.from(chatJsonl(2)), 'train.jsonl'), purpose: 'fine-tune' });
    const job = await client.fineTuning.jobs.create({
      model: BASE_ID,
      training_file: file.id,
      hyperparameters: { n_epochs: 100, batch_size: 2 },
      braid: { sequence_length: 64 },
    } as OpenAI.FineTuning.JobCreateParams);
    const ft = server.fineTuning;
    await until(() => (ft.jobs.get(job.id)?.step ?? 0) >= 2, 'the job to take two steps', 30_000);

    const heldBefore = ft.gate.waitedMs;
    const during = await latencies(30);
    expect(ft.jobs.get(job.id)?.status).toBe('running');
    expect(ft.gate.waitedMs - heldBefore).toBeGreaterThan(500);
    expect(p95(during)).toBeLessThan(3 * p95(idle) + 100);

    const step = ft.jobs.get(job.id)!.step;
    await until(() => ft.jobs.get(job.id)!.step > step + 1, 'the job to train again once requests stop', 30_000);
    expect((await client.fineTuning.jobs.cancel(job.id)).status).toBe('cancelled');
  }, 60_000);
});
