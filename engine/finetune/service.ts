/**
 * Fine-tuning as the HTTP layer sees it: the file store, the job store, the
 * runner, and the rules for creating and cancelling jobs. Plain typed values
 * in and out; request-level mistakes are InvalidRequestError (400 with a
 * param), and outcomes the HTTP layer renders differently (unknown id, a
 * finished job) come back as values, not exceptions.
 *
 * The data dir (docs/api.md, "Data dir"):
 *   files/        uploads (file-store.ts)
 *   fine_tuning/  jobs, their events and training runs (job-store.ts)
 *   models/       the fine-tuned models, <job id>.gguf
 */
import { join } from 'node:path';
import { randomInt } from 'node:crypto';
import { InvalidRequestError } from '../errors.ts';
import { FileStore } from './file-store.ts';
import { InferenceGate, type GateOptions } from './gate.ts';
import { newId, rootModelId, unixSeconds } from './ids.ts';
import { JobRunner, type JobExecutor, type ModelHost } from './job-runner.ts';
import { JobStore } from './job-store.ts';
import { isFinished, type JobMethod, type JobRecord } from './job-types.ts';
import { workerExecutor } from './worker-executor.ts';

type Auto<T> = T | 'auto';

export interface CreateJobInput {
  model: string;
  trainingFile: string;
  validationFile: string | null;
  hyperparameters: { n_epochs: Auto<number>; batch_size: Auto<number>; learning_rate_multiplier: Auto<number> };
  method: { type: 'supervised' } | { type: 'mezo'; epsilon: number | null; sparsity: number | null };
  seed: number | null;
  suffix: string | null;
  metadata: Record<string, string> | null;
  /** braid extensions (null: the defaults below). */
  sequenceLength: number | null;
  evalInterval: number | null;
  checkpointInterval: number | null;
}

/** What "auto" means (fixed rather than sized from the data, so a job's settings are known at creation). */
export const AUTO = { n_epochs: 3, batch_size: 4, learning_rate_multiplier: 1, sequence_length: 128 } as const;
export const MEZO_DEFAULTS = { epsilon: 1e-3, sparsity: 0 } as const;

export type CancelResult = { ok: true; job: JobRecord } | { ok: false; reason: 'not_found' | 'finished' | 'finishing'; job: JobRecord | null };
export type DeleteFileResult = { ok: true } | { ok: false; reason: 'not_found' } | { ok: false; reason: 'in_use'; job: string };

export interface FineTuningOptions {
  dataDir: string;
  host: ModelHost;
  gate?: Partial<GateOptions>;
  /** Default: job-train.ts in a worker thread (worker-executor.ts); unit tests replace it. */
  execute?: JobExecutor;
  warn?: (line: string) => void;
}

export class FineTuning {
  private constructor(
    readonly files: FileStore,
    readonly jobs: JobStore,
    readonly gate: InferenceGate,
    private readonly runner: JobRunner,
    private readonly host: ModelHost,
  ) {}

  /** Loads the stores and serves the models of succeeded jobs; start() begins training queued jobs. */
  static async open(o: FineTuningOptions): Promise<FineTuning> {
    const warn = o.warn ?? ((line: string) => console.warn(line));
    const files = await FileStore.open(o.dataDir, warn);
    const jobs = await JobStore.open(o.dataDir, warn);
    const gate = new InferenceGate(o.host, o.gate);
    const runner = new JobRunner({ store: jobs, files, host: o.host, gate, modelsDir: join(o.dataDir, 'models'), execute: o.execute ?? workerExecutor, warn });
    await runner.recover();
    return new FineTuning(files, jobs, gate, runner, o.host);
  }

  start(): void {
    this.runner.start();
  }

  /** Pauses the running job at a checkpoint (it resumes at the next start) and waits for it. */
  stop(): Promise<void> {
    return this.runner.stop();
  }

