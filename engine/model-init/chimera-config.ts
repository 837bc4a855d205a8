/**
 * The Chimera hyper-parameters as one typed value, their validation, and
 * their GGUF metadata (docs/format.md, `chimera.*`).
 */
import { BT2_GROUP, gv, type GgufValue } from '../gguf/types.ts';

/**
 * Layer (mixer) types (ARCHITECTURES.md §2.5–2.9): GD Gated DeltaNet, XM xLSTM mLSTM,
 * TM Titans MAC (paper variant §2.8-P), SK TSP span knot (inner GDN + energy heads).
 */
export type ChimeraLayerType = 'GD' | 'XM' | 'TM' | 'SK';
const LAYER_TYPES: readonly string[] = ['GD', 'XM', 'TM', 'SK'];

/** xLSTM mLSTM (XM layers), `chimera.xlstm.*`. */
export interface XlstmConfig {
  headCount: number;
  /** d: q/k/v and memory size per head. */
  headDim: number;
  /** Gate pre-activation soft cap c in c·tanh(z/c) (15). */
  gateSoftCap: number;
  /** Per-head LayerNorm epsilon (1e-5). */
  normEps: number;
}

/** Titans MAC (TM layers), `chimera.titans.*`. */
export interface TitansConfig {
  headCount: number;
  headDim: number;
  /** Hidden width d_m of the per-head memory MLP (2·d in lucidrains' MemoryMLP). */
  memoryDim: number;
  persistentSlots: number;
  /** Segment (= local attention window) length C_s. */
  segmentLength: number;
  /** θ_max: the memory step size is θ_max·σ(W_θ x + b_θ). */
  thetaMax: number;
}

/** TSP span knot (SK layers), `chimera.tsp.*`; the inner GDN uses `chimera.gdn.*`. */
export interface TspConfig {
  /** D_s: width of the sketch / role / filler encoders (D/4 in the reference). */
  sketchDim: number;
}

/** Mixture of experts, `chimera.moe.*`. */
export interface MoeConfig {
  /** Layer indices whose FFN is a MoE (the others are dense SwiGLU). */
  layers: number[];
  expertCount: number;
  /** top-K experts per token. */
  expertUsedCount: number;
  /** Shared experts, run on every token as one MLP of width sharedExpertCount·feedForwardLength. */
  sharedExpertCount: number;
  /** I_e, the width of each expert (multiple of 128). */
  feedForwardLength: number;
  routedScalingFactor: number;
}

/**
 * Hashed n-gram input embedding, `chimera.ngram.order` and the tensor `token_ngram.weight`
 * [rows, D] (c/src/ngram.h): each token's input adds the table row its bigram (and, at order 3,
 * its trigram) hashes to.
 */
export interface NgramConfig {
  /** 2: bigrams; 3: bigrams and trigrams (one shared table). */
  order: 2 | 3;
  /** Rows M of the table. */
  rows: number;
}

/**
 * Parcae looping (§2.11), `chimera.loop.*`: inclusive layer ranges that tile 0..L−1 in order
 * (prelude, loop, coda, each non-empty), loop counts 1..max (seed `loop_range`).
 */
export interface LoopingConfig {
  prelude: [number, number];
  loop: [number, number];
  coda: [number, number];
  /** Most loop iterations per token (seed loop_range[1]); loop layers keep this many states. */
  max: number;
  /** Loop count of a new context (seed loop_default). */
  default: number;
  /** Trainer metadata (seed backward_truncation): gradient through the last ⌈n/2⌉ iterations, or all. */
  backwardTruncation: 'half' | 'full';
}

