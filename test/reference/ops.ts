/**
 * Element-wise pieces of ARCHITECTURES.md §2.1–2.5 in float64: RMSNorm,
 * L2 normalisation, SiLU, sigmoid, softplus, and a dense matrix-vector product.
 */

/** §2.1: y = w ⊙ x / sqrt(mean(x²) + ε); w undefined means all ones. */
export function rmsnorm(x: Float64Array, w: Float64Array | undefined, eps: number): Float64Array {
  let ss = 0;
  for (const v of x) ss += v * v;
  const inv = 1 / Math.sqrt(ss / x.length + eps);
  return Float64Array.from(x, (v, i) => (w === undefined ? 1 : w[i]!) * v * inv);
}

/** u ↦ u / max(‖u‖, 1e-12) · scale (PyTorch F.normalize, then a scale). */
export function l2normalize(x: Float64Array, scale = 1): Float64Array {
  let ss = 0;
  for (const v of x) ss += v * v;
  const k = scale / Math.max(Math.sqrt(ss), 1e-12);
  return Float64Array.from(x, (v) => v * k);
}

export const sigmoid = (z: number): number => 1 / (1 + Math.exp(-z));
export const silu = (z: number): number => z * sigmoid(z);
/** log(1 + e^z), without overflow for large z. */
export const softplus = (z: number): number => (z > 30 ? z : Math.log1p(Math.exp(z)));

/** y = W x for W [rows, cols] row-major. */
export function matvec(W: Float64Array, x: Float64Array, rows: number, cols: number): Float64Array {
  if (x.length !== cols || W.length !== rows * cols) throw new Error(`matvec: [${rows}, ${cols}] × ${x.length}`);
  const y = new Float64Array(rows);
  for (let r = 0; r < rows; r++) {
    let acc = 0;
    for (let j = 0; j < cols; j++) acc += W[r * cols + j]! * x[j]!;
    y[r] = acc;
  }
  return y;
}
