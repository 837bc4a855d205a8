/**
 * Helpers shared by the trainer test files: deterministic batches and directions, the
 * directional finite-difference check of every parameter, and the C inference engine's loss
 * of an exported model (the reference the quantization-aware forward must equal).
 */
import { NativeModel } from '../../engine/model/native-model.ts';
import { exportModel } from '../../engine/training/export-model.ts';
import type { NativeTrainer } from '../../engine/training/native-trainer.ts';

/** The vocabulary of the committed 4k tokenizer every tiny test model uses. */
export const TINY_VOCAB = 4096;

/** Deterministic LCG batch: B rows of T tokens; every 5th target is −1. */
export function batch(B: number, T: number, seed: number, V = TINY_VOCAB): { tokens: Int32Array; targets: Int32Array } {
  let s = seed >>> 0;
  const next = (): number => {
    s = (Math.imul(s, 1103515245) + 12345) >>> 0;
    return (s >>> 8) % V;
  };
  const tokens = new Int32Array(B * T);
  const targets = new Int32Array(B * T);
  for (let i = 0; i < B * T; i++) tokens[i] = next();
  for (let i = 0; i < B * T; i++) targets[i] = i % 5 === 4 ? -1 : next();
  return { tokens, targets };
}

/** n standard normal floats (Box–Muller over an LCG). */
export function gaussian(n: number, seed: number): Float32Array {
  let s = seed >>> 0;
  const u = (): number => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return (s + 0.5) / 4294967296;
  };
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = Math.sqrt(-2 * Math.log(u())) * Math.cos(2 * Math.PI * u());
  return out;
}

export interface GradCheck {
  name: string;
  analytic: number;
  fd: number;
  /** |fd − analytic| / max(|analytic|, floor·|loss|) */
  rel: number;
}

export interface GradCheckOptions {
  /** Finite-difference step for a tensor of root-mean-square rms (default: trainer-native's rule). */
  step?: (name: string, rms: number) => number;
  /** Relative floor of the error denominator, times |loss| (default 1e-3). */
  floor?: number;
  /**
   * Tolerance at which a disagreement is re-examined at h/2: if the two finite differences
   * disagree with each other, the step crossed a kink or jump of a piecewise function (a
   * sign, a max branch) and another direction is tried, up to 3 (default: no retry).
   */
  retryAbove?: number;
  /** Which parameters to check (default: all). */
  only?: (name: string) => boolean;
  /**
   * Up to this many directions; the best agreement counts (default 1). For layers with a
   * sign() on the path (the SK energy heads), a jump can lie within both h and h/2 of the
   * point, which retryAbove cannot tell from a real error; another direction avoids it.
   */
  bestOf?: number;
}

/**
 * Directional derivative of the summed loss along a random direction, per parameter: the
 * gradient (one forward/backward) against central differences of evaluate(). Large enough to
 * rise above float32 rounding in the loss, and it covers every coordinate at once.
 */
