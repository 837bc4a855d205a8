/**
 * The MoA tensor table: Hugging Face (PyTorch) name → GGUF name, with the HF
 * shape each must have for a config and the map from stored to effective
 * value. No MoA modelling code is public, so the HF names are the natural
 * PyTorch module names of our reconstruction (ARCHITECTURES.md §2-MoA);
 * docs/format.md ("braid convert") prints this table. The converter reads it
 * one way, the synthetic checkpoint generator the other, and the independent
 * PyTorch reference uses the same names, so they must stay stable.
 *
 * Positivity: α, ω and the ball radius are trained as unconstrained raw
 * parameters (`*_raw`) and used as softplus(raw) (M.2, M.6); the GGUF stores
 * the effective positive value, so the map is applied here, in double.
 */
import type { MoaHfConfig } from './moa-config.ts';

/** How a stored value becomes the value the GGUF holds. */
export type MoaValueMap = 'identity' | 'softplus';

export interface MoaTensorEntry {
  hf: string;
  gguf: string;
  /** HF (PyTorch) shape, outermost first. */
  shape: number[];
  /** GGUF dims (ne0 first): the reversed shape, with a depthwise conv's [C, 1, K] read as [C, K]. */
  ggufDims: number[];
  /** A matrix the GGUF may store as F16 (`--dtype f16`); vectors stay F32. */
  matrix: boolean;
  map: MoaValueMap;
  /** What it is, for docs and errors. */
  meaning: string;
}

/** softplus(x) = log(1 + e^x), overflow-safe. */
export function softplus(x: number): number {
  return x > 20 ? x : Math.log1p(Math.exp(x));
}

/** The raw value whose softplus is y > 0 (the generator's inverse map). */
export function inverseSoftplus(y: number): number {
  if (!(y > 0)) throw new Error(`inverse softplus of ${y}: needs a positive value`);
  return y > 20 ? y : Math.log(Math.expm1(y));
}

const PATHS = 4;
const BRANCHES = 3;

