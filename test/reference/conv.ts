/**
 * Short causal depthwise convolution, ARCHITECTURES.md §2.4, over a whole
 * sequence from a zero history:
 *   y_t[c] = SiLU( Σ_{j=0}^{K−1} w[c, j] · x_{t−K+1+j}[c] ),  x_{<0} = 0,
 * w [channels, K] row-major (tap K−1 multiplies the current token).
 */
import { silu } from './ops.ts';

export function causalConvSilu(xs: readonly Float64Array[], w: Float64Array, channels: number, K: number): Float64Array[] {
  if (w.length !== channels * K) throw new Error(`causalConvSilu: ${w.length} weights for [${channels}, ${K}]`);
  return xs.map((_, t) => {
    const y = new Float64Array(channels);
    for (let c = 0; c < channels; c++) {
      let acc = 0;
      for (let j = 0; j < K; j++) {
        const src = t - K + 1 + j;
        if (src >= 0) acc += w[c * K + j]! * xs[src]![c]!;
      }
      y[c] = silu(acc);
    }
    return y;
  });
}
