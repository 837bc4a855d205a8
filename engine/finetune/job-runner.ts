/**
 * The life of a job: validating_files → queued → running → succeeded |
 * failed | cancelled. Jobs train one at a time, oldest first (training
 * uses every core the C thread pool has; two jobs would only take turns).
 *
 * Stopping the server aborts the running job: the loop finishes its step,
 * writes a checkpoint, and the job goes back to `queued`, to resume when the
 * server starts again. A job found `running` at start (the process was
 * killed) is queued again the same way. A job never ends up silently lost:
 * anything that stops it for good leaves it `failed` with the reason.
 *
 * A finished job never resumes, so its checkpoint files are deleted when it
 * finishes (their listing stays: JobStore.releaseCheckpoints); the exported
 * model is what remains.
 */
import { existsSync } from 'node:fs';
import { mkdir, rm } from 'node:fs/promises';
import { readGguf } from '../gguf/reader.ts';
import { metaOptString } from '../gguf/types.ts';
import { NativeError } from '../errors.ts';
import { Status } from '../binding/native.ts';
import { removeStaleTemps } from '../training/atomic-file.ts';
import { DataFileError } from '../training/data/index.ts';
import type { FileStore } from './file-store.ts';
import type { InferenceGate, InferenceLoad } from './gate.ts';
import { unixSeconds } from './ids.ts';
import type { JobStore } from './job-store.ts';
import { isFinished, type JobError, type JobRecord } from './job-types.ts';
import { modelFileName, modelPathIn, type TrainContext, type TrainOutcome } from './job-train.ts';

/** What jobs need of the engine: the load (gate.ts), base models by id, and serving a new model. */
export interface ModelHost extends InferenceLoad {
  get(id: string): { readonly info: { readonly id: string; readonly path: string; readonly architecture?: string; readonly contextLength?: number } } | undefined;
  addModel(path: string): Promise<{ readonly info: { readonly id: string } }>;
}

/** Trains one job (job-train.ts trainJob; unit tests pass a stand-in). */
export type JobExecutor = (ctx: TrainContext) => Promise<TrainOutcome>;

export interface RunnerOptions {
  store: JobStore;
  files: FileStore;
  host: ModelHost;
  gate: InferenceGate;
  modelsDir: string;
  execute: JobExecutor;
  warn: (line: string) => void;
}

/** A failure that already knows how the job shows it. */
class JobFailure extends Error {
  constructor(readonly error: JobError) {
    super(error.message);
  }
}

/** The error object a failed job shows, from what was thrown. */
export function jobError(err: unknown): JobError {
  if (err instanceof JobFailure) return err.error;
  const message = err instanceof Error ? err.message : String(err);
  if (err instanceof DataFileError) return { code: 'invalid_training_file', message, param: 'training_file' };
  if (err instanceof NativeError && err.status === Status.ERR_UNSUPPORTED) return { code: 'unsupported_model', message, param: 'model' };
  return { code: 'training_failed', message, param: null };
}

export class JobRunner {
  private current: { id: string; controller: AbortController } | null = null;
  private finishing: string | null = null;
  private wake: (() => void) | null = null;
  private stopped = false;
  private loop: Promise<void> | null = null;
  private readonly validations = new Set<Promise<void>>();

  constructor(private readonly o: RunnerOptions) {}

  start(): void {
    this.loop ??= this.work();
  }

  /** A job became queued. */
  notify(): void {
    this.wake?.();
  }

  /** True while a job that finished training is being exported and served: too late to cancel. */
  isFinishing(id: string): boolean {
    return this.finishing === id;
  }

  /** Stops the job's training if it is the one running (its status is the caller's business). */
  abort(id: string): void {
    if (this.current?.id === id) this.current.controller.abort();
  }

  /** Aborts the running job (it checkpoints and goes back to queued) and waits for everything to settle. */
  async stop(): Promise<void> {
    this.stopped = true;
    this.current?.controller.abort();
    this.notify();
    await this.loop;
    await Promise.allSettled([...this.validations]);
  }

  /** validating_files → queued: the files are still there and the base model can be read. Runs beside training. */
  validate(id: string): void {
    const p = this.checkFiles(id).finally(() => this.validations.delete(p));
    this.validations.add(p);
  }

  private async checkFiles(id: string): Promise<void> {
    const { store, files } = this.o;
    const job = store.get(id);
    if (job === undefined || job.status !== 'validating_files') return;
    await store.addEvent(id, 'info', `Validating training file: ${job.training_file}${job.validation_file ? ` and validation file: ${job.validation_file}` : ''}`);
    let error: JobError | null = null;
    for (const [param, fileId] of [['training_file', job.training_file], ['validation_file', job.validation_file]] as const) {
      if (fileId !== null && files.get(fileId) === undefined) error ??= { code: 'invalid_file', message: `The file ${fileId} has been deleted.`, param };
    }
    if (error === null) {
      try {
        const base = await readGguf(job.base_path);
        const arch = metaOptString(base.metadata, 'general.architecture');
        if (arch !== 'chimera') error = { code: 'unsupported_model', message: `Only Chimera models can be fine-tuned; ${job.model} is "${arch ?? 'unknown'}".`, param: 'model' };
      } catch (err) {
        error = { code: 'invalid_model', message: `The base model file cannot be read: ${err instanceof Error ? err.message : String(err)}`, param: 'model' };
      }
    }
    if (error !== null) {
      if (await store.transition(id, ['validating_files'], 'failed', { error, finished_at: unixSeconds() })) await store.addEvent(id, 'error', error.message);
      return;
    }
    if (await store.transition(id, ['validating_files'], 'queued')) {
      await store.addEvent(id, 'info', 'Files validated, moving job to queued state');
      this.notify();
    }
  }

