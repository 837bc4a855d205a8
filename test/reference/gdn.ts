/**
 * Gated DeltaNet mixer (GD layers), ARCHITECTURES.md §2.5, recurrent form,
 * over a whole sequence from a zero state. Input: the block's RMS-normed
 * rows x_t [D]; output: the mixer's rows y_t [D] (before the residual add).
 *
 *   q̃, k̃, ṽ, g̃ = W_{q,k,v,g} x_t                     BitLinear (bitlinear.ts)
 *   a_t, b_t = W_a x_t, W_b x_t                        dense float
 *   q_t = L2norm_head(conv_q(q̃)_t) · d_k^{-1/2},  k_t = L2norm_head(conv_k(k̃)_t),  v_t = conv_v(ṽ)_t
 *   β_t[h] = σ(b_t[h]),  g_t[h] = −exp(A_log[h]) · softplus(a_t[h] + dt_bias[h]),  α_t = exp(g_t)
 *   S_t = α_t S_{t−1} + β_t (v_t − α_t S_{t−1} k_t) k_tᵀ,   o_t = S_t q_t        (per head, S [d_v, d_k])
 *   u_t[h] = RMSNorm_{d_v}(o_t[h]) ⊙ w_onorm ⊙ SiLU(g̃_t[h]),   y_t = W_o concat_h u_t[h]
 */
import { metaNumber } from '../../engine/gguf/types.ts';
import type { TernaryMatrix } from './bt2.ts';
import { ternaryMatvec, type QuantTracker } from './bitlinear.ts';
import { causalConvSilu } from './conv.ts';
import type { LayerContext, SequenceLayer } from './layer.ts';
import { l2normalize, matvec, rmsnorm, sigmoid, silu, softplus } from './ops.ts';

interface GdnWeights {
  wq: TernaryMatrix;
  wk: TernaryMatrix;
  wv: TernaryMatrix;
  wg: TernaryMatrix;
  wo: TernaryMatrix;
  /** [H, D] */
  wa: Float64Array;
  wb: Float64Array;
  aLog: Float64Array;
  dtBias: Float64Array;
  /** [H·d_k, K], [H·d_k, K], [H·d_v, K] */
  convQ: Float64Array;
  convK: Float64Array;
  convV: Float64Array;
  /** [d_v] */
  oNorm: Float64Array;
}

export function loadGdnLayer({ weights, prefix, D, eps }: LayerContext): SequenceLayer {
  const meta = weights.metadata;
  const H = metaNumber(meta, 'chimera.gdn.head_count');
  const dk = metaNumber(meta, 'chimera.gdn.head_dim');
  const dv = metaNumber(meta, 'chimera.gdn.value_dim');
  const K = metaNumber(meta, 'chimera.gdn.conv_kernel');
  const HK = H * dk;
  const HV = H * dv;
  const w: GdnWeights = {
    wq: weights.ternary(`${prefix}gdn_q.weight`, HK, D),
    wk: weights.ternary(`${prefix}gdn_k.weight`, HK, D),
    wv: weights.ternary(`${prefix}gdn_v.weight`, HV, D),
    wg: weights.ternary(`${prefix}gdn_g.weight`, HV, D),
    wo: weights.ternary(`${prefix}gdn_o.weight`, D, HV),
    wa: weights.f32(`${prefix}gdn_a.weight`, [H, D]),
    wb: weights.f32(`${prefix}gdn_b.weight`, [H, D]),
    aLog: weights.f32(`${prefix}gdn_a_log`, [H]),
    dtBias: weights.f32(`${prefix}gdn_dt_bias`, [H]),
    convQ: weights.f32(`${prefix}gdn_conv_q.weight`, [HK, K]),
    convK: weights.f32(`${prefix}gdn_conv_k.weight`, [HK, K]),
    convV: weights.f32(`${prefix}gdn_conv_v.weight`, [HV, K]),
    oNorm: weights.f32(`${prefix}gdn_o_norm.weight`, [dv]),
  };

  return {
    forward(xs: readonly Float64Array[], quant: QuantTracker): Float64Array[] {
      const T = xs.length;
      // Projections: one quantization of x_t feeds the four ternary matrices.
      const qRaw: Float64Array[] = [];
      const kRaw: Float64Array[] = [];
      const vRaw: Float64Array[] = [];
      const gRaw: Float64Array[] = [];
      const aRaw: Float64Array[] = [];
      const bRaw: Float64Array[] = [];
      for (const [t, x] of xs.entries()) {
        const xq = quant.quantize(x, t);
        qRaw.push(ternaryMatvec(w.wq, xq));
        kRaw.push(ternaryMatvec(w.wk, xq));
        vRaw.push(ternaryMatvec(w.wv, xq));
        gRaw.push(ternaryMatvec(w.wg, xq));
        aRaw.push(matvec(w.wa, x, H, D));
        bRaw.push(matvec(w.wb, x, H, D));
      }
      const qc = causalConvSilu(qRaw, w.convQ, HK, K);
      const kc = causalConvSilu(kRaw, w.convK, HK, K);
      const vc = causalConvSilu(vRaw, w.convV, HV, K);

      const u = Array.from({ length: T }, () => new Float64Array(HV));
      for (let h = 0; h < H; h++) {
        const S = new Float64Array(dv * dk); // [d_v, d_k], zero initial state
        const decayRate = -Math.exp(w.aLog[h]!);
        for (let t = 0; t < T; t++) {
          const q = l2normalize(qc[t]!.subarray(h * dk, (h + 1) * dk), 1 / Math.sqrt(dk));
          const k = l2normalize(kc[t]!.subarray(h * dk, (h + 1) * dk));
          const v = vc[t]!.subarray(h * dv, (h + 1) * dv);
          const beta = sigmoid(bRaw[t]![h]!);
          const alpha = Math.exp(decayRate * softplus(aRaw[t]![h]! + w.dtBias[h]!));
          const o = new Float64Array(dv);
          for (let i = 0; i < dv; i++) {
            let sk = 0;
            for (let j = 0; j < dk; j++) sk += S[i * dk + j]! * k[j]!;
            const delta = beta * (v[i]! - alpha * sk);
            let sq = 0;
            for (let j = 0; j < dk; j++) {
              const sij = alpha * S[i * dk + j]! + delta * k[j]!;
              S[i * dk + j] = sij;
              sq += sij * q[j]!;
            }
            o[i] = sq;
          }
          const on = rmsnorm(o, w.oNorm, eps);
          for (let i = 0; i < dv; i++) u[t]![h * dv + i] = on[i]! * silu(gRaw[t]![h * dv + i]!);
        }
      }
      return u.map((ut, t) => ternaryMatvec(w.wo, quant.quantize(ut, t)));
    },
  };
}
