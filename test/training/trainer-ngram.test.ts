/**
 * The hashed n-gram input embedding (c/src/ngram.h) in the trainer and in the served forward,
 * on a tiny one-layer GD model whose table has few rows (so rows are shared by many n-grams and
 * a wrong row would change the loss) and random values (a zero table would hide a wrong row):
 *  - the table's and the token embedding's gradients (plain FP32 mode) against central finite
 *    differences, for order 2 (bigrams) and order 3 (bigrams and trigrams);
 *  - the trainer's quantization-aware loss equals the C inference engine's for the exported model,
 *    so both read the same rows; and the table matters: zeroing it moves the served loss;
 *  - the served history carries across eval calls and through a saved state: a row evaluated in
 *    two calls, or restored into a fresh context between them, gives the logits of one call;
 *  - the loader refuses an order other than 2 or 3, and an order without its table.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { initLibrary } from '../../engine/binding/library.ts';
import { chimeraTinyConfig, type ChimeraConfig } from '../../engine/model-init/chimera-config.ts';
import { writeRandomChimera } from '../../engine/model-init/init-chimera.ts';
import { NativeModel } from '../../engine/model/native-model.ts';
import { NativeTrainer } from '../../engine/training/native-trainer.ts';
import { batch, directionalGradCheck, exportForTest, gaussian, inferenceLoss, TINY_VOCAB as V, trainedVsServedLoss } from './helpers.ts';

const ROWS = 61; // prime, and far fewer than the n-grams of a batch: rows are shared
const dir = mkdtempSync(path.join(tmpdir(), 'braid-trainer-ngram-'));
const modelPath = (order: 2 | 3) => path.join(dir, `ngram${order}.gguf`);

function config(order: 2 | 3): ChimeraConfig {
  return {
    ...chimeraTinyConfig(V),
    name: `train-ngram${order}`,
    embeddingLength: 128,
    feedForwardLength: 256,
    layerTypes: ['GD'],
    headCount: 2,
    headDim: 64,
    valueDim: 64,
    chunkSize: 4,
    ngram: { order, rows: ROWS },
  };
}

/** Gives the zero-initialised table values as large as the token embedding's rows' sum would carry. */
function randomTable(tr: NativeTrainer, seed: number, scale = 0.5): void {
  const p = tr.params.find((q) => q.name === 'token_ngram.weight')!;
  tr.writeParam(p.index, gaussian(p.rows * p.cols, seed).map((x) => x * scale));
}

beforeAll(async () => {
  initLibrary(2);
  await writeRandomChimera(modelPath(2), config(2), 51);
  await writeRandomChimera(modelPath(3), config(3), 52);
});

afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('n-gram metadata the loader refuses', () => {
  /** A copy of the order-2 model with `from` replaced by `to` (same length) in the file's bytes. */
  function patched(name: string, from: Buffer, to: Buffer): string {
    const bytes = readFileSync(modelPath(2));
    const at = bytes.indexOf(from);
    expect(at).toBeGreaterThan(0);
    to.copy(bytes, at);
    const out = path.join(dir, name);
    writeFileSync(out, bytes);
    return out;
  }

  it('an order other than 2 or 3', async () => {
    // the key, its u32 type tag (4) and the value 2 → 4
    const key = Buffer.from('chimera.ngram.order');
    const tail = (v: number) => Buffer.concat([key, Buffer.from([4, 0, 0, 0, v, 0, 0, 0])]);
    const bad = patched('order4.gguf', tail(2), tail(4));
    await expect(NativeModel.load(bad)).rejects.toThrow(/chimera\.ngram\.order/);
  });

  it('an order without its table', async () => {
    const bad = patched('no-table.gguf', Buffer.from('token_ngram.weight'), Buffer.from('token_ngrXm.weight'));
    await expect(NativeModel.load(bad)).rejects.toThrow(/missing tensor 'token_ngram\.weight'/);
  });
});

describe.each([2, 3] as const)('n-gram embedding of order %d', (order) => {
  it('has the gradient of central finite differences (FP32 mode), for the table and the token embedding', async () => {
    const tr = NativeTrainer.open(modelPath(order));
    try {
      expect(tr.params.find((p) => p.name === 'token_ngram.weight')).toMatchObject({ rows: ROWS, cols: 128, decay: false });
      tr.setQuant(false);
      randomTable(tr, 7 + order);
      const { tokens, targets } = batch(2, 12, 3);
      const { checks } = await directionalGradCheck(tr, tokens, targets, 2, 12, {
        only: (n) => n === 'token_ngram.weight' || n === 'token_embd.weight',
      });
      expect(checks.map((c) => c.name).sort()).toEqual(['token_embd.weight', 'token_ngram.weight']);
      for (const c of checks) {
        expect(c.analytic, c.name).not.toBe(0);
        expect(c.rel, c.name).toBeLessThan(1e-3);
      }
    } finally {
      tr.dispose();
    }
  });

  it('reports the loss the inference engine computes for the exported model, and the table changes it', async () => {
    const tr = NativeTrainer.open(modelPath(order));
    const out = path.join(dir, `exported-${order}.gguf`);
    try {
      randomTable(tr, 11 + order);
      const b = { ...batch(2, 16, 9), B: 2, T: 16 };
      const { trained, served } = await trainedVsServedLoss(tr, modelPath(order), out, b, 2);
      // same quantizers, float vs int32 accumulation (as the other trainer-vs-served checks)
      expect(Math.abs(served - trained) / trained).toBeLessThan(3e-6);

      randomTable(tr, 0, 0);
      await exportForTest(tr, modelPath(order), out);
      const withoutTable = await inferenceLoss(out, b.tokens, b.targets, b.B, b.T);
      expect(Math.abs(withoutTable - served) / served).toBeGreaterThan(1e-3);
    } finally {
      tr.dispose();
    }
  });

  it('carries the token history across eval calls and through a saved state', async () => {
    const tr = NativeTrainer.open(modelPath(order));
    const out = path.join(dir, `history-${order}.gguf`);
    try {
      randomTable(tr, 21 + order);
      await exportForTest(tr, modelPath(order), out);
    } finally {
      tr.dispose();
    }
    const model = await NativeModel.load(out);
    try {
      const tokens = Array.from(batch(1, 10, 5).tokens);
      const whole = model.createContext(10);
      const all = await whole.eval(tokens, { allLogits: true });
      whole.dispose();
      const last = all.subarray(9 * V, 10 * V);

      const split = model.createContext(10);
      await split.eval(tokens.slice(0, 6));
      expect(await split.eval(tokens.slice(6))).toEqual(last);
      split.dispose();

      const first = model.createContext(10);
      await first.eval(tokens.slice(0, 6));
      const blob = await first.saveState();
      first.dispose();
      const second = model.createContext(10);
      await second.loadState(blob);
      expect(await second.eval(tokens.slice(6))).toEqual(last);
      // and a fresh context (no history) reads other rows for the same last tokens
      await second.reset();
      expect(await second.eval(tokens.slice(6))).not.toEqual(last);
      second.dispose();
    } finally {
      await model.dispose();
    }
  });
});