  private nextQueued(): JobRecord | undefined {
    return this.o.store
      .list()
      .filter((j) => j.status === 'queued')
      .sort((a, b) => a.seq - b.seq)[0];
  }

  private async work(): Promise<void> {
    while (!this.stopped) {
      const job = this.nextQueued();
      if (job === undefined) {
        await new Promise<void>((resolve) => (this.wake = resolve));
        this.wake = null;
        continue;
      }
      try {
        await this.run(job);
      } catch (err) {
        // Only a failure to write the job's own files (disk full, permissions) gets here. Nothing
        // more can be recorded, so training stops; the jobs resume from disk at the next start.
        this.o.warn(`[braid] fine-tuning stopped: ${job.id}: ${err instanceof Error ? err.message : String(err)}`);
        this.stopped = true;
      }
    }
  }

  private async run(queued: JobRecord): Promise<void> {
    try {
      await this.train(queued);
    } finally {
      const status = this.o.store.get(queued.id)?.status;
      if (status !== undefined && isFinished(status)) await this.o.store.releaseCheckpoints(queued.id);
    }
  }

  private async train(queued: JobRecord): Promise<void> {
    const { store, files, host } = this.o;
    const id = queued.id;
    if (!(await store.transition(id, ['queued'], 'running', { started_at: queued.started_at ?? unixSeconds() }))) return;
    const controller = new AbortController();
    this.current = { id, controller };
    let outcome: TrainOutcome;
    let firstStep = true;
    const gateBefore = { waited: this.o.gate.waitedMs, forced: this.o.gate.forced };
    try {
      const job = store.get(id)!;
      const trainingPath = files.get(job.training_file) !== undefined ? files.contentPath(job.training_file) : null;
      if (trainingPath === null) throw new DataFileError(job.training_file, [{ line: 0, message: 'the training file has been deleted' }]);
      const validationPath = job.validation_file !== null && files.get(job.validation_file) !== undefined ? files.contentPath(job.validation_file) : null;
      if (job.validation_file !== null && validationPath === null) throw new DataFileError(job.validation_file, [{ line: 0, message: 'the validation file has been deleted' }]);
      if (!existsSync(job.base_path)) {
        // Named by id: the path is the server's business (it is under its data or model dirs).
        throw new JobFailure({ code: 'base_model_missing', message: `The file of the base model '${job.model}' no longer exists; the job cannot run.`, param: 'model' });
      }
      await mkdir(this.o.modelsDir, { recursive: true });
      outcome = await this.o.execute({
        job,
        runDir: store.runDir(id),
        trainingPath,
        validationPath,
        outPath: modelPathIn(this.o.modelsDir, id),
        gate: this.o.gate,
        signal: controller.signal,
        report: {
          plan: async (plan) => {
            await store.update(id, { plan });
            await store.addEvent(
              id,
              'info',
              `Fine-tuning job started: ${plan.total_steps} steps (${job.hyperparameters.n_epochs} epochs of ${plan.epoch_tokens} tokens), ` +
                `${job.hyperparameters.batch_size} × ${job.sequence_length} tokens per step, learning rate ${plan.learning_rate}`,
            );
          },
          step: async (r, total) => {
            if (firstStep) {
              firstStep = false;
              // Steps after the checkpoint were reported before the restart and are redone now.
              await store.pruneMetricsAfter(id, r.step - 1);
              if (r.step > 1) await store.addEvent(id, 'info', `Resumed from the checkpoint at step ${r.step - 1}.`);
            }
            store.note(id, { step: r.step, trained_tokens: r.tokens });
            await store.addEvent(id, 'info', `Step ${r.step}/${total}: training loss=${r.loss.toFixed(4)}`, {
              step: r.step,
              total_steps: total,
              train_loss: r.loss,
              learning_rate: r.lr,
              grad_norm: r.grad_norm,
              tokens: r.tokens,
            });
          },
          eval: async (step, loss, total) => {
            const seen = store.events(id).some((e) => e.data?.step === step && typeof e.data.valid_loss === 'number');
            if (!seen) await store.addEvent(id, 'info', `Step ${step}/${total}: validation loss=${loss.toFixed(4)}`, { step, total_steps: total, valid_loss: loss });
          },
          message: async (level, text) => {
            await store.addEvent(id, level, text);
          },
        },
      });
    } catch (err) {
      this.current = null;
      const error = jobError(err);
      if (await store.transition(id, ['running'], 'failed', { error, finished_at: unixSeconds() })) await store.addEvent(id, 'error', `Job failed: ${error.message}`);
      return;
    }
    this.current = null;
    const waited = ((this.o.gate.waitedMs - gateBefore.waited) / 1000).toFixed(1);
    await store.addEvent(id, 'info', `Yielded ${waited} s to inference requests (${this.o.gate.forced - gateBefore.forced} calls went ahead after the longest wait).`);

    if (outcome.status === 'stopped') {
      if (store.get(id)?.status === 'cancelled') {
        await store.addEvent(id, 'info', `Training stopped at step ${outcome.step}.`);
      } else if (await store.transition(id, ['running'], 'queued')) {
        await store.addEvent(id, 'info', `The server is stopping: paused at step ${outcome.step}; the job resumes from its checkpoint when the server starts again.`);
      }
      return;
    }
    if (store.get(id)?.status !== 'running') {
      // Cancelled while the last step ran: the cancel stands, and the exported file goes.
      await rm(modelPathIn(this.o.modelsDir, id), { force: true });
      return;
    }
    this.finishing = id;
    try {
      const job = store.get(id)!;
      const served = host.get(job.output_model) ?? (await host.addModel(modelPathIn(this.o.modelsDir, id)));
      if (served.info.id !== job.output_model) throw new Error(`the exported model is served as "${served.info.id}", expected "${job.output_model}"`);
      // Events first: a client that sees `succeeded` finds the whole story (cancel is refused while finishing).
      await store.addEvent(id, 'info', `New fine-tuned model created: ${job.output_model}`);
      await store.addEvent(id, 'info', 'The job has successfully completed');
      // Before the status too: a client that sees `succeeded` sees the disk it frees.
      await store.releaseCheckpoints(id);
      await store.transition(id, ['running'], 'succeeded', {
        finished_at: unixSeconds(),
        step: outcome.step,
        trained_tokens: outcome.tokens,
        model_file: modelFileName(id),
      });
    } catch (err) {
      const error: JobError = { code: 'model_load_failed', message: `The trained model could not be served: ${err instanceof Error ? err.message : String(err)}`, param: null };
      if (await store.transition(id, ['running'], 'failed', { error, finished_at: unixSeconds() })) await store.addEvent(id, 'error', error.message);
    } finally {
      this.finishing = null;
    }
  }

