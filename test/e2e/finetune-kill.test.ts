/**
 * `braid serve` in a child process, killed with SIGKILL while a job trains
 * (after its first checkpoints) and another waits in the queue, then started
 * again:
 *  - right after the kill, every record in the data dir verifies (checksums)
 *    and says what was true at the kill: the files, the running job, the
 *    queued one;
 *  - after the restart the running job resumes from its checkpoint and
 *    succeeds; its events say so (the step last reported before the kill,
 *    the checkpoint it resumes from), and its metrics list every step exactly
 *    once (the steps redone after the checkpoint replace the ones reported
 *    before the kill); the model is served and answers;
 *  - the queued job, whose base model file was removed while the server was
 *    down, fails with a message naming the model instead of vanishing;
 *  - no temp file is left anywhere in the data dir.
 */
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { copyFileSync, mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import OpenAI, { toFile } from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FileStore } from '../../engine/finetune/file-store.ts';
import { JobStore } from '../../engine/finetune/job-store.ts';
import { PACKAGE_ROOT } from '../../server/config.ts';
import { BASE_ID, braidOf, chatJsonl, finished, pollJob, writeTinyBase } from './finetune-helpers.ts';

const dir = mkdtempSync(path.join(tmpdir(), 'braid-ft-kill-'));
const dataDir = path.join(dir, 'data');
let basePath = '';
let otherPath = '';
let child: ChildProcessWithoutNullStreams | null = null;

/** Starts `braid serve` on the data dir; resolves with a client once it listens. */
async function serve(models: string[]): Promise<OpenAI> {
  const args = ['serve', '--port', '0', '--threads', '1', '--data-dir', dataDir, ...models.flatMap((m) => ['--model', m])];
  const c = spawn(process.execPath, [path.join(PACKAGE_ROOT, 'bin/braid.js'), ...args], { cwd: dir, env: { ...process.env, BRAID_API_KEY: '' } });
  child = c;
  let stderr = '';
  c.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const url = await new Promise<string>((resolve, reject) => {
    let out = '';
    c.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      const m = /listening on (http:\/\/\S+)/.exec(out);
      if (m?.[1]) resolve(m[1]);
    });
    c.on('exit', (code) => reject(new Error(`braid serve exited early (${code}): ${stderr}`)));
  });
  return new OpenAI({ baseURL: `${url}/v1`, apiKey: 'unused', maxRetries: 0, timeout: 30_000 });
}

function kill9(): Promise<void> {
  const c = child;
  if (c === null || c.exitCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    c.on('exit', () => resolve());
    c.kill('SIGKILL');
  });
}

function tempFiles(d: string): string[] {
  return readdirSync(d).flatMap((name) => {
    const p = path.join(d, name);
    if (statSync(p).isDirectory()) return tempFiles(p);
    return name.endsWith('.tmp') ? [p] : [];
  });
}

beforeAll(async () => {
  basePath = await writeTinyBase(dir);
  otherPath = path.join(dir, 'other-base.gguf');
  copyFileSync(await writeTinyBase(path.join(dir), 'other-base', 12), otherPath);
});

afterAll(async () => {
  await kill9();
  rmSync(dir, { recursive: true, force: true });
});

describe('kill -9 during a job', () => {
  it('leaves consistent state; the job resumes and succeeds, the other fails cleanly', async () => {
    let client = await serve([basePath, otherPath]);
    const file = await client.files.create({ file: await toFile(Buffer.from(chatJsonl(2)), 'train.jsonl'), purpose: 'fine-tune' });
    const params = {
      model: BASE_ID,
      training_file: file.id,
      hyperparameters: { n_epochs: 8, batch_size: 2, learning_rate_multiplier: 10 },
      braid: { sequence_length: 64, checkpoint_interval: 4 },
    } as OpenAI.FineTuning.JobCreateParams;
    const job = await client.fineTuning.jobs.create(params);
    const queued = await client.fineTuning.jobs.create({ model: 'other-base', training_file: file.id });

    // Kill once a checkpoint past the first exists and the run is not over.
    const running = await pollJob(client, job.id, (j) => {
      const b = braidOf(j);
      return j.status === 'running' && b.step >= 5 && b.total_steps !== null && b.step < b.total_steps - 3;
    }, 30_000);
    const total = braidOf(running).total_steps!;
    const beforeCheckpoints = (await client.fineTuning.jobs.checkpoints.list(job.id)).data.map((c) => c.step_number);
    expect(beforeCheckpoints.length).toBeGreaterThan(0);
    await kill9();

    // The data dir as the kill left it: every record verifies.
    const files = await FileStore.open(dataDir, (l) => expect.fail(l));
    expect(files.list().map((f) => f.id)).toEqual([file.id]);
    const jobs = await JobStore.open(dataDir, (l) => expect.fail(l));
    expect(jobs.get(job.id)?.status).toBe('running');
    expect(jobs.get(queued.id)?.status).toBe('queued');

    rmSync(otherPath);
    client = await serve([basePath]);
    const done = await pollJob(client, job.id, finished, 60_000);
    expect(done.error).toBeNull();
    expect(done.status).toBe('succeeded');
    expect(braidOf(done)).toMatchObject({ step: total, total_steps: total });

    const events = (await client.fineTuning.jobs.listEvents(job.id, { limit: 100 })).data.reverse();
    const messages = events.map((e) => e.message);
    expect(messages.some((m) => /server restarted during training/.test(m))).toBe(true);
    const resumed = messages.map((m) => /Resumed from the checkpoint at step (\d+)/.exec(m)?.[1]).find((s) => s !== undefined);
    expect(Number(resumed)).toBeGreaterThanOrEqual(Math.min(...beforeCheckpoints));
    // The restart names the step last reported before the kill and the checkpoint it resumes from.
    const restart = messages.map((m) => /last reported step (\d+)\); the job resumes from its newest checkpoint, at step (\d+)/.exec(m)).find((m) => m !== null);
    expect(restart).toBeDefined();
    expect(Number(restart![1])).toBeGreaterThanOrEqual(Number(restart![2]));
    expect(Number(restart![2])).toBe(Number(resumed));
    const steps = events.filter((e) => e.type === 'metrics' && 'train_loss' in (e.data as object)).map((e) => (e.data as { step: number }).step);
    expect(steps).toEqual(Array.from({ length: total }, (_, i) => i + 1));

    const model = `ft:${BASE_ID}::${job.id}`;
    expect(done.fine_tuned_model).toBe(model);
    const chat = await client.chat.completions.create({ model, messages: [{ role: 'user', content: 'What color is grass?' }], max_tokens: 6, temperature: 0 });
    expect(typeof chat.choices[0]!.message.content).toBe('string');

    const other = await pollJob(client, queued.id, finished, 30_000);
    expect(other.status).toBe('failed');
    expect(other.error).toMatchObject({ code: 'base_model_missing', param: 'model' });
    expect(other.error!.message).toContain("'other-base'"); // the model id, not a server path
    expect(other.error!.message).not.toContain(dir);

    expect((await client.files.list()).data.map((f) => f.id)).toEqual([file.id]);
    expect(tempFiles(dataDir)).toEqual([]);
  }, 90_000);
});
