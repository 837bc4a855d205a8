/**
 * The files and fine-tuning routes and the job lifecycle, through
 * app.request() with the training replaced by a scripted executor (no model,
 * no native code): the executor reports a plan and steps and waits for the
 * test between steps, so each state of a job can be observed.
 *  - uploads: multipart only, purpose and file required, bad JSONL is 400
 *    with line numbers; deleting a file an unfinished job uses is 409;
 *  - requests: 400 with the offending param, 404 for unknown ids;
 *  - validating_files → queued → running → succeeded, the model handed to the
 *    host; events newest first with pagination; metrics events;
 *  - cancel while running: cancelled wins over the run's end; 409 after;
 *  - shutdown while running: the job is queued again, resumes in a new
 *    instance on the same data dir, and succeeds;
 *  - a training error: failed with its code, message and param (a data
 *    file error; the trainer refusing a model it has no backward for);
 *  - a finished job's checkpoint files are deleted, their listing stays;
 *  - a fine-tune of a fine-tuned model is named after the root base.
 */
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { JobExecutor, ModelHost } from '../../engine/finetune/job-runner.ts';
import { FineTuning } from '../../engine/finetune/service.ts';
import { writeGguf } from '../../engine/gguf/writer.ts';
import { gv } from '../../engine/gguf/types.ts';
import { Status } from '../../engine/binding/native.ts';
import { NativeError } from '../../engine/errors.ts';
import { DataFileError } from '../../engine/training/data/index.ts';
import { createApp } from '../../server/app.ts';
import { defaultConfig } from '../../server/config.ts';
import { FakeEngine } from './fake-engine.ts';
import { errorOf } from './server-test-helpers.ts';
import { writeStandInCheckpoint } from '../helpers/finetune-records.ts';

const dir = mkdtempSync(path.join(tmpdir(), 'braid-ft-api-'));
const dataDir = path.join(dir, 'data');
const basePath = path.join(dir, 'base.gguf');
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Polls with a deadline: the runner acts on its own promise chain, after the request that triggered it returned. */
async function until(cond: () => boolean | Promise<boolean>, what: string): Promise<void> {
  const deadline = Date.now() + 5000;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for: ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 2));
  }
}

/** What the loop writes at a step: a real checkpoint file (a small stand-in state). */
const checkpointAt = (runDir: string, step: number): Promise<void> => writeStandInCheckpoint(runDir, step, 3, 4 - step);

const checkpointFiles = (id: string): string[] => {
  const d = path.join(dataDir, 'fine_tuning', id, 'run', 'checkpoints');
  return existsSync(d) ? readdirSync(d) : [];
};

/** Steps wait for release(); `fail` makes the run throw; the "model" file holds the id to serve. */
class Script {
  readonly steps = 3;
  fail: Error | null = null;
  private gate: (() => void) | null = null;
  atStep = 0;
  execute: JobExecutor = async (ctx) => {
    if (this.fail) throw this.fail;
    if (ctx.job.plan === null) {
      await ctx.report.plan({ total_steps: 3, warmup: 0, epoch_tokens: 100, tokens_per_step: 64, learning_rate: 3e-4, eval_interval: 0, checkpoint_interval: 1, config_hash: 'x' });
    }
    for (let s = ctx.job.step + 1; s <= this.steps; s++) {
      await new Promise<void>((resolve) => (this.gate = resolve));
      this.gate = null;
      if (ctx.signal.aborted) return { status: 'stopped', step: s - 1 };
      this.atStep = s;
      await checkpointAt(ctx.runDir, s);
      await ctx.report.step({ type: 'train', step: s, tokens: 64 * s, loss: 4 - s, grad_norm: 1, lr: 3e-4, tok_s: 1, phase: 'data', elapsed: 0 }, 3);
    }
    writeFileSync(ctx.outPath, ctx.job.output_model);
    return { status: 'completed', step: 3, tokens: 192 };
  };
  waiting(): boolean {
    return this.gate !== null;
  }
  release(): void {
    this.gate?.();
  }
}

