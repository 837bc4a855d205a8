/**
 * Fine-tuning through the official `openai` SDK against a real server (real
 * engine, native trainer) on a tiny random base model:
 *  - files: a bad chat JSONL is refused with line-numbered errors; a good one
 *    is stored, listed, retrieved and read back byte for byte; unknown and
 *    path-like ids are 404;
 *  - a job runs to `succeeded`; its events carry per-step training loss and
 *    validation losses that fall from the base model's; the trained model's
 *    loss on the training data is lower than the base model's (measured here
 *    with the native trainer, independently of the job's own figures);
 *  - the model is listed as ft:<base>:<suffix>:<job id>, answers chat, and
 *    survives a restart of the server;
 *  - list pagination, cancel (and 409 on a finished job), checkpoints, a
 *    MeZO job (braid extension), and the request errors of the API.
 */
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import OpenAI, { BadRequestError, ConflictError, NotFoundError, toFile } from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunningServer } from '../../server/serve.ts';
import { startTestServer } from './harness.ts';
import { BASE_ID, braidOf, chatJsonl, chatLoss, finished, pollJob, writeTinyBase } from './finetune-helpers.ts';

const dir = mkdtempSync(path.join(tmpdir(), 'braid-ft-sdk-'));
const dataDir = path.join(dir, 'data');
const trainText = chatJsonl(2);
let basePath = '';
let server: RunningServer;
let client: OpenAI;

async function start(): Promise<void> {
  server = await startTestServer({ models: [basePath], dataDir });
  client = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: 'unused', maxRetries: 0, timeout: 60_000 });
}

beforeAll(async () => {
  basePath = await writeTinyBase(dir);
  writeFileSync(path.join(dir, 'train.jsonl'), trainText);
  await start();
});

afterAll(async () => {
  await server?.close();
  rmSync(dir, { recursive: true, force: true });
});

let trainingFile = '';
let validationFile = '';
let jobId = '';

