/**
 * The C trainer's XM (xLSTM mLSTM, c/src/train_mlstm.c) and SK (TSP span knot,
 * c/src/train_tsp.c) mixer kinds, each in a tiny random two-layer model behind a GD layer:
 *  - every parameter's gradient (plain FP32 mode) against central finite differences along a
 *    random direction (helpers.ts); for XM with T spanning two state checkpoints (32 tokens);
 *  - XM again where the stabiliser m is near the soft cap and the normaliser's +1e−6 is as large
 *    as max(|n·q|, e^{−m}): there the gradient m carries (routed through the max of the
 *    recurrence) matters; a stop-gradient on m misses ~20% of the input-gate bias gradient;
 *  - SK's sign-only encoders get exactly zero gradient;
 *  - the quantization-aware forward equals the C inference forward of the exported model;
 *  - AdamW lowers the loss on a repeated batch.
 * The random init leaves both mixers nearly silent (XM: b_i = −10 puts every h̃ on the e^{−m}
 * floor, ~1e−5, which the LayerNorm maps to ~0 with b = 0; SK: the energy path adds ~1e−4), so
 * the checks would pass on tiny numbers. `wake` first moves the gates, the LayerNorm and the
 * energy heads to values where each path carries weight, and the finite-difference error is
 * measured against 1e−4·|loss| (1e−5 for the large-m case) rather than trainer-native's 1e−3, so
 * small gradients count too.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { initLibrary } from '../../engine/binding/library.ts';
import { chimeraTinyConfig, type ChimeraConfig } from '../../engine/model-init/chimera-config.ts';
import { writeRandomChimera } from '../../engine/model-init/init-chimera.ts';
import { NativeTrainer } from '../../engine/training/native-trainer.ts';
import { batch, directionalGradCheck, gaussian, TINY_VOCAB as V, trainedVsServedLoss, type GradCheck } from './helpers.ts';

type Kind = 'XM' | 'SK';
const dir = mkdtempSync(path.join(tmpdir(), 'braid-trainer-layers-'));
const paths: Record<Kind, string> = { XM: path.join(dir, 'xm.gguf'), SK: path.join(dir, 'sk.gguf') };

function config(kind: Kind): ChimeraConfig {
  return {
    ...chimeraTinyConfig(V),
    name: `train-${kind.toLowerCase()}`,
    embeddingLength: 128,
    feedForwardLength: 256,
    layerTypes: ['GD', kind],
    headCount: 2,
    headDim: 64,
    valueDim: 64,
    convKernel: 4,
    chunkSize: 4,
    xlstm: { headCount: 2, headDim: 64, gateSoftCap: 15, normEps: 1e-5 },
    tsp: { sketchDim: 32 },
  };
}

function paramIndex(tr: NativeTrainer, name: string): number {
  const p = tr.params.find((q) => q.name === name);
  if (!p) throw new Error(`no parameter ${name}`);
  return p.index;
}

function setParam(tr: NativeTrainer, name: string, f: (w: Float32Array) => Float32Array): void {
  const i = paramIndex(tr, name);
  tr.writeParam(i, f(tr.readParam(i)));
}

const around = (mean: number, std: number, seed: number) => (w: Float32Array): Float32Array => {
  const z = gaussian(w.length, seed);
  return w.map((_, i) => mean + std * z[i]!);
};

/** Moves layer 1's gates, LayerNorm and energy heads to where every path of the mixer carries weight. */
function wake(tr: NativeTrainer, kind: Kind): void {
  if (kind === 'XM') {
    // head 0: m ≈ ĩ ≈ 1, e^{−m} > |n·q| (~0.02–0.1): the floor branch of the normaliser's max;
    // head 1: m ≈ 6, e^{−m} ≈ 2.5e−3 < |n·q|: the |n·q| branch (few tokens sit near the switch,
    // whose kink would spoil finite differences)
    setParam(tr, 'blk.1.xm_i.bias', () => new Float32Array([1, 6]));
    setParam(tr, 'blk.1.xm_norm.weight', around(1, 0.2, 11));
    setParam(tr, 'blk.1.xm_norm.bias', around(0, 0.5, 12));
  } else {
    // the smooth terms loud (rows auto, bind, gram, debt ~N(0, 1)); the coherence term
    // (e_mem·o)·coh as initialised: coh jumps by 1/D_s when a sketch sign flips, and a loud
    // jump inside a finite-difference step would swamp the derivative
    const z = gaussian(5 * 128, 13);
    setParam(tr, 'blk.1.sk_energy.weight', (w) => w.map((x, i) => (i >= 128 && i < 256 ? x : z[i]!)));
    setParam(tr, 'blk.1.sk_energy_lambda', () => new Float32Array([1, 0.3, 2, 4, 3]));
  }
}