export function moaTensorTable(c: MoaHfConfig): MoaTensorEntry[] {
  const D = c.dim, V = c.vocab_size, Rh = c.router_hidden, K = c.conv_kernel, M = c.mixer_hidden;
  const F = c.ffn_hidden, C = c.conv_mult * D, r = c.lr_rank, R = c.r_basis;
  const out: MoaTensorEntry[] = [];
  const add = (hf: string, gguf: string, shape: number[], matrix: boolean, meaning: string, map: MoaValueMap = 'identity') =>
    out.push({ hf, gguf, shape, ggufDims: [...shape].reverse(), matrix, map, meaning });
  // Depthwise Conv1d weights are [C, 1, K] in PyTorch; GGUF keeps [C, K] (tap K−1 = current token, causal left padding).
  const conv = (hf: string, gguf: string, channels: number, meaning: string) =>
    out.push({ hf, gguf, shape: [channels, 1, K], ggufDims: [K, channels], matrix: false, map: 'identity', meaning });

  add('model.embed_tokens.weight', 'token_embd.weight', [V, D], true, 'token embedding, also the tied LM head');
  add('model.norm.weight', 'output_norm.weight', [D], false, 'final LayerNorm weight');
  add('model.norm.bias', 'output_norm.bias', [D], false, 'final LayerNorm bias');
  for (let n = 0; n < c.num_layers; n++) {
    const p = `model.layers.${n}.`;
    const g = `blk.${n}.`;
    add(`${p}ln1.weight`, `${g}attn_norm.weight`, [D], false, 'LN₁ weight');
    add(`${p}ln1.bias`, `${g}attn_norm.bias`, [D], false, 'LN₁ bias');
    add(`${p}ln2.weight`, `${g}ffn_norm.weight`, [D], false, 'LN₂ weight');
    add(`${p}ln2.bias`, `${g}ffn_norm.bias`, [D], false, 'LN₂ bias');
    add(`${p}router.fc1.weight`, `${g}moa_router_in.weight`, [Rh, D], true, 'router hidden W_r1');
    add(`${p}router.fc1.bias`, `${g}moa_router_in.bias`, [Rh], false, 'router hidden bias');
    add(`${p}router.fc2.weight`, `${g}moa_router_out.weight`, [PATHS, Rh], true, 'path logits W_r2 (LocalConv, MHA, ChannelMix, MQA)');
    add(`${p}router.fc2.bias`, `${g}moa_router_out.bias`, [PATHS], false, 'path logit bias');
    if (c.enable_feature_gates) {
      add(`${p}router.film_gamma.weight`, `${g}moa_film_gamma.weight`, [PATHS * D, Rh], true, 'FiLM Γ of the 4 paths stacked');
      add(`${p}router.film_beta.weight`, `${g}moa_film_beta.weight`, [PATHS * D, Rh], true, 'FiLM Β of the 4 paths stacked');
    }
    if (c.enable_router_gates) {
      add(`${p}router.bias_gate.weight`, `${g}moa_gate.weight`, [PATHS, D], true, 'router-bias gates c_p');
      add(`${p}router.bias_gate.bias`, `${g}moa_gate.bias`, [PATHS], false, 'router-bias gates c0_p');
    }
    conv(`${p}local_conv.dw.weight`, `${g}moa_conv_dw.weight`, D, 'LocalConv depthwise taps');
    add(`${p}local_conv.dw.bias`, `${g}moa_conv_dw.bias`, [D], false, 'LocalConv depthwise bias');
    add(`${p}local_conv.pw.weight`, `${g}moa_conv_pw.weight`, [D, D], true, 'LocalConv pointwise');
    for (const [mod, att, H, G] of [
      ['mha', 'moa_mha', c.attn_heads, c.attn_heads],
      ['mqa', 'moa_mqa', c.mqa_q_heads, 1],
    ] as const) {
      const d = D / H;
      const a = `${p}${mod}.`;
      const b = `${g}${att}_`;
      add(`${a}q_proj.weight`, `${b}q.weight`, [H * d, D], true, `${mod} queries`);
      add(`${a}k_proj.weight`, `${b}k.weight`, [G * d, D], true, `${mod} keys`);
      add(`${a}v_proj.weight`, `${b}v.weight`, [G * d, D], true, `${mod} values`);
      add(`${a}o_proj.weight`, `${b}o.weight`, [D, H * d], true, `${mod} output`);
      add(`${a}alpha_raw`, `${b}alpha`, [H], false, `${mod} score scale α = softplus(raw) per query head`, 'softplus');
      if (c.metric === 'maha_diag') add(`${a}maha_raw`, `${b}maha`, [H, d], false, `${mod} diagonal metric ω = softplus(raw)`, 'softplus');
      if (c.use_balls) {
        add(`${a}ball_origin`, `${b}ball_origin`, [H, d], false, `${mod} ball origins o_h`);
        add(`${a}ball_radius_raw`, `${b}ball_radius`, [H], false, `${mod} ball radius r = softplus(raw)`, 'softplus');
      }
      if (R > 0) {
        add(`${a}rope.phase_a`, `${b}rope_a`, [G, d / 2, R], false, `${mod} BlackHoleRoPE sin coefficients A`);
        add(`${a}rope.phase_b`, `${b}rope_b`, [G, d / 2, R], false, `${mod} BlackHoleRoPE cos coefficients B`);
        if (c.enable_v_energy) {
          add(`${a}rope.energy_c`, `${b}energy_c`, [G, R], false, `${mod} V energy sin coefficients C`);
          add(`${a}rope.energy_g`, `${b}energy_g`, [G, R], false, `${mod} V energy cos coefficients G`);
        }
      }
      if (c.discrepancy_modulation) add(`${a}rope.disc`, `${b}disc`, [G], false, `${mod} discrepancy gain c`);
    }
    add(`${p}channel_mix.fc1.weight`, `${g}moa_mix_up.weight`, [M, D], true, 'ChannelMix W_1');
    add(`${p}channel_mix.fc1.bias`, `${g}moa_mix_up.bias`, [M], false, 'ChannelMix b_1');
    add(`${p}channel_mix.fc2.weight`, `${g}moa_mix_down.weight`, [D, M], true, 'ChannelMix W_2');
    add(`${p}channel_mix.fc2.bias`, `${g}moa_mix_down.bias`, [D], false, 'ChannelMix b_2');
    add(`${p}ls_mix.gamma`, `${g}moa_ls_mix`, [D], false, 'LayerScale γ of the mixer branch');
    add(`${p}ls_ffn.gamma`, `${g}moa_ls_ffn`, [D], false, 'LayerScale γ of the HyperFFN branch');
    add(`${p}ffn.router.weight`, `${g}ffn_router.weight`, [BRANCHES, D], true, 'branch router W_π (SwiGLU, SepConv, LowRank)');
    add(`${p}ffn.swiglu.gate_proj.weight`, `${g}ffn_gate.weight`, [F, D], true, 'SwiGLU gate');
    add(`${p}ffn.swiglu.up_proj.weight`, `${g}ffn_up.weight`, [F, D], true, 'SwiGLU up');
    add(`${p}ffn.swiglu.down_proj.weight`, `${g}ffn_down.weight`, [D, F], true, 'SwiGLU down');
    add(`${p}ffn.sepconv.proj_in.weight`, `${g}ffn_conv_in.weight`, [C, D], true, 'SepConv W_a');
    conv(`${p}ffn.sepconv.dw.weight`, `${g}ffn_conv_dw.weight`, C, 'SepConv depthwise taps');
    add(`${p}ffn.sepconv.dw.bias`, `${g}ffn_conv_dw.bias`, [C], false, 'SepConv depthwise bias');
    add(`${p}ffn.sepconv.proj_out.weight`, `${g}ffn_conv_out.weight`, [D, C], true, 'SepConv W_b');
    add(`${p}ffn.lowrank.down.weight`, `${g}ffn_lr_down.weight`, [r, D], true, 'LowRank V');
    add(`${p}ffn.lowrank.up.weight`, `${g}ffn_lr_up.weight`, [D, r], true, 'LowRank U');
  }
  return out;
}

/** An optional untied-looking head: accepted only if it equals the embedding (MoA ties them). */
export const MOA_LM_HEAD = 'lm_head.weight';
