/**
 * The training loop's policy. Per step: the step's batch (a pure function of
 * the step), forward/backward in micro-batches (gradients accumulate in C),
 * one AdamW update at the scheduled rate with the gradients scaled to the
 * mean over target tokens, a metrics record. Every eval interval: held-out
 * loss and bits per byte. Every checkpoint interval, at the end and when the
 * signal aborts: a checkpoint and the loss plot.
 *
 * A batch without a single target (every window context only; the data side
 * avoids them, see engine/training/data/window-plan.ts) has nothing to learn:
 * its step takes no forward/backward and an update at learning rate 0, which
 * leaves the weights as they are but keeps the trainer's step equal to the
 * loop's (checkpoints, resume and MeZO's perturbations rest on that). Such
 * steps are counted, said once, and write no metrics record.
 *
 * Each native call is awaited in turn (they run on koffi worker threads), so
 * the event loop stays free for signals and the progress display while C
 * computes, and there is never more than one call in flight on the trainer.
 *
 * Exactness of resume rests on three facts: batches depend only on the step;
 * the trainer's whole state (weights, moments, step) is in its saved blob;
 * the metrics log is durable up to a checkpoint before the checkpoint is
 * written. A resumed run therefore repeats the uninterrupted run's updates
 * bit for bit (for a fixed C thread count) and its log is cut to match.
 */
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { removeStaleTemps } from './atomic-file.ts';
import { listCheckpoints, loadLatestCheckpoint, writeCheckpoint, type CheckpointHeader } from './checkpoint.ts';
import type { ExportableTrainer } from './export-model.ts';
import { writeLossPlot } from './loss-plot.ts';
import { MetricsLog, type EvalRecord, type TrainRecord } from './metrics-log.ts';
import type { Progress } from './progress.ts';
import { learningRate, validateSchedule, type LrSchedule } from './schedule.ts';

export interface LossSum {
  lossSum: number;
  count: number;
}

/** What the loop needs of a trainer: engine/training/native-trainer.ts's NativeTrainer, or a test double. */
export interface Trainer extends ExportableTrainer {
  readonly step: number;
  setAdamW(o: { beta1: number; beta2: number; eps: number; weightDecay: number; clip: number }): void;
  forwardBackward(tokens: Int32Array, targets: Int32Array, batch: number, seqLen: number): Promise<LossSum>;
  evaluate(tokens: Int32Array, targets: Int32Array, batch: number, seqLen: number): Promise<LossSum>;
  update(lr: number, gradScale: number): Promise<{ gradNorm: number }>;
  saveState(): Uint8Array;
  /** Throws on a blob from another model or a corrupt one (NativeTrainer's is async). */
  loadState(blob: Uint8Array): void | Promise<void>;
}

/** One step's sequences: row-major [batch, seqLen]; a target of -1 carries no loss. */
export interface Batch {
  tokens: Int32Array;
  targets: Int32Array;
  batch: number;
  seqLen: number;
  phase: string;
}

/** Held-out evaluation data: fixed batches and the UTF-8 bytes of text their targets cover. */
export interface HeldOut {
  batches: readonly Batch[];
  bytes: number;
}

/** The data side as the loop sees it (engine/training/data-source.ts adapts engine/training/data). */
export interface DataSource {
  readonly recipe: string;
  batchAt(step: number): Batch | Promise<Batch>;
  /** null: the recipe has no held-out text, so no evaluations. */
  heldOut(): HeldOut | null;
}

export interface LoopSettings {
  totalSteps: number;
  warmup: number;
  lr: number;
  minLrRatio: number;
  beta1: number;
  beta2: number;
  eps: number;
  weightDecay: number;
  clip: number;
  /** Sequences per forwardBackward call; undefined = the whole batch. */
  microBatch: number | undefined;
  evalInterval: number;
  checkpointInterval: number;
  seed: number;
  configHash: string;
  /** C thread count, recorded in checkpoints. */
  threads: number;
}