  async createJob(input: CreateJobInput): Promise<JobRecord> {
    const base = this.host.get(input.model);
    if (base === undefined) throw new InvalidRequestError(`The model '${input.model}' does not exist or is not loaded.`, 'model', 'model_not_found');
    // Refused here, as OpenAI refuses a model that cannot be fine-tuned, rather than as a failed job
    // (the trainer has no MoA backward; the runner checks the file again in case it changed).
    const arch = base.info.architecture;
    if (arch !== undefined && arch !== 'chimera') {
      throw new InvalidRequestError(`Model ${input.model} is not available for fine-tuning: only Chimera models can be fine-tuned, it is "${arch}".`, 'model', 'model_not_available');
    }
    for (const [param, id] of [['training_file', input.trainingFile], ['validation_file', input.validationFile]] as const) {
      if (id === null) continue;
      const f = this.files.get(id);
      if (f === undefined) throw new InvalidRequestError(`The file '${id}' does not exist.`, param, 'invalid_file');
      if (f.purpose !== 'fine-tune') throw new InvalidRequestError(`The file '${id}' has purpose '${f.purpose}', not 'fine-tune'.`, param, 'invalid_file');
    }
    // A window longer than the model's context would train positions it never sees when serving.
    const context = base.info.contextLength;
    const sequenceLength = input.sequenceLength ?? Math.min(AUTO.sequence_length, context ?? Infinity);
    if (context !== undefined && sequenceLength > context) {
      throw new InvalidRequestError(
        `braid.sequence_length ${sequenceLength} is longer than the context length of ${input.model} (${context} tokens).`,
        'braid.sequence_length',
        'invalid_value',
      );
    }
    const hp = input.hyperparameters;
    const method: JobMethod =
      input.method.type === 'mezo'
        ? { type: 'mezo', epsilon: input.method.epsilon ?? MEZO_DEFAULTS.epsilon, sparsity: input.method.sparsity ?? MEZO_DEFAULTS.sparsity }
        : { type: 'supervised' };
    const id = newId('ftjob');
    const job: JobRecord = {
      id,
      seq: this.jobs.nextSeq(),
      created_at: unixSeconds(),
      model: base.info.id,
      base_path: base.info.path,
      // Named after the root base, as OpenAI does: a fine-tune of ft:a:x:ftjob-1 is ft:a:y:ftjob-2, not ft:ft:a:….
      output_model: `ft:${rootModelId(base.info.id)}:${input.suffix ?? ''}:${id}`,
      training_file: input.trainingFile,
      validation_file: input.validationFile,
      status: 'validating_files',
      error: null,
      started_at: null,
      finished_at: null,
      hyperparameters: {
        n_epochs: hp.n_epochs === 'auto' ? AUTO.n_epochs : hp.n_epochs,
        batch_size: hp.batch_size === 'auto' ? AUTO.batch_size : hp.batch_size,
        learning_rate_multiplier: hp.learning_rate_multiplier === 'auto' ? AUTO.learning_rate_multiplier : hp.learning_rate_multiplier,
      },
      method,
      // Drawn here and stored, so a resumed run sees the same data order.
      seed: input.seed ?? randomInt(0, 2 ** 31 - 1),
      suffix: input.suffix,
      metadata: input.metadata,
      sequence_length: sequenceLength,
      eval_interval: input.evalInterval,
      checkpoint_interval: input.checkpointInterval,
      plan: null,
      step: 0,
      trained_tokens: null,
      model_file: null,
    };
    await this.jobs.create(job);
    await this.jobs.addEvent(id, 'info', `Created fine-tuning job: ${id}`);
    this.runner.validate(id);
    return job;
  }

  /** Cancels a job that has not finished; a running one stops after its current step. */
  async cancelJob(id: string): Promise<CancelResult> {
    const job = this.jobs.get(id);
    if (job === undefined) return { ok: false, reason: 'not_found', job: null };
    if (isFinished(job.status)) return { ok: false, reason: 'finished', job };
    if (this.runner.isFinishing(id)) return { ok: false, reason: 'finishing', job };
    if (!(await this.jobs.transition(id, ['validating_files', 'queued', 'running'], 'cancelled', { finished_at: unixSeconds() }))) {
      return { ok: false, reason: 'finished', job: this.jobs.get(id) ?? null };
    }
    this.runner.abort(id);
    await this.jobs.addEvent(id, 'info', 'Job cancelled by request.');
    // A running job's checkpoint files go when its run ends (job-runner.ts); a paused one's now.
    if (job.status !== 'running') await this.jobs.releaseCheckpoints(id);
    return { ok: true, job: this.jobs.get(id)! };
  }

  /** A file an unfinished job still needs cannot be deleted (the job would fail later for it). */
  async deleteFile(id: string): Promise<DeleteFileResult> {
    if (this.files.get(id) === undefined) return { ok: false, reason: 'not_found' };
    const user = this.jobs.list().find((j) => !isFinished(j.status) && (j.training_file === id || j.validation_file === id));
    if (user !== undefined) return { ok: false, reason: 'in_use', job: user.id };
    return (await this.files.delete(id)) ? { ok: true } : { ok: false, reason: 'not_found' };
  }
}
