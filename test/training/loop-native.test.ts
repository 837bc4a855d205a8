/**
 * The training loop on the real C trainer: a tiny random model (D 128, I 256,
 * two GD layers, the committed 4k tokenizer) trained on a short English text
 * for a dozen steps loses loss; a run stopped at step 5 and resumed from its
 * checkpoint in a fresh trainer logs exactly the uninterrupted run's losses
 * and grad norms (bit for bit: fixed thread count); the export loads with
 * the trained metadata.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { initLibrary } from '../../engine/binding/library.ts';
import { readGguf } from '../../engine/gguf/reader.ts';
import { metaNumber, metaString } from '../../engine/gguf/types.ts';
import { chimeraTinyConfig } from '../../engine/model-init/chimera-config.ts';
import { writeRandomChimera } from '../../engine/model-init/init-chimera.ts';
import { loadTokenizer } from '../../engine/tokenizer/load.ts';
import { exportModel } from '../../engine/training/export-model.ts';
import { parseMetricsLog, type TrainRecord } from '../../engine/training/metrics-log.ts';
import { NativeTrainer } from '../../engine/training/native-trainer.ts';
import { runDirPaths, runTrainLoop, type Batch, type DataSource, type HeldOut, type LoopSettings } from '../../engine/training/train-loop.ts';

const dir = mkdtempSync(path.join(tmpdir(), 'braid-loop-native-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const modelPath = path.join(dir, 'tiny.gguf');

const TEXT = `The jury said that the city had been run well. The mayor thanked the people who had helped.
It was a quiet morning in the old town. The children walked to school and the shops opened one by one.
A small dog ran across the square, and the baker waved from his door. The bells rang at nine.`;
const HELD = 'The baker opened his shop early, and the children waved as they walked across the old square.';

/** Windows of the repeated text: step s reads rows starting at deterministic offsets. */
class TextData implements DataSource {
  readonly recipe = 'test-text';
  private readonly ids: number[];
  private readonly held: number[];
  constructor(
    encode: (s: string) => number[],
    private readonly rows = 4,
    private readonly seqLen = 32,
  ) {
    this.ids = encode(`${TEXT}\n`.repeat(8));
    this.held = encode(HELD);
  }
  private window(ids: readonly number[], offsets: readonly number[], seqLen: number, phase: string): Batch {
    const tokens = new Int32Array(offsets.length * seqLen);
    const targets = new Int32Array(offsets.length * seqLen);
    offsets.forEach((o, r) => {
      for (let t = 0; t < seqLen; t++) {
        tokens[r * seqLen + t] = ids[o + t]!;
        targets[r * seqLen + t] = ids[o + t + 1]!;
      }
    });
    return { tokens, targets, batch: offsets.length, seqLen, phase };
  }
  batchAt(step: number): Batch {
    const span = this.ids.length - this.seqLen - 1;
    const offsets = Array.from({ length: this.rows }, (_, r) => ((step * this.rows + r) * 37) % span);
    return this.window(this.ids, offsets, this.seqLen, step < 6 ? 'one' : 'two');
  }
  heldOut(): HeldOut {
    const T = this.held.length - 1;
    return { batches: [this.window(this.held, [0], T, 'eval')], bytes: Buffer.byteLength(HELD.slice(0), 'utf8') };
  }
}

let data: TextData;

const settings: LoopSettings = {
  totalSteps: 12,
  warmup: 2,
  lr: 1e-2,
  minLrRatio: 0.1,
  beta1: 0.9,
  beta2: 0.95,
  eps: 1e-8,
  weightDecay: 0.1,
  clip: 1,
  microBatch: 2,
  evalInterval: 6,
  checkpointInterval: 4,
  seed: 1,
  configHash: 'native-test',
  threads: 2,
};

beforeAll(async () => {
  expect(initLibrary(2)).toBe(2);
  const config = { ...chimeraTinyConfig(4096), name: 'loop-tiny', embeddingLength: 128, feedForwardLength: 256, layerTypes: ['GD' as const, 'GD' as const], headCount: 2 };
  await writeRandomChimera(modelPath, config, 21);
  const tok = loadTokenizer((await readGguf(modelPath)).metadata);
  data = new TextData((s) => tok.encode(s));
});

function trainRecords(runDir: string): TrainRecord[] {
  const file = runDirPaths(runDir).metrics;
  return parseMetricsLog(readFileSync(file, 'utf8'), file).flatMap((r) => (r.type === 'train' ? [r] : []));
}


describe('train loop on the native trainer', () => {
  it('lowers the loss, resumes bit for bit, exports a loadable model', async () => {
    const full = path.join(dir, 'full');
    const trainer = NativeTrainer.open(modelPath);
    let exported: string;
    try {
      const r = await runTrainLoop({ trainer, data, settings, runDir: full, resume: false });
      expect(r.status).toBe('completed');
      const recs = trainRecords(full);
      expect(recs).toHaveLength(12);
      const first = recs[0]!.loss;
      const last = recs.slice(-3).reduce((a, x) => a + x.loss, 0) / 3;
      expect(first).toBeGreaterThan(7); // ≈ ln 4096 = 8.3 at random init
      expect(last).toBeLessThan(first - 1);
      expect(r.lastEval?.step).toBe(12);
      expect(r.lastEval!.bpb).toBeGreaterThan(0);

      exported = path.join(dir, 'trained.gguf');
      await exportModel(modelPath, exported, trainer, {
        name: 'loop-trained',
        recipe: data.recipe,
        steps: r.step,
        tokens: r.tokens,
        finalLoss: r.lastTrain!.loss,
        heldOutLoss: r.lastEval!.loss,
        heldOutBpb: r.lastEval!.bpb,
        seed: 1,
        configHash: settings.configHash,
        date: new Date(),
      });
    } finally {
      trainer.dispose();
    }
    const file = await readGguf(exported);
    expect(metaString(file.metadata, 'general.name')).toBe('loop-trained');
    expect(metaNumber(file.metadata, 'braid.train.steps')).toBe(12);

    // interrupted at step 5 (the signal fires while step index 5's batch is prefetched, during step index 4),
    // resumed in a fresh trainer
    const split = path.join(dir, 'split');
    const stop = new AbortController();
    const stopping: DataSource = {
      recipe: data.recipe,
      batchAt: (s) => {
        if (s === 5) stop.abort();
        return data.batchAt(s);
      },
      heldOut: () => data.heldOut(),
    };
    const t1 = NativeTrainer.open(modelPath);
    try {
      const a = await runTrainLoop({ trainer: t1, data: stopping, settings, runDir: split, resume: false, signal: stop.signal });
      expect(a).toMatchObject({ status: 'stopped', step: 5 });
    } finally {
      t1.dispose();
    }
    const t2 = NativeTrainer.open(modelPath);
    try {
      const b = await runTrainLoop({ trainer: t2, data, settings, runDir: split, resume: true });
      expect(b.status).toBe('completed');
      expect(t2.step).toBe(12);
    } finally {
      t2.dispose();
    }
    const strip = (r: TrainRecord) => [r.step, r.tokens, r.loss, r.grad_norm, r.lr, r.phase];
    expect(trainRecords(split).map(strip)).toEqual(trainRecords(full).map(strip));
  }, 60_000);
});
