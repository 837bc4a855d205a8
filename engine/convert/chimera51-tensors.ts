/**
 * Chimera 5.1 state-dict names (NORESPI/chimera1, FULL lineage: model.py,
 * layers.py, moe.py, inference.py) → braid's GGUF tensors (docs/format.md,
 * Chimera). One GGUF tensor may gather several 5.1 tensors: the five SK
 * energy heads become the rows of `sk_energy.weight`, the routed experts the
 * slices of the 3-D `*_exps` tensors. BitLinear weights (the latent fp32
 * matrices) become BT2; depthwise Conv1d weights `[C, 1, K]` become `[C, K]`;
 * `[1, D]` Linear heads become vectors.
 *
 * Tensors the 5.1 state dict holds but braid's forward does not use (the
 * reference never uses them in its forward either, or they only shift logits
 * uniformly) are listed in CHIMERA51_IGNORED and skipped by name.
 */
import { GgmlType } from '../gguf/types.ts';
import { isMoeLayer, type ChimeraConfig } from '../model-init/chimera-config.ts';

export type Chimera51Kind = 'bt2' | 'matrix' | 'vector';

export interface Chimera51Entry {
  gguf: string;
  /** GGUF dims, ne0 first. */
  ggufDims: number[];
  kind: Chimera51Kind;
  /** The 5.1 tensors, in the order their values are concatenated. */
  parts: { hf: string; shape: number[] }[];
}

/** Ignored by prefix: modules outside braid's forward (span bank, STree, certificates other than risk, grammar, debt, valve, evolution, multimodal). */
export const CHIMERA51_IGNORED_PREFIXES = [
  'span_engine.span_bank.',
  'span_engine.tree_verifier.',
  'span_engine.scoring_weights',
  'span_engine.certificate.semantic_proj.',
  'span_engine.certificate.grammar_proj.',
  'span_engine.certificate.entity_proj.',
  'span_engine.certificate.boundary_proj.',
  'grammar.',
  'debt_ledger.',
  'entropy_valve.',
  'evolution.',
  'vision_encoder.',
  'audio_encoder.',
];
/** Ignored by suffix: BitLinear's caches of its own packed weights (recomputed from `weight`). */
export const CHIMERA51_IGNORED_SUFFIXES = ['._packed', '._alpha', '._buf'];

export function isIgnoredChimera51(name: string): boolean {
  return CHIMERA51_IGNORED_PREFIXES.some((p) => name.startsWith(p)) || CHIMERA51_IGNORED_SUFFIXES.some((s) => name.endsWith(s));
}

/** The tied head: accepted only when it equals the embedding. */
export const CHIMERA51_LM_HEAD = 'lm_head.weight';

export const ENERGY_HEADS = ['energy_autoregressive', 'energy_memory_coherence', 'energy_binding_fidelity', 'energy_grammar', 'energy_debt'];