export interface ChimeraConfig {
  /** general.name: the model id in /v1/models. */
  name: string;
  /** braid.provenance, e.g. "random-init (untrained)". */
  provenance: string;
  vocabSize: number;
  /** Hidden size D. */
  embeddingLength: number;
  /** SwiGLU width I. */
  feedForwardLength: number;
  /** One entry per layer; the length is L. */
  layerTypes: ChimeraLayerType[];
  /** GDN heads H. */
  headCount: number;
  /** Key/query head dim d_k. */
  headDim: number;
  /** Value head dim d_v. */
  valueDim: number;
  /** Short causal conv width K. */
  convKernel: number;
  /** Prefill chunk length C. */
  chunkSize: number;
  rmsNormEps: number;
  /** Nominal training context (recurrent layers have no hard limit). */
  contextLength: number;
  /** Required when layerTypes contains XM. */
  xlstm?: XlstmConfig;
  /** Required when layerTypes contains TM. */
  titans?: TitansConfig;
  /** Required when layerTypes contains SK. */
  tsp?: TspConfig;
  /** MoE FFN layers; absent or empty layers = every FFN is dense. */
  moe?: MoeConfig;
  /** Span-engine risk gate on the final hidden state (§2.13). */
  spanGate?: boolean;
  /** Parcae looping (§2.11); absent = every layer runs once. */
  looping?: LoopingConfig;
  /** Hashed n-gram input embedding; absent = the token embedding alone. */
  ngram?: NgramConfig;
}

function positiveInt(errors: string[], name: string, v: number): void {
  if (!Number.isInteger(v) || v < 1) errors.push(`${name} must be a positive integer, got ${v}`);
}

function multipleOf128(errors: string[], name: string, v: number, why: string): void {
  if (Number.isInteger(v) && v % BT2_GROUP !== 0) errors.push(`${name} = ${v} must be a multiple of ${BT2_GROUP} (${why})`);
}

