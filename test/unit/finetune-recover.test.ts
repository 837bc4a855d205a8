/**
 * What the fine-tuning service does at start with the data dir a previous
 * process left (FineTuning.open → JobRunner.recover), on records written
 * directly (no model, no native code):
 *  - a job killed while running: queued again with its progress set to the
 *    newest checkpoint's (the record only had what its last write held);
 *  - a succeeded job whose model file is gone or damaged: still succeeded,
 *    an error event (once) says why its model is not served, naming no
 *    absolute path;
 *  - finished jobs that still hold checkpoint files: the files go, the
 *    listing stays;
 *  - a queued job whose base model file is gone fails naming the model id.
 */
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { FileStore } from '../../engine/finetune/file-store.ts';
import { newId } from '../../engine/finetune/ids.ts';
import type { JobExecutor, ModelHost } from '../../engine/finetune/job-runner.ts';
import { JobStore } from '../../engine/finetune/job-store.ts';
import type { JobRecord } from '../../engine/finetune/job-types.ts';
import { FineTuning } from '../../engine/finetune/service.ts';
import { runDirPaths } from '../../engine/training/train-loop.ts';
import { jobObject } from '../../server/routes/fine-tuning.ts';
import { jobRecord, writeStandInCheckpoint } from '../helpers/finetune-records.ts';

