/**
 * Trains one job with the native trainer: the job's data (job-data.ts), the
 * training loop of engine/training/train-loop.ts (checkpoints, metrics log,
 * resume), gated by the inference load (gate.ts), then the export of the
 * trained model as GGUF. The job's lifecycle (statuses, errors, serving the
 * model) is job-runner.ts; this file reports through the JobReporter. The
 * server runs it in a worker thread (train-worker.ts), because parts of it
 * are synchronous and long on large models and files.
 *
 * Every start of a job resumes its run dir: a job that was never started
 * begins at step 0, one interrupted by a restart continues from its newest
 * valid checkpoint, under the plan fixed at its first start (a config hash
 * over the plan refuses a run dir that does not match).
 */
import { createHash } from 'node:crypto';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { threadCount } from '../binding/library.ts';
import { listCheckpoints } from '../training/checkpoint.ts';
import { exportModel } from '../training/export-model.ts';
import type { TrainRecord } from '../training/metrics-log.ts';
import { NativeTrainer } from '../training/native-trainer.ts';
import { Progress } from '../training/progress.ts';
import { learningRate } from '../training/schedule.ts';
import { runDirPaths, runTrainLoop, type LoopSettings, type LossSum, type Trainer } from '../training/train-loop.ts';
import { GatedTrainer, type Gate } from './gate.ts';
import { openJobData } from './job-data.ts';
import type { JobPlan, JobRecord } from './job-types.ts';
import { MezoTrainer } from './mezo-trainer.ts';

/** The peak learning rate at learning_rate_multiplier 1. */
export const BASE_LEARNING_RATE = 3e-4;
/** AdamW for fine-tuning: light decay, the pre-trained weights are the starting point. */
const OPTIMIZER = { beta1: 0.9, beta2: 0.95, eps: 1e-8, weightDecay: 0.01, clip: 1, minLrRatio: 0.1 } as const;

export interface JobReporter {
  plan(plan: JobPlan): Promise<void>;
  /** A training step done (the loop's metrics record). */
  step(record: TrainRecord, totalSteps: number): Promise<void>;
  /** Held-out loss after `step` optimizer steps (0: the base model). */
  eval(step: number, loss: number, totalSteps: number): Promise<void>;
  message(level: 'info' | 'warn', text: string): Promise<void>;
}

export interface TrainContext {
  job: JobRecord;
  runDir: string;
  trainingPath: string;
  validationPath: string | null;
  /** Where the exported model goes (written atomically). */
  outPath: string;
  gate: Gate;
  signal: AbortSignal;
  report: JobReporter;
}

export type TrainOutcome = { status: 'completed'; step: number; tokens: number } | { status: 'stopped'; step: number };

/** A Progress that forwards records instead of drawing a line (train-loop.ts takes the class). */
class JobProgress extends Progress {
  constructor(private readonly onStep: (r: TrainRecord) => void) {
    super({ write: () => undefined, isTTY: false }, 1);
  }
  override step(record: TrainRecord): void {
    this.onStep(record);
  }
  override message(): void {}
  override finish(): void {}
}

function planHash(job: JobRecord, plan: Omit<JobPlan, 'config_hash'>, modelFp: string, dataFp: string): string {
  const shaping = { modelFp, dataFp, plan, method: job.method, seed: job.seed, window: job.sequence_length, optimizer: OPTIMIZER };
  return createHash('sha256').update(JSON.stringify(shaping)).digest('hex').slice(0, 16);
}