/**
 * Finite-difference steps for the XM model: trainer-native's rule, except for the projections
 * that feed n·q. The normaliser max(|n·q|, e^{−m}) is smooth only piecewise; a step of 1e-3·0.3
 * moves those ternary-scale matrices (rms ~0.016) by 2% and crosses switches, 1e-3·rms does not.
 */
function xmStep(name: string, rms: number): number {
  return 1e-3 * Math.max(rms, name.includes('.xm_q.') || name.includes('.xm_k.') ? 0.03 : 0.3);
}

function failures(checks: GradCheck[]): string[] {
  return checks
    .filter((c) => !(c.rel < 0.02))
    .map((c) => `${c.name}: analytic ${c.analytic.toExponential(4)} fd ${c.fd.toExponential(4)} (rel ${c.rel.toFixed(4)})`);
}

beforeAll(async () => {
  initLibrary(2);
  await writeRandomChimera(paths.XM, config('XM'), 21);
  await writeRandomChimera(paths.SK, config('SK'), 22);
});

afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('XM gradients (FP32 mode) vs finite differences', () => {
  it('match the directional derivative of every parameter within 2%', async () => {
    const tr = NativeTrainer.open(paths.XM);
    try {
      tr.setQuant(false);
      wake(tr, 'XM');
      // T = 36: two checkpoint spans of 32 tokens, the second partial
      const { tokens, targets } = batch(2, 36, 7);
      const { checks } = await directionalGradCheck(tr, tokens, targets, 2, 36, { floor: 1e-4, step: xmStep, retryAbove: 0.02 });
      expect(checks.length).toBe(tr.params.length);
      expect(failures(checks)).toEqual([]);
    } finally {
      tr.dispose();
    }
  });

  it('include the gradient the stabiliser m carries (large m, normaliser at its 1e-6)', async () => {
    const tr = NativeTrainer.open(paths.XM);
    try {
      tr.setQuant(false);
      wake(tr, 'XM');
      // ĩ ≈ 14.5 (near the cap): m ≈ 14.5, e^{−m} ≈ 5e−7; q scaled down so |n·q| ~ 1e−7…1e−6:
      // den = max(|n·q|, e^{−m}) + 1e−6 has all three terms comparable
      setParam(tr, 'blk.1.xm_i.bias', () => new Float32Array([25, 30]));
      setParam(tr, 'blk.1.xm_q.weight', (w) => w.map((x) => x * 1e-5));
      const { tokens, targets } = batch(2, 36, 7);
      const { checks } = await directionalGradCheck(tr, tokens, targets, 2, 36, {
        only: (name) => name.startsWith('blk.1.xm_'),
        floor: 1e-5,
        step: (name, rms) => (name.includes('.xm_q.') ? 1e-3 * rms : xmStep(name, rms)),
        retryAbove: 0.02,
      });
      expect(checks.length).toBe(11);
      expect(failures(checks)).toEqual([]);
    } finally {
      tr.dispose();
    }
  });
});