const served: string[] = [];
const host: ModelHost = {
  stats: () => ({ activeGenerations: 0, queueDepth: 0 }),
  get: (id) =>
    id === 'base'
      ? { info: { id, path: basePath, architecture: 'chimera', contextLength: 4096 } }
      : id === 'metric'
        ? { info: { id, path: basePath, architecture: 'moa' } }
        : served.includes(id)
          ? { info: { id, path: basePath, architecture: 'chimera' } }
          : undefined,
  addModel: async (p) => {
    const id = readFileSync(p, 'utf8');
    served.push(id);
    return { info: { id } };
  },
};

async function open(script: Script) {
  const ft = await FineTuning.open({ dataDir, host, execute: script.execute, warn: (l) => expect.fail(l) });
  const app = createApp({ engine: new FakeEngine(), config: defaultConfig(), fineTuning: ft });
  const req = async (method: string, url: string, body?: unknown) => {
    const init: RequestInit = { method };
    if (body instanceof FormData) init.body = body;
    else if (body !== undefined) {
      init.body = JSON.stringify(body);
      init.headers = { 'content-type': 'application/json' };
    }
    return app.request(url, init);
  };
  const json = async (method: string, url: string, body?: unknown): Promise<Record<string, unknown>> => {
    const res = await req(method, url, body);
    if (res.status !== 200) throw new Error(`${method} ${url}: ${res.status} ${await res.text()}`);
    return (await res.json()) as Record<string, unknown>;
  };
  ft.start();
  return { ft, req, json };
}

const chat = (q: string, a: string): string => JSON.stringify({ messages: [{ role: 'user', content: q }, { role: 'assistant', content: a }] });
const form = (text: string, purpose: string | null = 'fine-tune', name = 'd.jsonl'): FormData => {
  const f = new FormData();
  if (purpose !== null) f.append('purpose', purpose);
  f.append('file', new Blob([text]), name);
  return f;
};

let script = new Script();
let api: Awaited<ReturnType<typeof open>>;
let fileId = '';

beforeAll(async () => {
  await writeGguf(basePath, { metadata: [['general.architecture', gv.str('chimera')]], tensors: [] });
  api = await open(script);
});

describe('files routes', () => {
  it('uploads chat JSONL and refuses what it cannot store', async () => {
    const f = await api.json('POST', '/v1/files', form(`${chat('a', 'b')}\n`));
    expect(f).toMatchObject({ object: 'file', purpose: 'fine-tune', filename: 'd.jsonl', status: 'processed' });
    fileId = String(f.id);
    const cases: [RequestInit['body'] | FormData | object, number, string | null, RegExp][] = [
      [{ purpose: 'fine-tune' }, 400, null, /multipart/],
      [form('x', null), 400, 'purpose', /Missing required parameter: 'purpose'/],
      [form('x', 'batch'), 400, 'purpose', /'fine-tune'/],
      [form(`${chat('a', 'b')}\n{"messages": 3}`), 400, 'file', /line 2: "messages" must be an array/],
      // Every reply weight 0: nothing to train on, refused here rather than failing the job later.
      [form(`${JSON.stringify({ messages: [{ role: 'user', content: 'a' }, { role: 'assistant', content: 'b', weight: 0 }] })}\n`), 400, 'file', /line 1: no assistant message with weight 1/],
    ];
    for (const [body, status, param, message] of cases) {
      const res = await api.req('POST', '/v1/files', body);
      expect(res.status).toBe(status);
      const e = await errorOf(res);
      expect(e.error.param).toBe(param);
      expect(e.error.message).toMatch(message);
    }
    expect((await api.json('GET', '/v1/files')).data).toHaveLength(1);
    expect((await api.req('GET', '/v1/files/file-000000000000000000000000')).status).toBe(404);
  });
});

