/**
 * The C trainer through its TS wrapper, on a tiny random GD model:
 *  - every parameter's gradient (plain FP32 mode) against central finite differences of the
 *    loss along a random direction (a directional derivative: large enough to rise above
 *    float32 rounding in the loss, and it covers every coordinate at once);
 *  - the quantization-aware forward equals the inference forward: the loss the trainer reports
 *    equals the cross-entropy of the C inference logits of the exported model;
 *  - AdamW lowers the loss on a repeated batch; deterministic run to run;
 *  - state save/load round trip restores weights and step; corrupt and foreign blobs are refused;
 *  - bad arguments give clear errors.
 * The float64 finite-difference check of the same math and the comparison with PyTorch's
 * gradients live in test/training/trainer-golden.test.ts (golden files from scripts/reference).
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { initLibrary } from '../../engine/binding/library.ts';
import { chimeraTinyConfig, type ChimeraConfig } from '../../engine/model-init/chimera-config.ts';
import { writeRandomChimera } from '../../engine/model-init/init-chimera.ts';
import { NativeTrainer } from '../../engine/training/native-trainer.ts';
import { batch, directionalGradCheck, inferenceLoss, TINY_VOCAB as V, trainedVsServedLoss } from './helpers.ts';

const dir = mkdtempSync(path.join(tmpdir(), 'braid-trainer-'));

function tinyConfig(chunk: number): ChimeraConfig {
  return {
    ...chimeraTinyConfig(V),
    name: 'train-tiny',
    embeddingLength: 128,
    feedForwardLength: 256,
    layerTypes: ['GD', 'GD'],
    headCount: 2,
    headDim: 64,
    valueDim: 64,
    convKernel: 4,
    chunkSize: chunk,
  };
}

let modelPath: string;
let firstParamName = '';
const tr0Name = (): string => firstParamName;

beforeAll(async () => {
  initLibrary(2);
  modelPath = path.join(dir, 'tiny.gguf');
  // chunk 4 with T = 10: three chunks, the last one partial (exercises the state checkpoints)
  await writeRandomChimera(modelPath, tinyConfig(4), 5);
  const tr = NativeTrainer.open(modelPath);
  firstParamName = tr.params[0]!.name;
  tr.dispose();
});

afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('NativeTrainer gradients (FP32 mode) vs finite differences', () => {
  it('matches the directional derivative of every parameter within 2%', async () => {
    const tr = NativeTrainer.open(modelPath);
    try {
      tr.setQuant(false);
      const B = 2;
      const T = 10;
      const { tokens, targets } = batch(B, T, 7);
      const { loss, count, checks } = await directionalGradCheck(tr, tokens, targets, B, T);
      expect(count).toBe(16);
      expect(Number.isFinite(loss)).toBe(true);
      const failures = checks
        .filter((c) => !(c.rel < 0.02))
        .map((c) => `${c.name}: analytic ${c.analytic.toExponential(4)} fd ${c.fd.toExponential(4)} (rel ${c.rel.toFixed(4)})`);
      expect(failures).toEqual([]);
    } finally {
      tr.dispose();
    }
  }, 120_000);
});

describe('NativeTrainer quantization-aware forward', () => {
  it('starts exactly where the served model is: before any update, the QAT loss equals the inference loss', async () => {
    const tr = NativeTrainer.open(modelPath);
    try {
      const { tokens, targets } = batch(2, 12, 19);
      const mine = await tr.evaluate(tokens, targets, 2, 12);
      const served = await inferenceLoss(modelPath, tokens, targets, 2, 12);
      expect(Math.abs(served - mine.lossSum) / mine.lossSum).toBeLessThan(2e-3);
    } finally {
      tr.dispose();
    }
  });

  it('reports the loss the inference engine computes for the exported model', async () => {
    const tr = NativeTrainer.open(modelPath);
    try {
      // move the weights off their initial ternary grid first, so export really requantizes
      const B = 2;
      const T = 12;
      const { tokens, targets } = batch(B, T, 9);
      const { trained, served } = await trainedVsServedLoss(tr, modelPath, path.join(dir, 'exported.gguf'), { tokens, targets, B, T });
      // same quantizers, float vs int32 accumulation: agreement to ~1e-4 relative
      expect(Math.abs(served - trained) / trained).toBeLessThan(2e-3);
    } finally {
      tr.dispose();
    }
  }, 60_000);
});

describe('NativeTrainer optimisation and state', () => {
  it('AdamW lowers the loss on a repeated batch, deterministically', async () => {
    const run = async (): Promise<number[]> => {
      const tr = NativeTrainer.open(modelPath);
      try {
        tr.setAdamW({ beta1: 0.9, beta2: 0.95, eps: 1e-8, weightDecay: 0.1, clip: 1 });
        const { tokens, targets } = batch(4, 16, 3);
        const losses: number[] = [];
        for (let s = 0; s < 8; s++) {
          const r = await tr.forwardBackward(tokens, targets, 4, 16);
          losses.push(r.lossSum / r.count);
          const { gradNorm } = await tr.update(1e-2, 1 / r.count);
          expect(gradNorm).toBeGreaterThan(0);
        }
        expect(tr.step).toBe(8);
        return losses;
      } finally {
        tr.dispose();
      }
    };
    const a = await run();
    expect(a[7]!).toBeLessThan(a[0]! - 0.5);
    expect(await run()).toEqual(a);
  }, 60_000);

  it('saves and restores weights, moments and step; refuses corrupt and foreign blobs', async () => {
    const tr = NativeTrainer.open(modelPath);
    const other = path.join(dir, 'other.gguf');
    await writeRandomChimera(other, { ...tinyConfig(4), layerTypes: ['GD'] }, 6);
    const tr2 = NativeTrainer.open(other);
    try {
      const { tokens, targets } = batch(2, 8, 4);
      const step = async (): Promise<number> => {
        const r = await tr.forwardBackward(tokens, targets, 2, 8);
        await tr.update(1e-2, 1 / r.count);
        return r.lossSum;
      };
      await step();
      const blob = tr.saveState();
      const next1 = await step();
      const next2 = await step();
      await tr.loadState(blob);
      expect(tr.step).toBe(1);
      expect(await step()).toBe(next1);
      expect(await step()).toBe(next2);

      const corrupt = blob.slice();
      corrupt[100] = corrupt[100]! ^ 1;
      await expect(tr.loadState(corrupt)).rejects.toThrow(/checksum/);
      await expect(tr.loadState(blob.subarray(0, 64))).rejects.toThrow(/bytes/);
      await expect(tr2.loadState(blob)).rejects.toThrow();
      expect(tr.step).toBe(3);
    } finally {
      tr.dispose();
      tr2.dispose();
    }
  }, 60_000);

  it('MeZO lowers the loss with forward passes only, deterministically; sparse MeZO moves only small weights', async () => {
    const { tokens, targets } = batch(2, 16, 8);
    const run = async (sparsity: number, steps: number): Promise<{ losses: number[]; embd: [Float32Array, Float32Array] }> => {
      const tr = NativeTrainer.open(modelPath);
      try {
        tr.setAdamW({ beta1: 0.9, beta2: 0.95, eps: 1e-8, weightDecay: 0, clip: 0 });
        const embd0 = tr.readParam(0);
        const before = await tr.evaluate(tokens, targets, 2, 16);
        for (let s = 0; s < steps; s++) await tr.mezoStep(tokens, targets, 2, 16, { lr: 1e-3, eps: 1e-2, sparsity, seed: 100 + s });
        const after = await tr.evaluate(tokens, targets, 2, 16);
        expect(tr.step).toBe(steps);
        expect(tr.readGrad(0).every((g) => g === 0)).toBe(true); // no backward ran
        return { losses: [before.lossSum / before.count, after.lossSum / after.count], embd: [embd0, tr.readParam(0)] };
      } finally {
        tr.dispose();
      }
    };
    expect(tr0Name()).toBe('token_embd.weight');
    const dense = await run(0, 80);
    expect(dense.losses[1]!).toBeLessThan(dense.losses[0]! - 0.05);
    expect((await run(0, 3)).losses).toEqual((await run(0, 3)).losses);
    // sparse: the largest-magnitude half of the embedding never moves. (Its loss is not asserted:
    // measured on this random batch, 25 sparse steps went 8.339 → 8.375 while dense MeZO went
    // 8.339 → 7.818 in 80; on another batch sparse went 8.37 → 8.27. Recorded in docs/training.md.)
    const sparse = await run(0.5, 25);
    expect(Number.isFinite(sparse.losses[1]!)).toBe(true);
    const [e0, e1] = sparse.embd;
    const mags = Array.from(e0, Math.abs).sort((a, b) => a - b);
    const high = mags[Math.floor(mags.length * 0.75)]!;
    let movedHigh = 0;
    let movedLow = 0;
    for (let i = 0; i < e0.length; i++) {
      if (e0[i] === e1[i]) continue;
      if (Math.abs(e0[i]!) >= high) movedHigh++;
      else movedLow++;
    }
    expect(movedHigh).toBe(0);
    expect(movedLow).toBeGreaterThan(e0.length / 4);
  }, 60_000);

  it('rejects bad arguments with clear errors', async () => {
    const tr = NativeTrainer.open(modelPath);
    try {
      const { tokens, targets } = batch(1, 4, 1);
      await expect(tr.forwardBackward(tokens, targets, 2, 4)).rejects.toThrow(/batch·seqLen/);
      const bad = tokens.slice();
      bad[2] = V;
      await expect(tr.forwardBackward(bad, targets, 1, 4)).rejects.toThrow(/outside the vocabulary/);
      await expect(tr.update(1e-3, 0)).rejects.toThrow(/grad_scale/);
      expect(() => tr.setAdamW({ beta1: 1, beta2: 0.9, eps: 1e-8, weightDecay: 0, clip: 0 })).toThrow(/beta1/);
      expect(() => NativeTrainer.open(path.join(dir, 'missing.gguf'))).toThrow();
      writeFileSync(path.join(dir, 'junk.gguf'), 'not a gguf');
      expect(() => NativeTrainer.open(path.join(dir, 'junk.gguf'))).toThrow();
    } finally {
      tr.dispose();
    }
  });
});
