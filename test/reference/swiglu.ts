/**
 * Dense SwiGLU MLP, ARCHITECTURES.md §2.3:
 *   FFN(x) = W_down (SiLU(W_gate x) ⊙ (W_up x)),  all three BitLinear (bitlinear.ts).
 */
import { metaNumber } from '../../engine/gguf/types.ts';
import { ternaryMatvec, type QuantTracker } from './bitlinear.ts';
import type { LayerContext, SequenceLayer } from './layer.ts';
import { silu } from './ops.ts';

export function loadSwigluLayer({ weights, prefix, D }: LayerContext): SequenceLayer {
  const I = metaNumber(weights.metadata, 'chimera.feed_forward_length');
  const gate = weights.ternary(`${prefix}ffn_gate.weight`, I, D);
  const up = weights.ternary(`${prefix}ffn_up.weight`, I, D);
  const down = weights.ternary(`${prefix}ffn_down.weight`, D, I);
  return {
    forward(xs: readonly Float64Array[], quant: QuantTracker): Float64Array[] {
      return xs.map((x, t) => {
        const xq = quant.quantize(x, t); // one quantization feeds gate and up
        const g = ternaryMatvec(gate, xq);
        const u = ternaryMatvec(up, xq);
        const hidden = Float64Array.from(g, (gi, i) => silu(gi) * u[i]!);
        return ternaryMatvec(down, quant.quantize(hidden, t));
      });
    },
  };
}
