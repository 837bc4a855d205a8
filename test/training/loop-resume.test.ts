/**
 * The training loop's policy with a deterministic in-memory trainer (no
 * native code): records, evaluations, checkpoints, and resumes that end with
 * the uninterrupted run's metrics log, after a stop, a crash, or a corrupt
 * newest checkpoint.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { listCheckpoints } from '../../engine/training/checkpoint.ts';
import { parseMetricsLog, type EvalRecord, type TrainRecord } from '../../engine/training/metrics-log.ts';
import {
  runDirPaths,
  runTrainLoop,
  type Batch,
  type DataSource,
  type LoopSettings,
  type LossSum,
  type Trainer,
} from '../../engine/training/train-loop.ts';

const root = mkdtempSync(path.join(tmpdir(), 'braid-loop-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));
let n = 0;
const freshDir = (): string => mkdtempSync(path.join(root, `run${n++}-`));

const K = 8;

/** A linear model w[token % K] ≈ target / 100 with momentum SGD: deterministic, serialisable, and its loss falls. */
class FakeTrainer implements Trainer {
  readonly params = [{ index: 0, name: 'w', ggufType: 0 }];
  step = 0;
  private w = new Float64Array(K).fill(0.5);
  private m = new Float64Array(K);
  private g = new Float64Array(K);
  calls = 0;

  setAdamW(): void {}

  private run(tokens: Int32Array, targets: Int32Array, grad: boolean): LossSum {
    let lossSum = 0;
    let count = 0;
    for (let i = 0; i < tokens.length; i++) {
      if (targets[i] === -1) continue;
      const k = tokens[i]! % K;
      const err = this.w[k]! - targets[i]! / 100;
      lossSum += err * err;
      if (grad) this.g[k]! += 2 * err;
      count++;
    }
    return { lossSum, count };
  }

  async forwardBackward(tokens: Int32Array, targets: Int32Array, batch: number, seqLen: number): Promise<LossSum> {
    expect(tokens.length).toBe(batch * seqLen);
    this.calls++;
    return this.run(tokens, targets, true);
  }

  async evaluate(tokens: Int32Array, targets: Int32Array): Promise<LossSum> {
    return this.run(tokens, targets, false);
  }

  async update(lr: number, gradScale: number): Promise<{ gradNorm: number }> {
    let norm = 0;
    for (let k = 0; k < K; k++) {
      const g = this.g[k]! * gradScale;
      norm += g * g;
      this.m[k] = 0.9 * this.m[k]! + g;
      this.w[k]! -= lr * this.m[k]!;
    }
    this.g.fill(0);
    this.step++;
    return { gradNorm: Math.sqrt(norm) };
  }

  saveState(): Uint8Array {
    const s = new Float64Array([this.step, ...this.w, ...this.m]);
    return new Uint8Array(s.buffer);
  }

  loadState(blob: Uint8Array): void {
    const s = new Float64Array(blob.slice().buffer);
    if (s.length !== 1 + 2 * K) throw new Error('bad state');
    this.step = s[0]!;
    this.w = s.slice(1, 1 + K);
    this.m = s.slice(1 + K);
  }

  exportTensor(): Uint8Array {
    return new Uint8Array(Float32Array.from(this.w).buffer);
  }
}

/** Tokens and targets from a hash of (seed, step); target = 10·(token % 8) + noise; phase by step. */
class FakeData implements DataSource {
  readonly recipe = 'fake';
  onBatch: (step: number) => void = () => {};
  constructor(private readonly seed = 3) {}

  private make(step: number, rows: number, seqLen: number, phase: string): Batch {
    const tokens = new Int32Array(rows * seqLen);
    const targets = new Int32Array(rows * seqLen);
    let h = (this.seed * 2654435761 + step * 40503) >>> 0;
    for (let i = 0; i < tokens.length; i++) {
      h = Math.imul(h ^ (h >>> 15), 2246822519) >>> 0;
      tokens[i] = h % 1000;
      targets[i] = i % 5 === 0 ? -1 : 10 * (tokens[i]! % K) + (h % 3);
    }
    return { tokens, targets, batch: rows, seqLen, phase };
  }

  batchAt(step: number): Batch {
    this.onBatch(step);
    return this.make(step, 4, 6, step < 6 ? 'warm' : 'main');
  }

  heldOut(): { batches: Batch[]; bytes: number } {
    return { batches: [this.make(-1, 4, 6, 'eval'), this.make(-2, 2, 6, 'eval')], bytes: 100 };
  }
}

const settings: LoopSettings = {
  totalSteps: 12,
  warmup: 2,
  lr: 0.2,
  minLrRatio: 0.1,
  beta1: 0.9,
  beta2: 0.95,
  eps: 1e-8,
  weightDecay: 0,
  clip: 1,
  microBatch: 2,
  evalInterval: 4,
  checkpointInterval: 3,
  seed: 3,
  configHash: 'h1',
  threads: 1,
};

