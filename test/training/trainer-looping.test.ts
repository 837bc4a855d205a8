/**
 * The trainer on a Parcae looping model with the span-engine risk gate (prelude GD | loop GD, GD |
 * coda GD, loop max 3), against the same references as trainer-native.test.ts:
 *  - "full" truncation: every parameter's gradient (FP32 mode) against finite differences of the
 *    loss, at loop counts 1 and 3 (the FD sees every iteration, as the full gradient does);
 *  - "half" truncation: the gradient equals the full one when one iteration runs, and differs
 *    from it when three run (the first iteration carries no gradient);
 *  - the quantization-aware loss equals the C inference engine's loss at the same loop count;
 *  - set_loops range errors.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { initLibrary } from '../../engine/binding/library.ts';
import { chimeraTinyConfig, type ChimeraConfig } from '../../engine/model-init/chimera-config.ts';
import { writeRandomChimera } from '../../engine/model-init/init-chimera.ts';
import { exportModel } from '../../engine/training/export-model.ts';
import { NativeTrainer } from '../../engine/training/native-trainer.ts';
import { batch, directionalGradCheck, inferenceLoss, TINY_VOCAB } from './helpers.ts';

const dir = mkdtempSync(path.join(tmpdir(), 'braid-trainer-loop-'));

function loopConfig(truncation: 'half' | 'full'): ChimeraConfig {
  return {
    ...chimeraTinyConfig(TINY_VOCAB),
    name: `loop-${truncation}`,
    embeddingLength: 128,
    feedForwardLength: 256,
    layerTypes: ['GD', 'GD', 'GD', 'GD'],
    headCount: 2,
    headDim: 64,
    valueDim: 64,
    chunkSize: 4,
    spanGate: true,
    looping: { prelude: [0, 0], loop: [1, 2], coda: [3, 3], max: 3, default: 2, backwardTruncation: truncation },
  };
}

const full = path.join(dir, 'full.gguf');
const half = path.join(dir, 'half.gguf');

beforeAll(async () => {
  initLibrary(2);
  await writeRandomChimera(full, loopConfig('full'), 21);
  await writeRandomChimera(half, loopConfig('half'), 21);
});

afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('trainer on a looping model with the span gate', () => {
  for (const loops of [1, 3]) {
    it(`gradients match finite differences at ${loops} loop(s) (full truncation)`, async () => {
      const tr = NativeTrainer.open(full);
      try {
        tr.setQuant(false);
        tr.loops = loops;
        expect(tr.loops).toBe(loops);
        const { tokens, targets } = batch(2, 8, 40 + loops);
        const { checks } = await directionalGradCheck(tr, tokens, targets, 2, 8);
        expect(checks.some((c) => c.name === 'parcae.b.weight')).toBe(true);
        expect(checks.some((c) => c.name === 'output_gate.weight')).toBe(true);
        const bad = checks.filter((c) => !(c.rel < 0.02)).map((c) => `${c.name}: ${c.analytic} vs ${c.fd} (${c.rel.toFixed(4)})`);
        expect(bad).toEqual([]);
      } finally {
        tr.dispose();
      }
    }, 60_000);
  }

  it('half truncation: same gradient as full at 1 loop, a different one at 3', async () => {
    const grads = async (file: string, loops: number): Promise<Float32Array> => {
      const tr = NativeTrainer.open(file);
      try {
        tr.loops = loops;
        const { tokens, targets } = batch(2, 8, 50);
        await tr.forwardBackward(tokens, targets, 2, 8);
        return tr.readGrad(tr.params.find((p) => p.name === 'parcae.b.weight')!.index);
      } finally {
        tr.dispose();
      }
    };
    expect(await grads(half, 1)).toEqual(await grads(full, 1));
    expect(await grads(half, 3)).not.toEqual(await grads(full, 3));
  }, 30_000);

  it('the QAT loss equals the inference loss at each loop count', async () => {
    const tr = NativeTrainer.open(half);
    try {
      const { tokens, targets } = batch(2, 12, 60);
      for (let s = 0; s < 2; s++) {
        const r = await tr.forwardBackward(tokens, targets, 2, 12);
        await tr.update(3e-3, 1 / r.count);
      }
      const out = path.join(dir, 'half-trained.gguf');
      await exportModel(half, out, tr, {
        name: 'half-trained', recipe: 'test', steps: 2, tokens: 48, finalLoss: null, heldOutLoss: null,
        heldOutBpb: null, seed: 0, configHash: 'test', date: new Date(0),
      });
      for (const loops of [1, 2, 3]) {
        tr.loops = loops;
        const trained = await tr.evaluate(tokens, targets, 2, 12);
        const inf = await inferenceLoss(out, tokens, targets, 2, 12, TINY_VOCAB, loops);
        expect(Math.abs(inf - trained.lossSum) / trained.lossSum).toBeLessThan(2e-3);
      }
    } finally {
      tr.dispose();
    }
  }, 60_000);

  it('rejects loop counts outside 1..max', () => {
    const tr = NativeTrainer.open(half);
    try {
      expect(tr.loops).toBe(2);
      expect(() => (tr.loops = 0)).toThrow(/outside 1\.\.3/);
      expect(() => (tr.loops = 4)).toThrow(/outside 1\.\.3/);
    } finally {
      tr.dispose();
    }
  });
});
