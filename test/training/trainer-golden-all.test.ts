/**
 * The C trainer against golden files from the independent PyTorch reference
 * (scripts/reference/chimera_torch.py with mixers_torch.py and blocks_torch.py) on a tiny model with
 * every Chimera component: GD | XM, TM | SK (prelude | Parcae loop | coda, diagonal injection,
 * truncated backprop "half"), a MoE FFN with a shared expert and the selection-only bias on layer 3,
 * and the span-engine risk gate (scripts/reference/make-all-model.ts).
 *
 *   test/golden/chimera-all/golden-noquant.*  plain FP32 (braid_trainer_set_quant(tr, 0)), the
 *       model at initializer σ 0.1 (the one the logits test uses): the check of every backward formula
 *   test/golden/chimera-all-qat/golden.*      quantization-aware (ternary weights, int8 activations,
 *       straight-through: the trainer's training mode), the same model at σ 0.02
 *
 * Both at the trainer's semantics: latents that requantize to the file ("exact"), loss = sum of token
 * CEs, 3 loop iterations with the gradient through the last ⌈3/2⌉ = 2 (the first is a constant).
 *
 * Tolerances: relative norm ‖C − torch‖ / ‖torch‖ per tensor; both sides float32 with different
 * summation orders. Plain FP32: loss 1e-4, gradients 1e-3; measured 1.4e-9 and ≤ 7.3e-6 (TM tensors
 * ≤ 3.4e-6). QAT: an int8 rounding that flips between two float32 implementations changes one
 * activation by one step and the gradients that read it; at σ 0.02 the worst measured is 3.6e-4
 * (blk.1's FFN, where plain FP32 agrees to 6e-7: a flip), so loss 1e-4 and gradients 2e-3 (measured
 * 1.1e-8 and ≤ 3.6e-4) — below what a straight-through mistake would make: a weight gradient taken
 * from the unquantized instead of the quantized activation is off by x − x̂, rms ≈ absmax/440 per
 * 64-block against an activation rms ≈ absmax/2.4, i.e. ~5e-3 (an estimate, not measured). (At σ 0.1
 * flips move QAT gradients by ~1e-2, hence the second model.) Tensors no gradient reaches (the MoE selection bias, the SK sign encoders) must
 * be exactly zero on both sides.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { beforeAll, describe, expect, it } from 'vitest';
import { initLibrary } from '../../engine/binding/library.ts';
import { NativeTrainer } from '../../engine/training/native-trainer.ts';

const GOLDENS = [
  { dir: 'chimera-all', stem: 'golden-noquant', quant: false, lossTol: 1e-4, gradTol: 1e-3 },
  { dir: 'chimera-all-qat', stem: 'golden', quant: true, lossTol: 1e-4, gradTol: 2e-3 },
];
/** Tensor kinds each golden must contain (a regenerated model that lost a component fails here). */
const KINDS = ['gdn_', 'xm_', 'tm_mem_w1', 'tm_persist_k', 'tm_km', 'sk_energy', 'ffn_gate_exps', 'ffn_gate_shexp', 'ffn_gate_inp', 'parcae.', 'output_gate'];

interface Entry {
  name: string;
  offset: number;
  count: number;
}
interface Golden {
  loss: number;
  countedTargets: number;
  quant: boolean;
  latentInit: string;
  loops: number;
  truncation: string;
  tensors: Entry[];
}
interface Batch {
  batch: number;
  seqLen: number;
  tokens: number[][];
  targets: number[][];
}

function relNorm(a: Float32Array, b: Float32Array): number {
  let num = 0;
  let den = 0;
  for (let i = 0; i < a.length; i++) {
    num += (a[i]! - b[i]!) ** 2;
    den += b[i]! ** 2;
  }
  return Math.sqrt(num) / Math.max(Math.sqrt(den), 1e-30);
}

const allZero = (a: Float32Array): boolean => a.every((v) => v === 0);

beforeAll(() => {
  initLibrary(2);
});

describe('trainer vs PyTorch golden files, every component (float32, 3 loops, truncation half)', () => {
  for (const g of GOLDENS) {
    it(`${g.dir}/${g.stem} (${g.quant ? 'QAT' : 'plain FP32'}): loss and every gradient agree`, async () => {
      const dir = fileURLToPath(new URL(`../golden/${g.dir}/`, import.meta.url));
      const golden = JSON.parse(readFileSync(path.join(dir, `${g.stem}.json`), 'utf8')) as Golden;
      const bin = readFileSync(path.join(dir, `${g.stem}.bin`));
      const grads = new Float32Array(bin.buffer, bin.byteOffset, bin.byteLength / 4);
      const batch = JSON.parse(readFileSync(path.join(dir, 'batch.json'), 'utf8')) as Batch;
      expect(golden.quant).toBe(g.quant);
      expect(golden.latentInit).toBe('exact');
      expect(golden.truncation).toBe('half');
      expect(golden.loops).toBe(3);
      for (const kind of KINDS) expect(golden.tensors.some((e) => e.name.includes(kind)), kind).toBe(true);

      const tr = NativeTrainer.open(path.join(dir, 'model.gguf'));
      try {
        tr.setQuant(g.quant);
        tr.loops = golden.loops;
        const r = await tr.forwardBackward(Int32Array.from(batch.tokens.flat()), Int32Array.from(batch.targets.flat()), batch.batch, batch.seqLen);
        expect(r.count).toBe(golden.countedTargets);
        expect(Math.abs(r.lossSum - golden.loss) / golden.loss).toBeLessThan(g.lossTol);
        const errors: Record<string, number> = {};
        const zeroMismatch: string[] = [];
        for (const e of golden.tensors) {
          const p = tr.params.find((q) => q.name === e.name);
          expect(p, e.name).toBeDefined();
          const ours = tr.readGrad(p!.index);
          expect(ours.length, e.name).toBe(e.count);
          const ref = grads.subarray(e.offset, e.offset + e.count);
          if (allZero(ref) !== allZero(ours)) zeroMismatch.push(e.name);
          errors[e.name] = allZero(ref) && allZero(ours) ? 0 : relNorm(ours, ref);
        }
        expect(zeroMismatch).toEqual([]);
        expect(Object.keys(errors).length).toBe(tr.params.length);
        expect(Object.entries(errors).filter(([, v]) => !(v < g.gradTol))).toEqual([]);
      } finally {
        tr.dispose();
      }
    });
  }
});