/** The log without its timing fields, which differ between runs by nature. */
type Comparable = Omit<TrainRecord, 'tok_s' | 'elapsed'> | Omit<EvalRecord, 'elapsed'>;

function comparable(runDir: string): Comparable[] {
  const file = runDirPaths(runDir).metrics;
  return parseMetricsLog(readFileSync(file, 'utf8'), file).map((r) => {
    const { elapsed: _e, ...rest } = r;
    if (rest.type === 'train') {
      const { tok_s: _t, ...plain } = rest;
      return plain;
    }
    return rest;
  });
}

async function uninterrupted(): Promise<string> {
  const dir = freshDir();
  const r = await runTrainLoop({ trainer: new FakeTrainer(), data: new FakeData(), settings, runDir: dir, resume: false });
  expect(r.status).toBe('completed');
  return dir;
}

describe('train loop', () => {
  it('runs every step, evaluates and checkpoints on schedule, keeps two checkpoints, plots', async () => {
    const dir = freshDir();
    const trainer = new FakeTrainer();
    const r = await runTrainLoop({ trainer, data: new FakeData(), settings, runDir: dir, resume: false });
    expect(r).toMatchObject({ status: 'completed', step: 12, tokens: 12 * 24 });
    expect(trainer.calls).toBe(12 * 2); // batch 4 in micro-batches of 2
    const log = comparable(dir);
    expect(log.filter((x) => x.type === 'train').map((x) => x.step)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]);
    expect(log.filter((x) => x.type === 'eval').map((x) => x.step)).toEqual([4, 8, 12]);
    const train = log.flatMap((x) => (x.type === 'train' ? [x] : []));
    expect(train[11]!.loss).toBeLessThan(train[0]!.loss);
    expect(train[0]!.lr).toBeCloseTo(0.1, 12);
    expect(train.map((x) => x.phase)).toEqual([...Array(6).fill('warm'), ...Array(6).fill('main')]);
    const ev = log.find((x) => x.type === 'eval')!;
    expect(ev.type === 'eval' && ev.bpb).toBeCloseTo((ev.type === 'eval' ? ev.loss * ev.eval_tokens : 0) / (Math.LN2 * 100), 12);
    expect((await listCheckpoints(runDirPaths(dir).checkpoints)).map((c) => c.step)).toEqual([12, 9]);
    expect(readFileSync(runDirPaths(dir).plot, 'utf8')).toMatch(/^<svg /);
  });

  it('a stop (signal) checkpoints at once; the resumed run ends with the uninterrupted log', async () => {
    const reference = comparable(await uninterrupted());
    const dir = freshDir();
    const stop = new AbortController();
    const data = new FakeData();
    data.onBatch = (step) => step === 5 && stop.abort(); // step 5's batch is prefetched during step index 4
    const first = await runTrainLoop({ trainer: new FakeTrainer(), data, settings, runDir: dir, resume: false, signal: stop.signal });
    expect(first).toMatchObject({ status: 'stopped', step: 5 });
    expect((await listCheckpoints(runDirPaths(dir).checkpoints)).map((c) => c.step)).toEqual([5, 3]);
    const second = await runTrainLoop({ trainer: new FakeTrainer(), data: new FakeData(), settings, runDir: dir, resume: true });
    expect(second.status).toBe('completed');
    expect(comparable(dir)).toEqual(reference);
  });

  it('a stop on an eval step defers the eval to the resume, and the log still matches', async () => {
    const reference = comparable(await uninterrupted());
    const dir = freshDir();
    const stop = new AbortController();
    const data = new FakeData();
    data.onBatch = (step) => step === 8 && stop.abort(); // prefetched during step index 7: step 8 completes, its eval is due
    await runTrainLoop({ trainer: new FakeTrainer(), data, settings, runDir: dir, resume: false, signal: stop.signal });
    expect(comparable(dir).some((r) => r.type === 'eval' && r.step === 8)).toBe(false);
    await runTrainLoop({ trainer: new FakeTrainer(), data: new FakeData(), settings, runDir: dir, resume: true });
    expect(comparable(dir)).toEqual(reference);
  });

  it('after a crash with a corrupt newest checkpoint, resumes from the one before and matches', async () => {
    const reference = comparable(await uninterrupted());
    const dir = freshDir();
    const data = new FakeData();
    data.onBatch = (step) => {
      if (step === 7) throw new Error('simulated crash');
    };
    await expect(runTrainLoop({ trainer: new FakeTrainer(), data, settings, runDir: dir, resume: false })).rejects.toThrow(/simulated crash/);
    const ckpts = await listCheckpoints(runDirPaths(dir).checkpoints);
    expect(ckpts.map((c) => c.step)).toEqual([6, 3]);
    expect(comparable(dir).at(-1)?.step).toBe(7); // records past the newest checkpoint
    const bytes = readFileSync(ckpts[0]!.file);
    bytes[40]! ^= 0xff;
    writeFileSync(ckpts[0]!.file, bytes);
    const lines: string[] = [];
    const r = await runTrainLoop({ trainer: new FakeTrainer(), data: new FakeData(), settings, runDir: dir, resume: true, say: (l) => lines.push(l) });
    expect(r.status).toBe('completed');
    expect(lines.join('\n')).toMatch(/skipped a bad checkpoint.*CRC mismatch[\s\S]*resumed from .*ckpt-000000003\.bin at step 3\/12/);
    expect(existsSync(`${ckpts[0]!.file}.corrupt`)).toBe(true);
    expect(comparable(dir)).toEqual(reference);
  });

  it('resuming a finished run changes nothing; --resume with no checkpoint starts at 0', async () => {
    const dir = await uninterrupted();
    const before = readFileSync(runDirPaths(dir).metrics, 'utf8');
    const again = await runTrainLoop({ trainer: new FakeTrainer(), data: new FakeData(), settings, runDir: dir, resume: true });
    expect(again).toMatchObject({ status: 'completed', step: 12 });
    expect(readFileSync(runDirPaths(dir).metrics, 'utf8')).toBe(before);
    const fresh = freshDir();
    const r = await runTrainLoop({ trainer: new FakeTrainer(), data: new FakeData(), settings, runDir: fresh, resume: true });
    expect(r.step).toBe(12);
  });

  it('refuses to overwrite a run without --resume, and to resume under another config', async () => {
    const dir = await uninterrupted();
    await expect(runTrainLoop({ trainer: new FakeTrainer(), data: new FakeData(), settings, runDir: dir, resume: false })).rejects.toThrow(
      /already holds checkpoints.*--resume/,
    );
    await expect(
      runTrainLoop({ trainer: new FakeTrainer(), data: new FakeData(), settings: { ...settings, configHash: 'h2' }, runDir: dir, resume: true }),
    ).rejects.toThrow(/written under config h1, this run's is h2/);
  });

  it('stops on a non-finite loss without checkpointing it, and on a batch with no targets', async () => {
    const nan = new FakeTrainer();
    nan.forwardBackward = async () => ({ lossSum: Number.NaN, count: 3 });
    const dir = freshDir();
    await expect(runTrainLoop({ trainer: nan, data: new FakeData(), settings, runDir: dir, resume: false })).rejects.toThrow(/step 1: loss NaN.*diverged/); // 1-based, as the records
    expect(await listCheckpoints(runDirPaths(dir).checkpoints)).toEqual([]);
    const empty = new FakeTrainer();
    empty.forwardBackward = async () => ({ lossSum: 0, count: 0 });
    await expect(runTrainLoop({ trainer: empty, data: new FakeData(), settings, runDir: freshDir(), resume: false })).rejects.toThrow(
      /step 1: the trainer counted no target tokens/,
    );
  });

  it('skips the update of a batch with no targets (said once) instead of failing; a resume matches', async () => {
    /** Steps 5 and 8 (indices 4, 7) are context only: every target −1. */
    class Gappy extends FakeData {
      override batchAt(step: number): Batch {
        const b = super.batchAt(step);
        if (step === 4 || step === 7) b.targets.fill(-1);
        return b;
      }
    }
    const run = async (dir: string, o: { signal?: AbortSignal; resume?: boolean; data?: FakeData } = {}) => {
      const trainer = new FakeTrainer();
      const updates: number[] = [];
      const update = trainer.update.bind(trainer);
      trainer.update = (lr, scale) => (updates.push(lr), update(lr, scale));
      const lines: string[] = [];
      const r = await runTrainLoop({ trainer, data: o.data ?? new Gappy(), settings, runDir: dir, resume: o.resume ?? false, signal: o.signal, say: (l) => lines.push(l) });
      return { r, trainer, updates, lines };
    };
    const whole = freshDir();
    const { r, trainer, updates, lines } = await run(whole);
    expect(r).toMatchObject({ status: 'completed', step: 12, skippedSteps: 2, tokens: 10 * 24 });
    expect(trainer.step).toBe(12); // the trainer counted every step, so checkpoints resume
    expect(trainer.calls).toBe(10 * 2); // no forward/backward for the skipped two
    expect(updates[4]).toBe(0);
    expect(updates[7]).toBe(0);
    expect(lines.filter((l) => /no target tokens/.test(l))).toEqual([expect.stringMatching(/^step 5: no target tokens/)]);
    const log = comparable(whole);
    expect(log.filter((x) => x.type === 'train').map((x) => x.step)).toEqual([1, 2, 3, 4, 6, 7, 9, 10, 11, 12]);

    // Stopped right after the first skipped step, then resumed: the same log.
    const split = freshDir();
    const stop = new AbortController();
    const data = new Gappy();
    data.onBatch = (step) => step === 5 && stop.abort();
    expect((await run(split, { signal: stop.signal, data })).r).toMatchObject({ status: 'stopped', step: 5 });
    expect((await run(split, { resume: true })).r.status).toBe('completed');
    expect(comparable(split)).toEqual(log);
  });
});