export interface TrainLoopOptions {
  trainer: Trainer;
  data: DataSource;
  settings: LoopSettings;
  runDir: string;
  /** Continue from the newest valid checkpoint (if any); without it the run dir must hold none. */
  resume: boolean;
  /** Aborting finishes the current step, checkpoints, and returns 'stopped'. */
  signal?: AbortSignal;
  progress?: Progress;
  /** Status lines (resume, checkpoint, eval); default: the progress display's. */
  say?: (line: string) => void;
  plotTitle?: string;
  now?: () => number;
  /**
   * Called once the starting point is settled (a new run, or a checkpoint
   * whose config hash matches), before the first step. `braid train` saves the
   * run's config.json here, so a refused resume leaves the saved config alone.
   */
  onStart?: () => Promise<void>;
}

export interface TrainLoopResult {
  status: 'completed' | 'stopped';
  step: number;
  /** Tokens of the steps that trained (a skipped step's batch is not counted). */
  tokens: number;
  /** Steps of this session whose batch had no target, so no update (see the header). */
  skippedSteps: number;
  lastTrain: TrainRecord | null;
  lastEval: EvalRecord | null;
  /** Newest checkpoint written or resumed from. */
  checkpoint: string | null;
  elapsedMs: number;
}

export class TrainLoopError extends Error {
  override readonly name = 'TrainLoopError';
}

export function runDirPaths(runDir: string): { checkpoints: string; metrics: string; plot: string; config: string } {
  return {
    checkpoints: join(runDir, 'checkpoints'),
    metrics: join(runDir, 'metrics.jsonl'),
    plot: join(runDir, 'loss.svg'),
    config: join(runDir, 'config.json'),
  };
}

function checkBatch(b: Batch, what: string): void {
  const n = b.batch * b.seqLen;
  if (!(Number.isInteger(b.batch) && b.batch > 0 && Number.isInteger(b.seqLen) && b.seqLen > 0)) {
    throw new TrainLoopError(`${what}: batch ${b.batch} × seqLen ${b.seqLen} is not a positive shape`);
  }
  if (b.tokens.length !== n || b.targets.length !== n) {
    throw new TrainLoopError(`${what}: ${b.tokens.length} tokens and ${b.targets.length} targets for ${b.batch} × ${b.seqLen}`);
  }
}

function hasTarget(b: Batch): boolean {
  for (let i = 0; i < b.targets.length; i++) if (b.targets[i] !== -1) return true;
  return false;
}

/** Runs `call` on consecutive slices of `rows` sequences and sums the results. */
async function inSlices(
  b: Batch,
  rows: number | undefined,
  call: (tokens: Int32Array, targets: Int32Array, batch: number, seqLen: number) => Promise<LossSum>,
): Promise<LossSum> {
  const per = Math.min(rows ?? b.batch, b.batch);
  let lossSum = 0;
  let count = 0;
  for (let r = 0; r < b.batch; r += per) {
    const n = Math.min(per, b.batch - r);
    const from = r * b.seqLen;
    const to = from + n * b.seqLen;
    const out = await call(b.tokens.subarray(from, to), b.targets.subarray(from, to), n, b.seqLen);
    lossSum += out.lossSum;
    count += out.count;
  }
  return { lossSum, count };
}