/** Throws one error listing every problem, so a bad config is fixed in one go. */
export function validateChimeraConfig(c: ChimeraConfig): void {
  const errors: string[] = [];
  if (c.name.trim().length === 0) errors.push('name must not be empty');
  positiveInt(errors, 'vocabSize', c.vocabSize);
  positiveInt(errors, 'embeddingLength', c.embeddingLength);
  positiveInt(errors, 'feedForwardLength', c.feedForwardLength);
  positiveInt(errors, 'headCount', c.headCount);
  positiveInt(errors, 'headDim', c.headDim);
  positiveInt(errors, 'valueDim', c.valueDim);
  positiveInt(errors, 'convKernel', c.convKernel);
  positiveInt(errors, 'chunkSize', c.chunkSize);
  positiveInt(errors, 'contextLength', c.contextLength);
  if (c.layerTypes.length < 1) errors.push('layerTypes must name at least one layer');
  c.layerTypes.forEach((t, i) => {
    if (!LAYER_TYPES.includes(t)) errors.push(`layerTypes[${i}] = "${t}" is not one of ${LAYER_TYPES.join(', ')}`);
  });
  // BT2 matrices need their input width (GGUF ne0, "cols") to be a multiple of 128.
  multipleOf128(errors, 'embeddingLength', c.embeddingLength, 'input of gdn_q/k/v/g and ffn_gate/up');
  multipleOf128(errors, 'feedForwardLength', c.feedForwardLength, 'input of ffn_down');
  multipleOf128(errors, 'headCount*valueDim', c.headCount * c.valueDim, 'input of gdn_o');
  const uses = (t: ChimeraLayerType): boolean => c.layerTypes.includes(t);
  if (uses('XM')) {
    const x = c.xlstm;
    if (!x) errors.push('xlstm must be set when layerTypes contains XM');
    else {
      positiveInt(errors, 'xlstm.headCount', x.headCount);
      positiveInt(errors, 'xlstm.headDim', x.headDim);
      multipleOf128(errors, 'xlstm.headCount*headDim', x.headCount * x.headDim, 'input of xm_o');
      if (!(x.gateSoftCap > 0)) errors.push(`xlstm.gateSoftCap must be > 0, got ${x.gateSoftCap}`);
      if (!(x.normEps > 0 && x.normEps < 1)) errors.push(`xlstm.normEps must be in (0, 1), got ${x.normEps}`);
    }
  }
  if (uses('TM')) {
    const t = c.titans;
    if (!t) errors.push('titans must be set when layerTypes contains TM');
    else {
      positiveInt(errors, 'titans.headCount', t.headCount);
      positiveInt(errors, 'titans.headDim', t.headDim);
      positiveInt(errors, 'titans.memoryDim', t.memoryDim);
      positiveInt(errors, 'titans.segmentLength', t.segmentLength);
      // At least one: a GGUF tensor cannot be empty, so tm_pk / tm_pv need a slot.
      positiveInt(errors, 'titans.persistentSlots', t.persistentSlots);
      multipleOf128(errors, 'titans.headCount*headDim', t.headCount * t.headDim, 'input of tm_o, tm_km, tm_vm');
      if (!(t.thetaMax > 0 && t.thetaMax < 1000)) errors.push(`titans.thetaMax must be in (0, 1000), got ${t.thetaMax}`);
    }
  }
  if (uses('SK')) {
    const k = c.tsp;
    if (!k) errors.push('tsp must be set when layerTypes contains SK');
    else {
      positiveInt(errors, 'tsp.sketchDim', k.sketchDim);
      if (k.sketchDim > c.embeddingLength) errors.push(`tsp.sketchDim ${k.sketchDim} exceeds embeddingLength`);
    }
  }
  const moe = c.moe;
  if (moe && moe.layers.length > 0) {
    positiveInt(errors, 'moe.expertCount', moe.expertCount);
    positiveInt(errors, 'moe.expertUsedCount', moe.expertUsedCount);
    if (moe.expertUsedCount > moe.expertCount)
      errors.push(`moe.expertUsedCount ${moe.expertUsedCount} exceeds expertCount ${moe.expertCount}`);
    if (!Number.isInteger(moe.sharedExpertCount) || moe.sharedExpertCount < 0)
      errors.push(`moe.sharedExpertCount must be a non-negative integer, got ${moe.sharedExpertCount}`);
    positiveInt(errors, 'moe.feedForwardLength', moe.feedForwardLength);
    multipleOf128(errors, 'moe.feedForwardLength', moe.feedForwardLength, 'input of ffn_down_exps');
    if (!(moe.routedScalingFactor > 0)) errors.push(`moe.routedScalingFactor must be > 0, got ${moe.routedScalingFactor}`);
    const seen = new Set<number>();
    for (const l of moe.layers) {
      if (!Number.isInteger(l) || l < 0 || l >= c.layerTypes.length) errors.push(`moe.layers: ${l} is not a layer index`);
      else if (seen.has(l)) errors.push(`moe.layers lists layer ${l} twice`);
      seen.add(l);
    }
  }
  const lp = c.looping;
  if (lp) {
    const L = c.layerTypes.length;
    const [p0, p1] = lp.prelude;
    const [l0, l1] = lp.loop;
    const [c0, c1] = lp.coda;
    if (p0 !== 0 || p1 < p0 || l0 !== p1 + 1 || l1 < l0 || c0 !== l1 + 1 || c1 < c0 || c1 !== L - 1)
      errors.push(
        `looping ranges prelude [${lp.prelude}], loop [${lp.loop}], coda [${lp.coda}] must tile layers 0..${L - 1} in order (each non-empty)`,
      );
    if (!Number.isInteger(lp.max) || lp.max < 1 || lp.max > 64) errors.push(`looping.max must be an integer in 1..64, got ${lp.max}`);
    if (!Number.isInteger(lp.default) || lp.default < 1 || lp.default > lp.max)
      errors.push(`looping.default must be an integer in 1..looping.max, got ${lp.default}`);
    if (lp.backwardTruncation !== 'half' && lp.backwardTruncation !== 'full')
      errors.push(`looping.backwardTruncation must be "half" or "full", got ${String(lp.backwardTruncation)}`);
  }
  const ng = c.ngram;
  if (ng) {
    if (ng.order !== 2 && ng.order !== 3) errors.push(`ngram.order must be 2 or 3, got ${String(ng.order)}`);
    positiveInt(errors, 'ngram.rows', ng.rows);
  }
  if (!(c.rmsNormEps > 0 && c.rmsNormEps < 1)) errors.push(`rmsNormEps must be in (0, 1), got ${c.rmsNormEps}`);
  if (errors.length) throw new Error(`invalid Chimera config "${c.name}":\n  ${errors.join('\n  ')}`);
}

