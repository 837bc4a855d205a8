/**
 * The C trainer against golden files from an independent PyTorch implementation
 * (scripts/reference/chimera_torch.py, Debian python3-torch; llm.c style): for the committed tiny
 * GD model test/golden/train-tiny/model.gguf and batch.json, the summed loss, the logits and every
 * parameter's gradient under quantization-aware training (ternary weights, int8 activations,
 * straight-through) must agree. Both sides are float32 with different summation orders, and an
 * int8 rounding that lands on the other side of .5 moves a few values, so tensors are compared by
 * relative norm ‖ours − torch‖ / ‖torch‖. Regenerate with the command in golden.json.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { beforeAll, describe, expect, it } from 'vitest';
import { initLibrary } from '../../engine/binding/library.ts';
import { NativeTrainer } from '../../engine/training/native-trainer.ts';

const dir = fileURLToPath(new URL('../golden/train-tiny/', import.meta.url));

interface Entry {
  name: string;
  shape: number[];
  offset: number;
  count: number;
}
interface Golden {
  loss: number;
  countedTargets: number;
  quant: boolean;
  logits: { offset: number; count: number; shape: number[] };
  tensors: Entry[];
}

const golden = JSON.parse(readFileSync(path.join(dir, 'golden.json'), 'utf8')) as Golden;
const bin = readFileSync(path.join(dir, 'golden.bin'));
const floats = new Float32Array(bin.buffer, bin.byteOffset, bin.byteLength / 4);
const batch = JSON.parse(readFileSync(path.join(dir, 'batch.json'), 'utf8')) as { batch: number; seqLen: number; tokens: number[][]; targets: number[][] };

function relNorm(a: Float32Array, b: Float32Array): number {
  let num = 0;
  let den = 0;
  for (let i = 0; i < a.length; i++) {
    num += (a[i]! - b[i]!) ** 2;
    den += b[i]! ** 2;
  }
  return Math.sqrt(num) / Math.max(Math.sqrt(den), 1e-30);
}

beforeAll(() => {
  initLibrary(2);
});

describe('trainer vs PyTorch golden files (QAT, float32)', () => {
  it('loss and every gradient agree', async () => {
    expect(golden.quant).toBe(true);
    const tr = NativeTrainer.open(path.join(dir, 'model.gguf'));
    try {
      const tokens = Int32Array.from(batch.tokens.flat());
      const targets = Int32Array.from(batch.targets.flat());
      const r = await tr.forwardBackward(tokens, targets, batch.batch, batch.seqLen);
      expect(r.count).toBe(golden.countedTargets);
      expect(Math.abs(r.lossSum - golden.loss) / golden.loss).toBeLessThan(1e-4);
      const errors: Record<string, number> = {};
      for (const e of golden.tensors) {
        const p = tr.params.find((q) => q.name === e.name);
        expect(p, e.name).toBeDefined();
        const ours = tr.readGrad(p!.index);
        expect(ours.length).toBe(e.count);
        errors[e.name] = relNorm(ours, floats.subarray(e.offset, e.offset + e.count));
      }
      expect(Object.keys(errors).length).toBe(tr.params.length);
      const bad = Object.entries(errors).filter(([, v]) => !(v < 1e-3));
      expect(bad).toEqual([]);
    } finally {
      tr.dispose();
    }
  });
});