export async function directionalGradCheck(
  tr: NativeTrainer,
  tokens: Int32Array,
  targets: Int32Array,
  B: number,
  T: number,
  o: GradCheckOptions = {},
): Promise<{ loss: number; count: number; checks: GradCheck[] }> {
  // step: small against the weights (linear regime), large against float32 noise in the loss
  // (small tensors such as gdn_b, rms ~0.02, need the 0.3 floor: with 0.05 the noise reached 3%)
  const step = o.step ?? ((_name: string, rms: number) => 1e-3 * Math.max(rms, 0.3));
  const floor = o.floor ?? 1e-3;
  tr.zeroGrad();
  const base = await tr.forwardBackward(tokens, targets, B, T);
  const checks: GradCheck[] = [];
  for (const p of tr.params) {
    if (o.only && !o.only(p.name)) continue;
    const w = tr.readParam(p.index);
    const g = tr.readGrad(p.index);
    let rms = 0;
    for (const x of w) rms += x * x;
    rms = Math.sqrt(rms / w.length);
    const h = step(p.name, rms);
    const fdAlong = async (u: Float32Array, hh: number): Promise<number> => {
      const at = async (sign: number): Promise<number> => {
        const moved = new Float32Array(w.length);
        for (let i = 0; i < w.length; i++) moved[i] = w[i]! + sign * hh * u[i]!;
        tr.writeParam(p.index, moved);
        return (await tr.evaluate(tokens, targets, B, T)).lossSum;
      };
      const fd = ((await at(1)) - (await at(-1))) / (2 * hh);
      tr.writeParam(p.index, w);
      return fd;
    };
    const denom = (a: number): number => Math.max(Math.abs(a), floor * Math.abs(base.lossSum));
    let check: GradCheck | null = null;
    const attempts = Math.max(o.retryAbove === undefined ? 1 : 3, o.bestOf ?? 1);
    for (let attempt = 0; attempt < attempts; attempt++) {
      const u = gaussian(w.length, 1000 + p.index + 7919 * attempt);
      let analytic = 0;
      for (let i = 0; i < w.length; i++) analytic += g[i]! * u[i]!;
      const fd = await fdAlong(u, h);
      const next = { name: p.name, analytic, fd, rel: Math.abs(fd - analytic) / denom(analytic) };
      if (check === null || next.rel < check.rel) check = next;
      if (o.retryAbove === undefined || check.rel < o.retryAbove) break;
      if (attempt + 1 >= (o.bestOf ?? 1)) {
        const fdHalf = await fdAlong(u, h / 2);
        if (Math.abs(fdHalf - fd) / denom(analytic) < o.retryAbove / 2) break; // smooth here: a real error
      }
    }
    checks.push(check!);
  }
  return { loss: base.lossSum, count: base.count, checks };
}

/** Summed cross-entropy of the C inference engine's logits over targets ≥ 0, one context per row. */
export async function inferenceLoss(
  modelPath: string,
  tokens: Int32Array,
  targets: Int32Array,
  B: number,
  T: number,
  V = TINY_VOCAB,
  loops?: number,
): Promise<number> {
  const model = await NativeModel.load(modelPath);
  try {
    let lossSum = 0;
    for (let b = 0; b < B; b++) {
      const ctx = model.createContext(T);
      const logits = await ctx.eval(Array.from(tokens.subarray(b * T, (b + 1) * T)), { allLogits: true, ...(loops === undefined ? {} : { loops }) });
      for (let t = 0; t < T; t++) {
        const y = targets[b * T + t]!;
        if (y < 0) continue;
        const row = logits.subarray(t * V, (t + 1) * V);
        let mx = -Infinity;
        for (const x of row) mx = Math.max(mx, x);
        let sum = 0;
        for (const x of row) sum += Math.exp(x - mx);
        lossSum += mx + Math.log(sum) - row[y]!;
      }
      ctx.dispose();
    }
    return lossSum;
  } finally {
    await model.dispose();
  }
}

/** Writes the trainer's weights as a GGUF beside the base model's metadata (a test summary). */
export async function exportForTest(tr: NativeTrainer, basePath: string, outPath: string, steps = 0): Promise<void> {
  await exportModel(basePath, outPath, tr, {
    name: 'exported', recipe: 'test', steps, tokens: 0, finalLoss: null, heldOutLoss: null,
    heldOutBpb: null, seed: 0, configHash: 'test', date: new Date(0),
  });
}

/**
 * `steps` AdamW steps on one batch (off the initial ternary grid, so the export really
 * requantizes), then the trainer's QAT loss and the C inference engine's loss of the exported
 * model on that batch: the two must agree (same quantizers, float vs int32 sums).
 */
export async function trainedVsServedLoss(
  tr: NativeTrainer,
  basePath: string,
  outPath: string,
  b: { tokens: Int32Array; targets: Int32Array; B: number; T: number },
  steps = 3,
): Promise<{ trained: number; served: number }> {
  for (let s = 0; s < steps; s++) {
    const r = await tr.forwardBackward(b.tokens, b.targets, b.B, b.T);
    await tr.update(3e-3, 1 / r.count);
  }
  const trained = (await tr.evaluate(b.tokens, b.targets, b.B, b.T)).lossSum;
  await exportForTest(tr, basePath, outPath, steps);
  return { trained, served: await inferenceLoss(outPath, b.tokens, b.targets, b.B, b.T) };
}