/** `general.*`, `braid.*` and `chimera.*` metadata entries for a config. */
export function chimeraMetadata(c: ChimeraConfig): [string, GgufValue][] {
  const meta: [string, GgufValue][] = [
    ['general.architecture', gv.str('chimera')],
    ['general.name', gv.str(c.name)],
    ['braid.provenance', gv.str(c.provenance)],
    ['braid.format_version', gv.u32(1)],
    ['chimera.vocab_size', gv.u32(c.vocabSize)],
    ['chimera.embedding_length', gv.u32(c.embeddingLength)],
    ['chimera.feed_forward_length', gv.u32(c.feedForwardLength)],
    ['chimera.block_count', gv.u32(c.layerTypes.length)],
    ['chimera.layer_types', gv.strArray(c.layerTypes)],
    ['chimera.rms_norm_eps', gv.f32(c.rmsNormEps)],
    ['chimera.context_length', gv.u32(c.contextLength)],
    ['chimera.gdn.head_count', gv.u32(c.headCount)],
    ['chimera.gdn.head_dim', gv.u32(c.headDim)],
    ['chimera.gdn.value_dim', gv.u32(c.valueDim)],
    ['chimera.gdn.conv_kernel', gv.u32(c.convKernel)],
    ['chimera.gdn.chunk_size', gv.u32(c.chunkSize)],
  ];
  const x = c.xlstm;
  if (x && c.layerTypes.includes('XM')) {
    meta.push(
      ['chimera.xlstm.head_count', gv.u32(x.headCount)],
      ['chimera.xlstm.head_dim', gv.u32(x.headDim)],
      ['chimera.xlstm.gate_soft_cap', gv.f32(x.gateSoftCap)],
      ['chimera.xlstm.norm_eps', gv.f32(x.normEps)],
    );
  }
  const t = c.titans;
  if (t && c.layerTypes.includes('TM')) {
    meta.push(
      ['chimera.titans.head_count', gv.u32(t.headCount)],
      ['chimera.titans.head_dim', gv.u32(t.headDim)],
      ['chimera.titans.memory_dim', gv.u32(t.memoryDim)],
      ['chimera.titans.persistent_slots', gv.u32(t.persistentSlots)],
      ['chimera.titans.segment_length', gv.u32(t.segmentLength)],
      ['chimera.titans.theta_max', gv.f32(t.thetaMax)],
    );
  }
  if (c.tsp && c.layerTypes.includes('SK')) meta.push(['chimera.tsp.sketch_dim', gv.u32(c.tsp.sketchDim)]);
  const m = c.moe;
  if (m && m.layers.length > 0) {
    meta.push(
      ['chimera.moe.layers', gv.numArray('u32', m.layers)],
      ['chimera.moe.expert_count', gv.u32(m.expertCount)],
      ['chimera.moe.expert_used_count', gv.u32(m.expertUsedCount)],
      ['chimera.moe.shared_expert_count', gv.u32(m.sharedExpertCount)],
      ['chimera.moe.feed_forward_length', gv.u32(m.feedForwardLength)],
      ['chimera.moe.routed_scaling_factor', gv.f32(m.routedScalingFactor)],
    );
  }
  if (c.spanGate !== undefined) meta.push(['chimera.span_engine.risk_gate', gv.u32(c.spanGate ? 1 : 0)]);
  if (c.ngram) meta.push(['chimera.ngram.order', gv.u32(c.ngram.order)]);
  const lp = c.looping;
  if (lp) {
    meta.push(
      ['chimera.loop.prelude', gv.numArray('u32', lp.prelude)],
      ['chimera.loop.loop', gv.numArray('u32', lp.loop)],
      ['chimera.loop.coda', gv.numArray('u32', lp.coda)],
      ['chimera.loop.max', gv.u32(lp.max)],
      ['chimera.loop.default', gv.u32(lp.default)],
      ['chimera.loop.backward_truncation', gv.str(lp.backwardTruncation)],
    );
  }
  return meta;
}