describe('SK gradients (FP32 mode) vs finite differences', () => {
  it('match the directional derivative of every parameter within 2%; the sign-only encoders get none', async () => {
    const tr = NativeTrainer.open(paths.SK);
    try {
      tr.setQuant(false);
      wake(tr, 'SK');
      const encoders = ['blk.1.sk_sketch.weight', 'blk.1.sk_role.weight', 'blk.1.sk_filler.weight'];
      // batch seed 8: with seed 7 one sign(W o) coordinate sat within the step of 0 after the latent-init
      // change, and every direction saw the same jump (blk.1.gdn_a 3.1% off); seeds 8 and 11 agree within 2%
      const { tokens, targets } = batch(2, 12, 8);
      const { checks } = await directionalGradCheck(tr, tokens, targets, 2, 12, {
        // sign(W o) is piecewise constant: its true derivative is 0 almost everywhere, but any finite
        // step of W crosses some of the 24·32 sign boundaries, so finite differences see the jumps
        only: (name) => !encoders.includes(name),
        floor: 1e-4,
        // the loss is smooth and nearly linear in λ (it scales a 0.01·E shift): a large step lifts
        // its small directional derivative (~1e-3) above float32 noise in the loss
        step: (name, rms) => (name.endsWith('sk_energy_lambda') ? 0.1 : 1e-3 * Math.max(rms, 0.3)),
        retryAbove: 0.02,
        // everything upstream of o reaches the loss through sign(W o) too: a direction may cross a jump
        bestOf: 3,
      });
      expect(checks.length).toBe(tr.params.length - 3);
      expect(failures(checks)).toEqual([]);
      for (const name of encoders) expect(tr.readGrad(paramIndex(tr, name)).every((g) => g === 0)).toBe(true);
      // the energy path is live: its weights and λ have gradients
      expect(checks.find((c) => c.name === 'blk.1.sk_energy_lambda')!.analytic).not.toBe(0);
    } finally {
      tr.dispose();
    }
  });
});

describe.each(['XM', 'SK'] as const)('%s quantization-aware forward and optimisation', (kind) => {
  it('reports the loss the inference engine computes for the exported model', async () => {
    const tr = NativeTrainer.open(paths[kind]);
    try {
      wake(tr, kind);
      // move the weights off their initial ternary grid first, so export really requantizes;
      // T = 36 crosses an mLSTM checkpoint
      const B = 2;
      const T = 36;
      const { tokens, targets } = batch(B, T, 9);
      const { trained, served } = await trainedVsServedLoss(tr, paths[kind], path.join(dir, `exported-${kind}.gguf`), { tokens, targets, B, T });
      // same quantizers, float vs int32 accumulation (trainer-native's bound; measured here: 2e-9 XM, 2e-8 SK)
      expect(Math.abs(served - trained) / trained).toBeLessThan(2e-3);
    } finally {
      tr.dispose();
    }
  });

  it('AdamW lowers the loss on a repeated batch, deterministically', async () => {
    const run = async (): Promise<number[]> => {
      const tr = NativeTrainer.open(paths[kind]);
      try {
        tr.setAdamW({ beta1: 0.9, beta2: 0.95, eps: 1e-8, weightDecay: 0.1, clip: 1 });
        const { tokens, targets } = batch(4, 16, 3);
        // vectors are not decayed: they move only if their gradient is non-zero
        const watched = kind === 'XM' ? 'blk.1.xm_norm.bias' : 'blk.1.sk_energy_lambda';
        const before = tr.readParam(paramIndex(tr, watched));
        const losses: number[] = [];
        for (let s = 0; s < 6; s++) {
          const r = await tr.forwardBackward(tokens, targets, 4, 16);
          losses.push(r.lossSum / r.count);
          await tr.update(1e-2, 1 / r.count);
        }
        // the mixer's own parameters moved, not only the embedding and the FFNs
        expect(tr.readParam(paramIndex(tr, watched))).not.toEqual(before);
        return losses;
      } finally {
        tr.dispose();
      }
    };
    const a = await run();
    expect(a[5]!).toBeLessThan(a[0]! - 1);
    expect(await run()).toEqual(a);
  });
});
