/**
 * BitLinear, ARCHITECTURES.md §2.2 in the form docs/format.md fixes for
 * inference: ternary weights with a float scale per 128-weight group, and
 * activations quantized to int8 per 64-element block,
 *   s_b = max_{j∈b} |x_j| / 127 (1 if the block is all zero),
 *   q_j = clamp(round_half_even(x_j / s_b), −127, 127),
 *   y_r = Σ_g scale[r,g] · Σ_{b⊂g} s_b · Σ_{j∈b} q_j w_{r,j}.
 *
 * The quantizer is discontinuous: an input a rounding error away from a
 * half-integer boundary of x/s can land on either side. So it is evaluated
 * the way the library evaluates it — the input rounded to float32, the
 * absmax, s_b = amax/127 and x/s_b each rounded to float32 — which makes the
 * reference pick the library's integers whenever the two agree on the
 * float32 input. Everything after the integers (block dot products are exact
 * integers; scales combine in float64) is plain float64.
 *
 * The quantizer also reports how close its closest call was (the smallest
 * distance of x/s to a rounding boundary), so a caller can tell whether a
 * float32-vs-float64 difference upstream could have flipped an integer.
 */
import { GROUP, type TernaryMatrix } from './bt2.ts';

export const ACT_BLOCK = 64;

export interface QuantizedRow {
  /** int8 values [cols]. */
  q: Int8Array;
  /** Block scales [cols/64] (float32 values). */
  s: Float64Array;
  /** min over the row of |x/s − (nearest half-integer)|, for unclamped values. */
  margin: number;
}

/** Round half to even on a number already rounded to float32. */
function roundHalfEven(v: number): number {
  const f = Math.floor(v);
  const d = v - f;
  if (d !== 0.5) return d < 0.5 ? f : f + 1;
  return f % 2 === 0 ? f : f + 1;
}

export function quantizeRow(x: Float64Array): QuantizedRow {
  const cols = x.length;
  if (cols % ACT_BLOCK !== 0) throw new Error(`quantizeRow: ${cols} is not a multiple of ${ACT_BLOCK}`);
  const q = new Int8Array(cols);
  const s = new Float64Array(cols / ACT_BLOCK);
  let margin = Infinity;
  for (let b = 0; b < s.length; b++) {
    let amax = 0;
    for (let j = 0; j < ACT_BLOCK; j++) amax = Math.max(amax, Math.abs(Math.fround(x[b * ACT_BLOCK + j]!)));
    const sb = amax > 0 ? Math.fround(amax / 127) : 1;
    s[b] = sb;
    for (let j = 0; j < ACT_BLOCK; j++) {
      const v = Math.fround(Math.fround(x[b * ACT_BLOCK + j]!) / sb);
      const r = roundHalfEven(v);
      if (Math.abs(r) <= 127) margin = Math.min(margin, Math.abs(v - Math.floor(v) - 0.5));
      q[b * ACT_BLOCK + j] = Math.max(-127, Math.min(127, r));
    }
  }
  return { q, s, margin };
}

/** y = W x for a ternary W [rows, cols] and a quantized row. */
export function ternaryMatvec(W: TernaryMatrix, a: QuantizedRow): Float64Array {
  const { rows, cols } = W;
  if (a.q.length !== cols) throw new Error(`ternaryMatvec: [${rows}, ${cols}] × ${a.q.length}`);
  const groups = cols / GROUP;
  const y = new Float64Array(rows);
  for (let r = 0; r < rows; r++) {
    let acc = 0;
    for (let g = 0; g < groups; g++) {
      let groupSum = 0;
      for (let b = (g * GROUP) / ACT_BLOCK; b < ((g + 1) * GROUP) / ACT_BLOCK; b++) {
        let dot = 0; // exact: |q| ≤ 127, 64 terms
        for (let j = b * ACT_BLOCK; j < (b + 1) * ACT_BLOCK; j++) dot += a.q[j]! * W.w[r * cols + j]!;
        groupSum += a.s[b]! * dot;
      }
      acc += W.scales[r * groups + g]! * groupSum;
    }
    y[r] = acc;
  }
  return y;
}

/**
 * Tracks the rounding calls of a forward pass: the closest one overall, and
 * the first token position where a call came closer than `nearTie` (a flip
 * there can only change that position and later ones: every layer is causal).
 */
export class QuantTracker {
  minMargin = Infinity;
  count = 0;
  /** First position t with a rounding call closer than nearTie; Infinity if none. */
  firstNearTie = Infinity;

  constructor(readonly nearTie = 0) {}

  quantize(x: Float64Array, t: number): QuantizedRow {
    const a = quantizeRow(x);
    this.minMargin = Math.min(this.minMargin, a.margin);
    if (a.margin < this.nearTie) this.firstNearTie = Math.min(this.firstNearTie, t);
    this.count += x.length;
    return a;
  }
}