export function chimera51TensorTable(c: ChimeraConfig): Chimera51Entry[] {
  const D = c.embeddingLength, I = c.feedForwardLength, H = c.headCount;
  const HK = H * c.headDim, HV = H * c.valueDim, K = c.convKernel;
  const out: Chimera51Entry[] = [];
  // shape = [rows, cols] (or [n, rows, cols]) as docs/format.md writes them; one 5.1 tensor each.
  const one = (gguf: string, kind: Chimera51Kind, shape: number[], hf: string, hfShape: number[] = shape) =>
    out.push({ gguf, ggufDims: [...shape].reverse(), kind, parts: [{ hf, shape: hfShape }] });

  one('token_embd.weight', 'matrix', [c.vocabSize, D], 'embed.weight');
  one('output_norm.weight', 'vector', [D], 'norm.weight');
  if (c.spanGate) {
    one('output_risk.weight', 'vector', [D], 'span_engine.certificate.risk_proj.weight', [1, D]);
    one('output_gate.weight', 'matrix', [D, D + 1], 'span_engine.risk_gate.weight');
  }
  const gdn = (g: string, p: string) => {
    one(`${g}gdn_q.weight`, 'bt2', [HK, D], `${p}q_proj.weight`);
    one(`${g}gdn_k.weight`, 'bt2', [HK, D], `${p}k_proj.weight`);
    one(`${g}gdn_v.weight`, 'bt2', [HV, D], `${p}v_proj.weight`);
    one(`${g}gdn_g.weight`, 'bt2', [HV, D], `${p}g_proj.weight`);
    one(`${g}gdn_o.weight`, 'bt2', [D, HV], `${p}o_proj.weight`);
    one(`${g}gdn_a.weight`, 'matrix', [H, D], `${p}a_proj.weight`);
    one(`${g}gdn_b.weight`, 'matrix', [H, D], `${p}b_proj.weight`);
    one(`${g}gdn_a_log`, 'vector', [H], `${p}A_log`);
    one(`${g}gdn_dt_bias`, 'vector', [H], `${p}dt_bias`);
    one(`${g}gdn_conv_q.weight`, 'vector', [HK, K], `${p}q_conv.conv.weight`, [HK, 1, K]);
    one(`${g}gdn_conv_k.weight`, 'vector', [HK, K], `${p}k_conv.conv.weight`, [HK, 1, K]);
    one(`${g}gdn_conv_v.weight`, 'vector', [HV, K], `${p}v_conv.conv.weight`, [HV, 1, K]);
    one(`${g}gdn_o_norm.weight`, 'vector', [c.valueDim], `${p}o_norm.weight`);
  };
  c.layerTypes.forEach((type, n) => {
    const g = `blk.${n}.`;
    const p = `layers.${n}.`;
    one(`${g}attn_norm.weight`, 'vector', [D], `${p}attn_norm.weight`);
    const a = `${p}attn.`;
    if (type === 'GD') gdn(g, a);
    if (type === 'SK' && c.tsp) {
      gdn(g, `${a}gdn.`);
      const S = c.tsp.sketchDim;
      one(`${g}sk_sketch.weight`, 'matrix', [S, D], `${a}sketch_encoder.weight`);
      one(`${g}sk_role.weight`, 'matrix', [S, D], `${a}role_encoder.weight`);
      one(`${g}sk_filler.weight`, 'matrix', [S, D], `${a}filler_encoder.weight`);
      out.push({
        gguf: `${g}sk_energy.weight`,
        ggufDims: [D, 5],
        kind: 'matrix',
        parts: ENERGY_HEADS.map((h) => ({ hf: `${a}${h}.weight`, shape: [1, D] })),
      });
      one(`${g}sk_energy_lambda`, 'vector', [5], `${a}energy_weights`);
    }
    if (type === 'XM' && c.xlstm) {
      const XH = c.xlstm.headCount * c.xlstm.headDim;
      const Hx = c.xlstm.headCount;
      one(`${g}xm_q.weight`, 'bt2', [XH, D], `${a}q_proj.weight`);
      one(`${g}xm_k.weight`, 'bt2', [XH, D], `${a}k_proj.weight`);
      one(`${g}xm_v.weight`, 'bt2', [XH, D], `${a}v_proj.weight`);
      one(`${g}xm_og.weight`, 'bt2', [XH, D], `${a}ogate.weight`);
      one(`${g}xm_o.weight`, 'bt2', [D, XH], `${a}o_proj.weight`);
      one(`${g}xm_i.weight`, 'vector', [Hx, D], `${a}igate.weight`);
      one(`${g}xm_f.weight`, 'vector', [Hx, D], `${a}fgate.weight`);
      one(`${g}xm_i.bias`, 'vector', [Hx], `${a}igate.bias`);
      one(`${g}xm_f.bias`, 'vector', [Hx], `${a}fgate.bias`);
      one(`${g}xm_norm.weight`, 'vector', [c.xlstm.headDim], `${a}o_norm.weight`);
      one(`${g}xm_norm.bias`, 'vector', [c.xlstm.headDim], `${a}o_norm.bias`);
    }
    one(`${g}ffn_norm.weight`, 'vector', [D], `${p}mlp_norm.weight`);
    const m = `${p}mlp.`;
    const moe = c.moe;
    if (moe && isMoeLayer(c, n)) {
      const E = moe.expertCount, Ie = moe.feedForwardLength, Ish = moe.sharedExpertCount * Ie;
      one(`${g}ffn_gate_inp.weight`, 'matrix', [E, D], `${m}gate.weight`);
      one(`${g}exp_probs_b.bias`, 'vector', [E], `${m}gate.e_score_correction_bias`);
      const experts = (gguf: string, proj: string, rows: number, cols: number) =>
        out.push({
          gguf: `${g}${gguf}`,
          ggufDims: [cols, rows, E],
          kind: 'bt2',
          parts: Array.from({ length: E }, (_, e) => ({ hf: `${m}experts.${e}.${proj}.weight`, shape: [rows, cols] })),
        });
      experts('ffn_gate_exps.weight', 'gate_proj', Ie, D);
      experts('ffn_up_exps.weight', 'up_proj', Ie, D);
      experts('ffn_down_exps.weight', 'down_proj', D, Ie);
      if (Ish > 0) {
        one(`${g}ffn_gate_shexp.weight`, 'bt2', [Ish, D], `${m}shared_experts.gate_proj.weight`);
        one(`${g}ffn_up_shexp.weight`, 'bt2', [Ish, D], `${m}shared_experts.up_proj.weight`);
        one(`${g}ffn_down_shexp.weight`, 'bt2', [D, Ish], `${m}shared_experts.down_proj.weight`);
      }
    } else {
      one(`${g}ffn_gate.weight`, 'bt2', [I, D], `${m}gate_proj.weight`);
      one(`${g}ffn_up.weight`, 'bt2', [I, D], `${m}up_proj.weight`);
      one(`${g}ffn_down.weight`, 'bt2', [D, I], `${m}down_proj.weight`);
    }
  });
  return out;
}

/** The GGUF type of an entry for a matrix storage choice. */
export function chimera51GgmlType(e: Chimera51Entry, matrices: 'f32' | 'f16'): number {
  if (e.kind === 'bt2') return GgmlType.BT2;
  if (e.kind === 'matrix' && matrices === 'f16') return GgmlType.F16;
  return GgmlType.F32;
}