const root = mkdtempSync(path.join(tmpdir(), 'braid-ft-recover-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));
let n = 0;
const freshDataDir = (): string => path.join(root, `data${n++}`);

/** Serves a "model" file whose content is its id; anything else does not load (and says where it looked). */
function hostFor(): ModelHost & { served: string[] } {
  const served: string[] = [];
  return {
    served,
    stats: () => ({ activeGenerations: 0, queueDepth: 0 }),
    get: (id) => (served.includes(id) ? { info: { id, path: '' } } : undefined),
    addModel: async (p) => {
      const id = await readFile(p, 'utf8');
      if (!id.startsWith('ft:')) throw new Error(`${p}: not a GGUF file`);
      served.push(id);
      return { info: { id } };
    },
  };
}

const never: JobExecutor = () => new Promise(() => undefined);

function record(status: JobRecord['status'], patch: Partial<JobRecord> = {}): JobRecord {
  return jobRecord({
    id: newId('ftjob'),
    seq: n++,
    created_at: 1,
    model: 'base',
    base_path: path.join(root, 'base.gguf'),
    status,
    started_at: 1,
    checkpoint_interval: 2,
    plan: { total_steps: 6, warmup: 0, epoch_tokens: 384, tokens_per_step: 64, learning_rate: 3e-4, eval_interval: 0, checkpoint_interval: 2, config_hash: 'x' },
    ...patch,
  });
}

const checkpointAt = (runDir: string, step: number): Promise<void> => writeStandInCheckpoint(runDir, step, 6, 5 - step / 2, 1);

const filesIn = (d: string): string[] => (existsSync(d) ? readdirSync(d) : []);

describe('recovery at start', () => {
  it('a job killed while running is queued with the progress of its newest checkpoint', async () => {
    const dataDir = freshDataDir();
    const store = await JobStore.open(dataDir);
    const job = await store.create(record('running'));
    // Steps 1–5 reported (events are written through), checkpoints at 2 and 4; the record was last written at step 0.
    for (let s = 1; s <= 5; s++) {
      await store.addEvent(job.id, 'info', `Step ${s}/6`, { step: s, total_steps: 6, train_loss: 5 - s / 2, learning_rate: 3e-4, grad_norm: 1, tokens: 64 * s });
      if (s % 2 === 0) await checkpointAt(store.runDir(job.id), s);
    }
    const ft = await FineTuning.open({ dataDir, host: hostFor(), execute: never, warn: (l) => expect.fail(l) });
    expect(ft.jobs.get(job.id)).toMatchObject({ status: 'queued', step: 4, trained_tokens: 256 });
    expect(jobObject(ft.jobs.get(job.id)!)).toMatchObject({ trained_tokens: 256, braid: { step: 4 } });
    expect(ft.jobs.events(job.id).at(-1)).toMatchObject({
      level: 'warn',
      message: 'The server restarted during training (last reported step 5); the job resumes from its newest checkpoint, at step 4.',
    });
    // Persisted, not just in memory.
    expect((await JobStore.open(dataDir)).get(job.id)).toMatchObject({ step: 4, trained_tokens: 256 });
  });

  it('a succeeded job whose model file is gone or damaged stays succeeded; an error event says why, once', async () => {
    const dataDir = freshDataDir();
    const store = await JobStore.open(dataDir);
    const gone = await store.create(record('succeeded', { model_file: 'x.gguf', step: 6, trained_tokens: 384 }));
    const bad = await store.create(record('succeeded', { model_file: 'y.gguf', step: 6, trained_tokens: 384 }));
    const good = await store.create(record('succeeded', { model_file: 'z.gguf', step: 6, trained_tokens: 384 }));
    mkdirSync(path.join(dataDir, 'models'), { recursive: true });
    writeFileSync(path.join(dataDir, 'models', `${bad.id}.gguf`), 'GGU'); // truncated
    writeFileSync(path.join(dataDir, 'models', `${good.id}.gguf`), good.output_model);
    const warnings: string[] = [];
    const host = hostFor();
    const ft = await FineTuning.open({ dataDir, host, execute: never, warn: (l) => warnings.push(l) });
    expect(host.served).toEqual([good.output_model]);
    for (const [job, why] of [[gone, `models/${gone.id}.gguf is missing`], [bad, `models/${bad.id}.gguf: not a GGUF file`]] as const) {
      expect(jobObject(ft.jobs.get(job.id)!)).toMatchObject({ status: 'succeeded', fine_tuned_model: job.output_model, error: null });
      const last = ft.jobs.events(job.id).at(-1)!;
      expect(last).toMatchObject({ level: 'error', message: `The fine-tuned model ${job.output_model} is not served: ${why}` });
      expect(last.message).not.toContain(root);
    }
    expect(warnings).toHaveLength(2);
    expect(ft.jobs.events(good.id)).toEqual([]);
    // A second start reports it again in the log, not again as an event.
    const again = await FineTuning.open({ dataDir, host: hostFor(), execute: never, warn: () => undefined });
    expect(again.jobs.events(gone.id).filter((e) => e.level === 'error')).toHaveLength(1);
  });

  it('finished jobs lose their checkpoint files and keep the listing', async () => {
    const dataDir = freshDataDir();
    const store = await JobStore.open(dataDir);
    const failed = await store.create(record('failed', { error: { code: 'training_failed', message: 'x', param: null }, step: 4 }));
    const queued = await store.create(record('queued', { step: 4 }));
    for (const job of [failed, queued]) for (const s of [2, 4]) await checkpointAt(store.runDir(job.id), s);
    const ft = await FineTuning.open({ dataDir, host: hostFor(), execute: never, warn: (l) => expect.fail(l) });
    expect(filesIn(runDirPaths(store.runDir(failed.id)).checkpoints)).toEqual([]);
    expect((await ft.jobs.checkpoints(failed.id)).map((c) => [c.step, c.trainLoss, c.tokens])).toEqual([[4, 3, 256], [2, 4, 128]]);
    // An unfinished job resumes from them: they stay until it finishes (here: cancelled while queued).
    expect(filesIn(runDirPaths(store.runDir(queued.id)).checkpoints)).toEqual(['ckpt-000000002.bin', 'ckpt-000000004.bin']);
    expect((await ft.cancelJob(queued.id)).ok).toBe(true);
    expect(filesIn(runDirPaths(store.runDir(queued.id)).checkpoints)).toEqual([]);
    expect((await ft.jobs.checkpoints(queued.id)).map((c) => c.step)).toEqual([4, 2]);
  });

  it('a queued job whose base model file is gone fails naming the model, not the file', async () => {
    const dataDir = freshDataDir();
    const files = await FileStore.open(dataDir);
    const file = await files.create('d.jsonl', Buffer.from(`${JSON.stringify({ messages: [{ role: 'user', content: 'a' }, { role: 'assistant', content: 'b' }] })}\n`), 'fine-tune');
    const store = await JobStore.open(dataDir);
    const job = await store.create(record('queued', { training_file: file.id, base_path: path.join(root, 'removed', 'base.gguf') }));
    const ft = await FineTuning.open({ dataDir, host: hostFor(), execute: never, warn: (l) => expect.fail(l) });
    ft.start();
    const deadline = Date.now() + 5000;
    while (ft.jobs.get(job.id)?.status !== 'failed' && Date.now() < deadline) await new Promise((r) => setTimeout(r, 2));
    await ft.stop();
    const error = ft.jobs.get(job.id)?.error;
    expect(error).toMatchObject({ code: 'base_model_missing', param: 'model' });
    expect(error?.message).toBe("The file of the base model 'base' no longer exists; the job cannot run.");
  });
});