  /** At start: serve the models of succeeded jobs, requeue interrupted ones, validate pending ones. */
  async recover(): Promise<void> {
    const { store, modelsDir, host } = this.o;
    // An export cut by a crash leaves its temp file (the model itself is written again on resume).
    if (existsSync(modelsDir)) await removeStaleTemps(modelsDir);
    for (const job of store.list().reverse()) {
      // Jobs that finished before checkpoints were released, or just before a crash.
      if (isFinished(job.status)) await store.releaseCheckpoints(job.id);
      if (job.status === 'succeeded' && job.model_file !== null && host.get(job.output_model) === undefined) {
        await this.serveAgain(job);
      } else if (job.status === 'running') {
        await this.requeue(job);
      } else if (job.status === 'validating_files') {
        this.validate(job.id);
      }
    }
  }

  /**
   * A succeeded job's model, served again. If its file is gone or unreadable
   * the job stays `succeeded` and keeps naming its model (a finished job's
   * status never changes, as at OpenAI), and an error event says why the model
   * is not served (once, not at every start).
   */
  private async serveAgain(job: JobRecord): Promise<void> {
    const { store, host, modelsDir, warn } = this.o;
    const path = modelPathIn(modelsDir, job.id);
    const file = `models/${modelFileName(job.id)}`;
    try {
      if (!existsSync(path)) throw new Error(`${file} is missing`);
      await host.addModel(path);
    } catch (err) {
      const reason = (err instanceof Error ? err.message : String(err)).split(path).join(file);
      const message = `The fine-tuned model ${job.output_model} is not served: ${reason}`;
      warn(`[braid] fine-tuning: ${job.id}: ${message}`);
      if (store.events(job.id).at(-1)?.message !== message) await store.addEvent(job.id, 'error', message);
    }
  }

  /**
   * A job the process died under goes back to the queue. Its record's
   * progress is only written at status changes (JobStore.note), so it is set
   * here to what the resume starts from: the newest checkpoint.
   */
  private async requeue(job: JobRecord): Promise<void> {
    const { store } = this.o;
    let reported = job.step;
    for (const e of store.events(job.id)) if (typeof e.data?.train_loss === 'number' && typeof e.data.step === 'number') reported = e.data.step;
    const newest = (await store.checkpoints(job.id))[0];
    await store.transition(job.id, ['running'], 'queued', { step: newest?.step ?? 0, trained_tokens: newest?.tokens ?? null });
    const from = newest === undefined ? 'the start (there was no checkpoint yet)' : `its newest checkpoint, at step ${newest.step}`;
    await store.addEvent(job.id, 'warn', `The server restarted during training (last reported step ${reported}); the job resumes from ${from}.`);
  }
}