describe('job routes and lifecycle', () => {
  it('refuses bad job requests with their param', async () => {
    const base = { model: 'base', training_file: fileId };
    const bad: [object, string][] = [
      [{ ...base, suffix: 'a:b' }, 'suffix'],
      [{ ...base, hyperparameters: { n_epochs: 2 }, method: { type: 'supervised', supervised: { hyperparameters: { n_epochs: 3 } } } }, 'hyperparameters'],
      [{ ...base, braid: { weights: 'adapter' } }, 'braid.weights'],
      [{ ...base, method: { type: 'reinforcement' } }, 'method.type'],
      [{ ...base, integrations: [{ type: 'wandb', wandb: { project: 'p' } }] }, 'integrations'],
      [{ ...base, validation_file: 'file-123' }, 'validation_file'],
      [{ model: 'base' }, 'training_file'],
      [{ ...base, model: 'metric' }, 'model'], // a MoA model: the trainer has no MoA backward
      [{ ...base, braid: { sequence_length: 8192 } }, 'braid.sequence_length'], // longer than the model's context (4096)
    ];
    for (const [body, param] of bad) {
      const res = await api.req('POST', '/v1/fine_tuning/jobs', body);
      expect(res.status, JSON.stringify(body)).toBe(400);
      expect((await errorOf(res)).error.param).toBe(param);
    }
    expect(api.ft.jobs.list().some((j) => j.model === 'metric')).toBe(false); // refused before a job record exists
    for (const url of ['/v1/fine_tuning/jobs/ftjob-000000000000000000000000', '/v1/fine_tuning/jobs/nope/events']) {
      const res = await api.req('GET', url);
      expect(res.status).toBe(404);
      expect((await errorOf(res)).error.type).toBe('invalid_request_error');
    }
  });

  it('runs a job through every status to succeeded', async () => {
    const job = await api.json('POST', '/v1/fine_tuning/jobs', { model: 'base', training_file: fileId, suffix: 'x', hyperparameters: { batch_size: 2 } });
    const id = String(job.id);
    expect(job).toMatchObject({ status: 'validating_files', fine_tuned_model: null, hyperparameters: { n_epochs: 3, batch_size: 2, learning_rate_multiplier: 1 } });
    expect(job.method).toEqual({ type: 'supervised', supervised: { hyperparameters: { n_epochs: 3, batch_size: 2, learning_rate_multiplier: 1 } } });
    await until(() => script.waiting(), 'the first step');
    expect((await api.json('GET', `/v1/fine_tuning/jobs/${id}`)).status).toBe('running');
    const del = await api.req('DELETE', `/v1/files/${fileId}`);
    expect(del.status).toBe(409);
    for (let s = 1; s <= 3; s++) {
      script.release();
      if (s < 3) await until(() => script.waiting() && script.atStep === s, `step ${s}`);
    }
    await until(async () => (await api.json('GET', `/v1/fine_tuning/jobs/${id}`)).status === 'succeeded', 'succeeded');
    const done = await api.json('GET', `/v1/fine_tuning/jobs/${id}`);
    expect(done).toMatchObject({ fine_tuned_model: `ft:base:x:${id}`, trained_tokens: 192, user_provided_suffix: 'x' });
    expect(served).toContain(`ft:base:x:${id}`);
    const page = await api.json('GET', `/v1/fine_tuning/jobs/${id}/events?limit=2`);
    const data = page.data as { message: string; type: string; data: Record<string, number> }[];
    expect(data.map((e) => e.message)).toEqual(['The job has successfully completed', `New fine-tuned model created: ft:base:x:${id}`]);
    expect(page.has_more).toBe(true);
    const all = (await api.json('GET', `/v1/fine_tuning/jobs/${id}/events?limit=100`)).data as typeof data;
    expect(all.filter((e) => e.type === 'metrics').map((e) => [e.data.step, e.data.train_loss])).toEqual([[3, 1], [2, 2], [1, 3]]);
    expect(all.at(-1)!.message).toBe(`Created fine-tuning job: ${id}`);
    // The checkpoint files go (a finished job never resumes); the listing still answers.
    await until(() => checkpointFiles(id).length === 0, 'checkpoint files deleted');
    const cps = (await api.json('GET', `/v1/fine_tuning/jobs/${id}/checkpoints`)).data as { step_number: number; metrics: Record<string, number> }[];
    expect(cps.map((c) => [c.step_number, c.metrics.train_loss])).toEqual([[3, 1], [2, 2]]);
  });

  it('a fine-tune of a fine-tuned model is named after the root base, and served under that id', async () => {
    const first = api.ft.jobs.list().find((j) => j.status === 'succeeded')!;
    const job = await api.json('POST', '/v1/fine_tuning/jobs', { model: first.output_model, training_file: fileId, suffix: 'second' });
    const id = String(job.id);
    expect(job).toMatchObject({ model: first.output_model, braid: { output_model: `ft:base:second:${id}` } });
    for (let s = 1; s <= 3; s++) {
      await until(() => script.waiting() && (s === 1 || script.atStep === s - 1), `step ${s}`);
      script.release();
    }
    await until(() => api.ft.jobs.get(id)?.status === 'succeeded', 'succeeded');
    expect((await api.json('GET', `/v1/fine_tuning/jobs/${id}`)).fine_tuned_model).toBe(`ft:base:second:${id}`);
    expect(host.get(`ft:base:second:${id}`)?.info.id).toBe(`ft:base:second:${id}`);
  });

  it('cancel while running: the job stays cancelled, a second cancel is 409', async () => {
    const job = await api.json('POST', '/v1/fine_tuning/jobs', { model: 'base', training_file: fileId });
    const id = String(job.id);
    await until(() => script.waiting(), 'the first step');
    expect((await api.json('POST', `/v1/fine_tuning/jobs/${id}/cancel`)).status).toBe('cancelled');
    script.release();
    await until(async () => ((await api.json('GET', `/v1/fine_tuning/jobs/${id}/events`)).data as { message: string }[]).some((e) => /Training stopped/.test(e.message)), 'stopped');
    expect((await api.json('GET', `/v1/fine_tuning/jobs/${id}`)).status).toBe('cancelled');
    await until(() => checkpointFiles(id).length === 0, 'checkpoint files deleted');
    const again = await api.req('POST', `/v1/fine_tuning/jobs/${id}/cancel`);
    expect(again.status).toBe(409);
    expect((await errorOf(again)).error.code).toBe('job_not_cancellable');
  });

  it('shutdown while running queues the job again; a new instance finishes it', async () => {
    const job = await api.json('POST', '/v1/fine_tuning/jobs', { model: 'base', training_file: fileId });
    const id = String(job.id);
    await until(() => script.waiting(), 'the first step');
    script.release();
    await until(() => script.waiting() && script.atStep === 1, 'step 1');
    const stopping = api.ft.stop();
    script.release();
    await stopping;
    expect(api.ft.jobs.get(id)).toMatchObject({ status: 'queued', step: 1 });
    expect(checkpointFiles(id)).toEqual(['ckpt-000000001.bin']); // kept: the job resumes from it
    script = new Script();
    api = await open(script);
    await until(() => script.waiting(), 'the resumed step');
    expect(script.atStep).toBe(0);
    script.release();
    await until(() => script.waiting() && script.atStep === 2, 'step 3');
    script.release();
    await until(() => api.ft.jobs.get(id)?.status === 'succeeded', 'succeeded after the restart');
    expect(api.ft.jobs.events(id).some((e) => /paused at step 1/.test(e.message))).toBe(true);
    await until(() => checkpointFiles(id).length === 0, 'checkpoint files deleted');
  });

  it('a training error fails the job with its reason', async () => {
    script.fail = new DataFileError('/x.jsonl', [{ line: 4, message: 'bad' }]);
    const job = await api.json('POST', '/v1/fine_tuning/jobs', { model: 'base', training_file: fileId });
    await until(() => api.ft.jobs.get(String(job.id))?.status === 'failed', 'failed');
    const failed = await api.json('GET', `/v1/fine_tuning/jobs/${String(job.id)}`);
    expect(failed.error).toMatchObject({ code: 'invalid_training_file', param: 'training_file' });
    expect((failed.error as { message: string }).message).toMatch(/line 4: bad/);
    expect((await api.json('GET', '/v1/fine_tuning/jobs?limit=2')).has_more).toBe(true);
    // What NativeTrainer.open throws for a model it has no backward for.
    script.fail = new NativeError('trainer: layer 1 is TM, which has no backward yet', Status.ERR_UNSUPPORTED);
    const tm = await api.json('POST', '/v1/fine_tuning/jobs', { model: 'base', training_file: fileId });
    await until(() => api.ft.jobs.get(String(tm.id))?.status === 'failed', 'failed');
    expect(api.ft.jobs.get(String(tm.id))?.error).toEqual({ code: 'unsupported_model', param: 'model', message: 'trainer: layer 1 is TM, which has no backward yet' });
    await api.ft.stop();
  });
});