describe('files', () => {
  it('refuses a bad chat JSONL with line-numbered errors', async () => {
    const bad = [
      JSON.stringify({ messages: [{ role: 'user', content: 'hi' }, { role: 'assistant', content: 'hello' }] }),
      '{"messages": [',
      JSON.stringify({ messages: [{ role: 'user', content: 'no reply' }] }),
      JSON.stringify({ messages: [{ role: 'robot', content: 'x' }, { role: 'assistant', content: 'y' }] }),
    ].join('\n');
    const err = await client.files.create({ file: await toFile(Buffer.from(bad), 'bad.jsonl'), purpose: 'fine-tune' }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(BadRequestError);
    const e = err as BadRequestError;
    expect(e.status).toBe(400);
    expect(e.param).toBe('file');
    expect(e.message).toMatch(/line 2: invalid JSON/);
    expect(e.message).toMatch(/line 3: no assistant message/);
    expect(e.message).toMatch(/line 4: messages\[0\]\.role must be one of/);
    expect(e.message).not.toMatch(/line 1:/);
    expect((await client.files.list()).data).toHaveLength(0);
  });

  it('stores, lists, retrieves and returns a good file', async () => {
    const f = await client.files.create({ file: await toFile(Buffer.from(trainText), 'train.jsonl'), purpose: 'fine-tune' });
    expect(f).toMatchObject({ object: 'file', purpose: 'fine-tune', status: 'processed', filename: 'train.jsonl', bytes: Buffer.byteLength(trainText) });
    expect(f.id).toMatch(/^file-[0-9a-f]{24}$/);
    trainingFile = f.id;
    const v = await client.files.create({ file: await toFile(Buffer.from(chatJsonl(1)), 'valid.jsonl'), purpose: 'fine-tune' });
    validationFile = v.id;
    expect((await client.files.list()).data.map((x) => x.id)).toEqual([v.id, f.id]);
    expect(await client.files.retrieve(f.id)).toMatchObject({ id: f.id, bytes: f.bytes });
    expect(await (await client.files.content(f.id)).text()).toBe(trainText);
  });

  it('404 for unknown or path-like ids, 400 for other purposes', async () => {
    await expect(client.files.retrieve('file-000000000000000000000000')).rejects.toBeInstanceOf(NotFoundError);
    const raw = await fetch(`${server.url}/v1/files/..%2F..%2Fetc%2Fpasswd/content`);
    expect(raw.status).toBe(404);
    await expect(client.files.create({ file: await toFile(Buffer.from(trainText), 'a.jsonl'), purpose: 'assistants' })).rejects.toMatchObject({
      status: 400,
      param: 'purpose',
    });
  });
});

describe('fine-tuning jobs', () => {
  it('rejects bad requests with the offending param', async () => {
    const base = { model: BASE_ID, training_file: trainingFile };
    await expect(client.fineTuning.jobs.create({ ...base, model: 'nope' })).rejects.toMatchObject({ status: 400, param: 'model' });
    await expect(client.fineTuning.jobs.create({ ...base, training_file: 'file-ffffffffffffffffffffffff' })).rejects.toMatchObject({ status: 400, param: 'training_file' });
    await expect(client.fineTuning.jobs.create({ ...base, hyperparameters: { n_epochs: 0 } })).rejects.toMatchObject({ status: 400, param: 'hyperparameters.n_epochs' });
    await expect(client.fineTuning.jobs.create({ ...base, method: { type: 'dpo' } })).rejects.toMatchObject({ status: 400, param: 'method.type' });
    const adapter = { ...base, braid: { weights: 'adapter' } } as OpenAI.FineTuning.JobCreateParams;
    await expect(client.fineTuning.jobs.create(adapter)).rejects.toMatchObject({ status: 400, param: 'braid.weights' });
    await expect(client.fineTuning.jobs.retrieve('ftjob-000000000000000000000000')).rejects.toBeInstanceOf(NotFoundError);
    expect((await client.fineTuning.jobs.list()).data).toHaveLength(0);
  });

  it('runs a job to succeeded; the model learned the data', async () => {
    const params = {
      model: BASE_ID,
      training_file: trainingFile,
      validation_file: validationFile,
      suffix: 'tiny',
      seed: 7,
      method: { type: 'supervised', supervised: { hyperparameters: { n_epochs: 12, batch_size: 2, learning_rate_multiplier: 10 } } },
      braid: { sequence_length: 64, checkpoint_interval: 10 },
    } as OpenAI.FineTuning.JobCreateParams;
    const created = await client.fineTuning.jobs.create(params);
    jobId = created.id;
    expect(created).toMatchObject({ object: 'fine_tuning.job', model: BASE_ID, status: 'validating_files', seed: 7, fine_tuned_model: null });
    expect(created.hyperparameters).toEqual({ n_epochs: 12, batch_size: 2, learning_rate_multiplier: 10 });

    const job = await pollJob(client, jobId, finished);
    expect(job.error).toBeNull();
    expect(job.status).toBe('succeeded');
    expect(job.fine_tuned_model).toBe(`ft:${BASE_ID}:tiny:${jobId}`);
    const total = braidOf(job).total_steps!;
    expect(total).toBeGreaterThan(10);
    expect(job.trained_tokens).toBe(total * 2 * 64);

    const events: OpenAI.FineTuning.Jobs.FineTuningJobEvent[] = [];
    for await (const e of client.fineTuning.jobs.listEvents(jobId, { limit: 7 })) events.push(e);
    const messages = events.map((e) => e.message);
    expect(messages).toContain('The job has successfully completed');
    expect(messages.at(-1)).toBe(`Created fine-tuning job: ${jobId}`); // newest first
    const data = (e: (typeof events)[number]) => e.data as Record<string, number>;
    const steps = events.filter((e) => e.type === 'metrics' && 'train_loss' in data(e)).map((e) => data(e).step);
    expect(steps.reverse()).toEqual(Array.from({ length: total }, (_, i) => i + 1));
    const valid = events.filter((e) => e.type === 'metrics' && 'valid_loss' in data(e)).reverse();
    expect(valid[0] && data(valid[0]).step).toBe(0);
    expect(data(valid.at(-1)!).step).toBe(total);
    expect(data(valid.at(-1)!).valid_loss).toBeLessThan(data(valid[0]!).valid_loss!);

    const ftPath = path.join(dataDir, 'models', `${jobId}.gguf`);
    const [baseLoss, ftLoss] = [await chatLoss(basePath, path.join(dir, 'train.jsonl')), await chatLoss(ftPath, path.join(dir, 'train.jsonl'))];
    expect(ftLoss).toBeLessThan(baseLoss - 0.5);

    // The checkpoint files went when the job succeeded; their listing stays.
    expect(readdirSync(path.join(dataDir, 'fine_tuning', jobId, 'run')).includes('checkpoints')).toBe(false);
    const cps = await client.fineTuning.jobs.checkpoints.list(jobId);
    expect(cps.data.map((c) => c.step_number)).toEqual([total, 10 * Math.floor((total - 1) / 10)]);
    expect(cps.data[0]).toMatchObject({ object: 'fine_tuning.job.checkpoint', fine_tuning_job_id: jobId });
  });

  it('serves the model on every endpoint', async () => {
    const id = `ft:${BASE_ID}:tiny:${jobId}`;
    expect((await client.models.list()).data.map((m) => m.id)).toContain(id);
    const chat = await client.chat.completions.create({ model: id, messages: [{ role: 'user', content: 'What color is the sky?' }], max_tokens: 8, temperature: 0 });
    expect(chat.model).toBe(id);
    expect(typeof chat.choices[0]!.message.content).toBe('string');
    const done = await client.completions.create({ model: id, prompt: 'The sky', max_tokens: 4, temperature: 0 });
    expect(done.choices[0]!.text.length).toBeGreaterThanOrEqual(0);
    const emb = await client.embeddings.create({ model: id, input: 'hello' });
    expect(emb.data[0]!.embedding).toHaveLength(128);
  });

  it('cancel: an unfinished job stops, a finished one is 409; pagination', async () => {
    const job = await client.fineTuning.jobs.create({ model: BASE_ID, training_file: trainingFile, hyperparameters: { n_epochs: 100 } });
    const cancelled = await client.fineTuning.jobs.cancel(job.id);
    expect(cancelled.status).toBe('cancelled');
    await expect(client.fineTuning.jobs.cancel(job.id)).rejects.toBeInstanceOf(ConflictError);
    await expect(client.fineTuning.jobs.cancel(jobId)).rejects.toMatchObject({ status: 409 });
    const first = await client.fineTuning.jobs.list({ limit: 1 });
    expect(first.data.map((j) => j.id)).toEqual([job.id]);
    expect(first.hasNextPage()).toBe(true);
    const second = await first.getNextPage();
    expect(second.data.map((j) => j.id)).toEqual([jobId]);
    // A cancelled job's files may go; files of a finished job too.
    expect(await client.files.delete(validationFile)).toMatchObject({ id: validationFile, deleted: true });
    await expect(client.files.content(validationFile)).rejects.toBeInstanceOf(NotFoundError);
  });

  it('method mezo (braid): forward-only steps through the same job machinery', async () => {
    const params = {
      model: BASE_ID,
      training_file: trainingFile,
      suffix: 'mezo',
      method: { type: 'mezo', mezo: { hyperparameters: { n_epochs: 2, batch_size: 2, learning_rate_multiplier: 10, epsilon: 1e-3 } } },
      braid: { sequence_length: 64 },
    } as unknown as OpenAI.FineTuning.JobCreateParams;
    const job = await client.fineTuning.jobs.create(params);
    expect(job.method).toEqual({ type: 'mezo', mezo: { hyperparameters: { n_epochs: 2, batch_size: 2, learning_rate_multiplier: 10, epsilon: 1e-3, sparsity: 0 } } });
    const done = await pollJob(client, job.id, finished);
    expect(done.error).toBeNull();
    expect(done.fine_tuned_model).toBe(`ft:${BASE_ID}:mezo:${job.id}`);
    const metrics = (await client.fineTuning.jobs.listEvents(job.id, { limit: 100 })).data
      .filter((e) => e.type === 'metrics')
      .map((e) => e.data as { train_loss: number; grad_norm: number });
    expect(metrics).toHaveLength(braidOf(done).total_steps!);
    for (const m of metrics) {
      expect(m.grad_norm).toBe(0);
      expect(Number.isFinite(m.train_loss)).toBe(true);
    }
  });

  it('the model and the jobs survive a restart', async () => {
    await server.close();
    await start();
    const id = `ft:${BASE_ID}:tiny:${jobId}`;
    expect((await client.models.retrieve(id)).id).toBe(id);
    const job = await client.fineTuning.jobs.retrieve(jobId);
    expect(job.status).toBe('succeeded');
    const chat = await client.chat.completions.create({ model: id, messages: [{ role: 'user', content: 'What do cats say?' }], max_tokens: 6, temperature: 0 });
    expect(chat.choices[0]!.finish_reason).toMatch(/stop|length/);
    expect((await client.fineTuning.jobs.list()).data).toHaveLength(3);
  });
});