/** Whether layer n's FFN is a MoE. */
export function isMoeLayer(c: ChimeraConfig, n: number): boolean {
  return (c.moe?.layers ?? []).includes(n);
}

/** The default model's shape (models/chimera-tiny.gguf, trained by `npm run train:default`). */
export function chimeraTinyConfig(vocabSize: number): ChimeraConfig {
  return {
    name: 'chimera-tiny',
    provenance: 'random-init (untrained)',
    vocabSize,
    embeddingLength: 256,
    feedForwardLength: 768,
    layerTypes: ['GD', 'GD', 'GD', 'GD'],
    headCount: 4,
    headDim: 64,
    valueDim: 64,
    convKernel: 4,
    chunkSize: 64,
    rmsNormEps: 1e-6,
    contextLength: 4096,
  };
}

/**
 * The seed config (002: hidden 2560, intermediate 6912, 28 layers, 40 heads × 64,
 * layer pattern "GD XM GD TM GD XM GD SK" repeated, MoE at the TM and SK layers
 * [3, 7, …, 27] with 16 routed + 1 shared experts, top-2) for size and speed
 * measurements with untrained weights. moe_intermediate_size 1728 is not a
 * multiple of the BT2 group (128), so experts are 1792 wide (the FULL reference
 * rounds widths up likewise, to 256). Titans: d_m = 2·d (lucidrains' MemoryMLP),
 * 64 persistent slots, segment = local window 1024, θ_max 0.1. TSP sketch D/4.
 * Looping (seed `looping`): prelude 0–3, loop 4–23, coda 24–27, loop_range [1, 6],
 * loop_default 2, backward_truncation "half".
 */
export function chimeraSeedDimsConfig(vocabSize: number): ChimeraConfig {
  const pattern: ChimeraLayerType[] = ['GD', 'XM', 'GD', 'TM', 'GD', 'XM', 'GD', 'SK'];
  return {
    ...chimeraTinyConfig(vocabSize),
    name: 'chimera-2560-random',
    embeddingLength: 2560,
    feedForwardLength: 6912,
    layerTypes: Array.from({ length: 28 }, (_, i) => pattern[i % 8] as ChimeraLayerType),
    headCount: 40,
    xlstm: { headCount: 40, headDim: 64, gateSoftCap: 15, normEps: 1e-5 },
    titans: { headCount: 40, headDim: 64, memoryDim: 128, persistentSlots: 64, segmentLength: 1024, thetaMax: 0.1 },
    tsp: { sketchDim: 640 },
    moe: {
      layers: [3, 7, 11, 15, 19, 23, 27],
      expertCount: 16,
      expertUsedCount: 2,
      sharedExpertCount: 1,
      feedForwardLength: 1792,
      routedScalingFactor: 1,
    },
    spanGate: true,
    looping: SEED_LOOPING,
  };
}

/** The seed's `looping` block (28 layers). */
export const SEED_LOOPING: LoopingConfig = {
  prelude: [0, 3],
  loop: [4, 23],
  coda: [24, 27],
  max: 6,
  default: 2,
  backwardTruncation: 'half',
};