export async function runTrainLoop(o: TrainLoopOptions): Promise<TrainLoopResult> {
  const { trainer, data, settings: s } = o;
  const schedule: LrSchedule = { peak: s.lr, warmup: s.warmup, total: s.totalSteps, minRatio: s.minLrRatio };
  validateSchedule(schedule);
  const paths = runDirPaths(o.runDir);
  const now = o.now ?? (() => performance.now());
  const say = o.say ?? ((line: string) => (o.progress ? o.progress.message(line) : undefined));
  await mkdir(paths.checkpoints, { recursive: true });
  await removeStaleTemps(paths.checkpoints);
  await removeStaleTemps(o.runDir);

  let step = 0;
  let tokens = 0;
  let skippedSteps = 0;
  let elapsedBase = 0;
  let checkpoint: string | null = null;
  let lastTrain: TrainRecord | null = null;
  let lastEval: EvalRecord | null = null;
  let log: MetricsLog;

  if (o.resume) {
    const latest = await loadLatestCheckpoint(paths.checkpoints, { quarantine: true });
    for (const bad of latest.skipped) say(`skipped a bad checkpoint (renamed to .corrupt): ${bad.reason}`);
    const ck = latest.checkpoint;
    if (ck === null) {
      log = await MetricsLog.create(paths.metrics);
      say('no checkpoint to resume from: starting at step 0');
    } else {
      const h = ck.header;
      if (h.configHash !== s.configHash) {
        throw new TrainLoopError(
          `${ck.file} was written under config ${h.configHash}, this run's is ${s.configHash}: the model, data, schedule, ` +
            'optimizer or seed differ. Resume with the run\'s own config (its config.json) or start a new run dir.',
        );
      }
      await trainer.loadState(ck.state);
      if (trainer.step !== h.step) throw new TrainLoopError(`${ck.file}: the trainer state is at step ${trainer.step}, the header says ${h.step}`);
      log = await MetricsLog.resume(paths.metrics, h.step, h.logRecords);
      step = h.step;
      tokens = h.tokens;
      elapsedBase = h.elapsedMs;
      checkpoint = ck.file;
      for (const r of log.records) {
        if (r.type === 'train') lastTrain = r;
        else lastEval = r;
      }
      if (h.threads !== s.threads) say(`note: the run used ${h.threads} threads, this one ${s.threads}; losses will not match bit for bit`);
      say(`resumed from ${ck.file} at step ${step}/${s.totalSteps}`);
    }
  } else {
    const existing = await listCheckpoints(paths.checkpoints);
    if (existing.length > 0) {
      throw new TrainLoopError(`${o.runDir} already holds checkpoints (${existing[0]!.file}); pass --resume to continue it, or use another run dir`);
    }
    log = await MetricsLog.create(paths.metrics);
  }
  await o.onStart?.();

  trainer.setAdamW({ beta1: s.beta1, beta2: s.beta2, eps: s.eps, weightDecay: s.weightDecay, clip: s.clip });
  const sessionStart = now();
  const elapsedMs = (): number => elapsedBase + (now() - sessionStart);
  const heldOut = data.heldOut();
  // A function, not a narrowed property read: the signal flips while steps are awaited.
  const stopping = (): boolean => o.signal?.aborted === true;
  const evalDue = (done: number): boolean =>
    heldOut !== null && ((s.evalInterval > 0 && done % s.evalInterval === 0) || done === s.totalSteps);
  let savedStep = o.resume && checkpoint !== null ? step : -1;

  const evaluate = async (done: number): Promise<void> => {
    if (heldOut === null) return;
    let lossSum = 0;
    let count = 0;
    for (const [i, b] of heldOut.batches.entries()) {
      checkBatch(b, `held-out batch ${i}`);
      const r = await inSlices(b, s.microBatch, (t, y, n, l) => trainer.evaluate(t, y, n, l));
      lossSum += r.lossSum;
      count += r.count;
    }
    if (count === 0 || heldOut.bytes <= 0) throw new TrainLoopError('the held-out set has no target tokens or no bytes');
    const rec: EvalRecord = {
      type: 'eval',
      step: done,
      tokens,
      loss: lossSum / count,
      bpb: lossSum / (Math.LN2 * heldOut.bytes),
      eval_tokens: count,
      eval_bytes: heldOut.bytes,
      elapsed: elapsedMs() / 1000,
    };
    log.append(rec);
    lastEval = rec;
    say(`eval @ step ${done}: held-out loss ${rec.loss.toFixed(4)} nats/token, ${rec.bpb.toFixed(4)} bits/byte`);
  };

  const save = async (done: number): Promise<void> => {
    if (done === savedStep) return;
    const header: CheckpointHeader = {
      step: done,
      totalSteps: s.totalSteps,
      configHash: s.configHash,
      data: { recipe: data.recipe, seed: s.seed, nextStep: done },
      tokens,
      elapsedMs: elapsedMs(),
      logRecords: log.records.length,
      metrics: {
        loss: lastTrain?.loss ?? null,
        gradNorm: lastTrain?.grad_norm ?? null,
        lr: lastTrain?.lr ?? null,
        phase: lastTrain?.phase ?? null,
        evalLoss: lastEval?.loss ?? null,
        evalBpb: lastEval?.bpb ?? null,
      },
      threads: s.threads,
      createdAt: new Date().toISOString(),
    };
    checkpoint = await writeCheckpoint(paths.checkpoints, header, trainer.saveState());
    savedStep = done;
    await writeLossPlot(paths.plot, log.records, { title: o.plotTitle, totalSteps: s.totalSteps });
    say(`checkpoint ${checkpoint}`);
  };

  try {
    // A run stopped between a step and its due evaluation does that evaluation first,
    // so the log matches an uninterrupted run's.
    if (step > 0 && evalDue(step) && !log.hasEval(step)) await evaluate(step);
    // The next batch is built while C computes this step: batchAt is JS on the main thread
    // (tokenizing documents on first use), the native call runs on a worker thread, so the two
    // overlap instead of taking turns. Batches are a pure function of the step: no effect on results.
    let pending: { step: number; batch: Promise<Batch> } | null = null;
    while (step < s.totalSteps && !stopping()) {
      const t0 = now();
      // Messages name steps 1-based, as the metrics records do: this is the step that makes `step + 1`.
      const n = step + 1;
      const batch = await (pending?.step === step ? pending.batch : data.batchAt(step));
      pending = null;
      checkBatch(batch, `step ${n}`);
      const fbCall = hasTarget(batch) ? inSlices(batch, s.microBatch, (t, y, rows, l) => trainer.forwardBackward(t, y, rows, l)) : null;
      if (step + 1 < s.totalSteps) {
        const nextStep = step + 1;
        const next = Promise.resolve().then(() => data.batchAt(nextStep));
        next.catch(() => undefined); // a failure surfaces when the batch is awaited, not as an unhandled rejection
        pending = { step: nextStep, batch: next };
      }
      if (fbCall === null) {
        if (skippedSteps === 0) say(`step ${n}: no target tokens in the batch (only context); its update is skipped, and any later such steps are counted`);
        skippedSteps += 1;
        await trainer.update(0, 1);
        step += 1;
      } else {
        const fb = await fbCall;
        if (fb.count === 0) throw new TrainLoopError(`step ${n}: the trainer counted no target tokens in a batch that has some`);
        const lr = learningRate(schedule, step);
        const { gradNorm } = await trainer.update(lr, 1 / fb.count);
        const loss = fb.lossSum / fb.count;
        // A non-finite loss means the weights are already ruined: stop before it reaches a checkpoint.
        if (!Number.isFinite(loss) || !Number.isFinite(gradNorm)) {
          throw new TrainLoopError(`step ${n}: loss ${loss}, grad norm ${gradNorm}; training diverged (try a lower lr); last checkpoint ${checkpoint ?? 'none'}`);
        }
        step += 1;
        tokens += batch.batch * batch.seqLen;
        const seconds = Math.max((now() - t0) / 1000, 1e-9);
        const rec: TrainRecord = {
          type: 'train',
          step,
          tokens,
          loss,
          grad_norm: gradNorm,
          lr,
          tok_s: (batch.batch * batch.seqLen) / seconds,
          phase: batch.phase,
          elapsed: elapsedMs() / 1000,
        };
        log.append(rec);
        lastTrain = rec;
        o.progress?.step(rec);
      }
      // Stop now rather than after a long eval; the due eval, if any, runs first thing on resume.
      if (stopping() && step < s.totalSteps) break;
      if (evalDue(step)) await evaluate(step);
      if ((s.checkpointInterval > 0 && step % s.checkpointInterval === 0) || step === s.totalSteps) await save(step);
    }
    if (step > 0) await save(step);
    else await writeLossPlot(paths.plot, log.records, { title: o.plotTitle, totalSteps: s.totalSteps });
  } finally {
    o.progress?.finish();
    log.close();
  }
  return {
    status: step >= s.totalSteps ? 'completed' : 'stopped',
    step,
    tokens,
    skippedSteps,
    lastTrain,
    lastEval,
    checkpoint,
    elapsedMs: elapsedMs(),
  };
}