export async function trainJob(ctx: TrainContext): Promise<TrainOutcome> {
  const { job, report } = ctx;
  const hp = job.hyperparameters;
  const jd = await openJobData({
    basePath: job.base_path,
    trainingPath: ctx.trainingPath,
    validationPath: ctx.validationPath,
    seed: job.seed,
    batch: hp.batch_size,
    window: job.sequence_length,
    nEpochs: hp.n_epochs,
  });
  const total = jd.totalSteps;
  const interval = (asked: number | null, fallback: number): number => Math.min(asked ?? fallback, total);
  const base: Omit<JobPlan, 'config_hash'> = {
    total_steps: total,
    warmup: Math.min(100, Math.floor(total / 10)),
    epoch_tokens: jd.epochTokens,
    tokens_per_step: hp.batch_size * job.sequence_length,
    learning_rate: BASE_LEARNING_RATE * hp.learning_rate_multiplier,
    eval_interval: ctx.validationPath === null ? 0 : interval(job.eval_interval, Math.ceil(total / 10)),
    checkpoint_interval: interval(job.checkpoint_interval, Math.min(200, Math.ceil(total / 5))),
  };
  const plan: JobPlan = { ...base, config_hash: planHash(job, base, jd.modelFingerprint, jd.dataFingerprint) };
  if (job.plan !== null && job.plan.config_hash !== plan.config_hash) {
    throw new Error(`the job's data or base model changed since it started (plan ${job.plan.config_hash}, now ${plan.config_hash}); it cannot be resumed`);
  }
  if (job.plan === null) await report.plan(plan);

  await mkdir(ctx.runDir, { recursive: true });
  const fresh = (await listCheckpoints(runDirPaths(ctx.runDir).checkpoints)).length === 0;
  // Synchronous, and long on a large model (FP32 masters of every tensor): the worker thread is why
  // that is harmless. Throws NativeError(ERR_UNSUPPORTED) for a model the trainer has no backward for.
  const native = NativeTrainer.open(job.base_path);
  // Reports run one after another, in the order the loop made them (the loop does not wait for them).
  let reports: Promise<void> = Promise.resolve();
  const later = (fn: () => Promise<void>): void => {
    reports = reports.then(fn, fn);
  };
  try {
    const schedule = { peak: plan.learning_rate, warmup: plan.warmup, total, minRatio: OPTIMIZER.minLrRatio };
    const m = job.method;
    const inner: Trainer =
      m.type === 'mezo'
        ? new MezoTrainer(native, { epsilon: m.epsilon, sparsity: m.sparsity, seed: job.seed, lrAt: (s) => learningRate(schedule, s) })
        : native;
    let evalSum = 0;
    let evalCount = 0;
    const flushEval = (): void => {
      if (evalCount === 0) return;
      const step = native.step;
      const loss = evalSum / evalCount;
      later(() => report.eval(step, loss, total));
      evalSum = 0;
      evalCount = 0;
    };
    const trainer = new GatedTrainer(inner, ctx.gate, ctx.signal, {
      training: flushEval,
      evaluated: (r: LossSum) => {
        evalSum += r.lossSum;
        evalCount += r.count;
      },
    });

    // The base model's held-out loss, so the events show where the fine-tune started from.
    const heldOut = jd.data.heldOut();
    if (fresh && heldOut !== null) {
      for (const b of heldOut.batches) {
        for (let r = 0; r < b.batch; r++) {
          const rows = { from: r * b.seqLen, to: (r + 1) * b.seqLen };
          await trainer.evaluate(b.tokens.subarray(rows.from, rows.to), b.targets.subarray(rows.from, rows.to), 1, b.seqLen);
        }
      }
      flushEval();
    }

    const settings: LoopSettings = {
      ...OPTIMIZER,
      totalSteps: total,
      warmup: plan.warmup,
      lr: plan.learning_rate,
      // One sequence per native call keeps each call short, so inference never waits long behind one.
      microBatch: m.type === 'mezo' ? undefined : 1,
      evalInterval: plan.eval_interval,
      checkpointInterval: plan.checkpoint_interval,
      seed: job.seed,
      configHash: plan.config_hash,
      threads: threadCount(),
    };
    const progress = new JobProgress((r) => later(() => report.step(r, total)));
    const result = await runTrainLoop({
      trainer,
      data: jd.data,
      settings,
      runDir: ctx.runDir,
      resume: true,
      signal: ctx.signal,
      progress,
      plotTitle: `${job.output_model}: ${total} steps`,
      say: (line) => {
        // Loop lines carry data-dir paths; events say the same without them.
        const step = native.step;
        if (line.startsWith('checkpoint ')) later(() => report.message('info', `Checkpoint saved at step ${step}.`));
        else if (line.startsWith('skipped a bad checkpoint')) later(() => report.message('warn', 'A damaged checkpoint was skipped; resuming from an older one.'));
        else if (/^step \d+: no target tokens/.test(line)) {
          const at = line.slice('step '.length, line.indexOf(':'));
          later(() => report.message('warn', `Step ${at} had no assistant tokens to learn from (its windows hold prompt text only); its update was skipped.`));
        }
      },
    });
    flushEval();
    if (result.skippedSteps > 1) {
      const n = result.skippedSteps;
      later(() => report.message('warn', `${n} steps had no assistant tokens to learn from; their updates were skipped.`));
    }
    await reports;
    if (result.status === 'stopped') return { status: 'stopped', step: result.step };
    await exportModel(job.base_path, ctx.outPath, native, {
      name: job.output_model,
      recipe: `fine-tune ${job.method.type} (${job.training_file})`,
      steps: result.step,
      tokens: result.tokens,
      finalLoss: result.lastTrain?.loss ?? null,
      heldOutLoss: result.lastEval?.loss ?? null,
      heldOutBpb: result.lastEval?.bpb ?? null,
      seed: job.seed,
      configHash: plan.config_hash,
      date: new Date(),
    });
    return { status: 'completed', step: result.step, tokens: result.tokens };
  } finally {
    // Event writes of a run that threw still land before the job is marked failed.
    await reports.catch(() => undefined);
    native.dispose();
  }
}

export const modelFileName = (jobId: string): string => `${jobId}.gguf`;
export const modelPathIn = (modelsDir: string, jobId: string): string => join(modelsDir, modelFileName(jobId));
