/**
 * The Chimera hyper-parameters as one typed value, their validation, and
 * their GGUF metadata (docs/format.md, `chimera.*`).
 */
import { BT2_GROUP, gv, type GgufValue } from '../gguf/types.ts';

/** Layer (mixer) types. Only GD (Gated DeltaNet) exists today; XM, TM, SK are planned. */
export type ChimeraLayerType = 'GD';
const LAYER_TYPES: readonly string[] = ['GD'];

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
  if (!(c.rmsNormEps > 0 && c.rmsNormEps < 1)) errors.push(`rmsNormEps must be in (0, 1), got ${c.rmsNormEps}`);
  if (errors.length) throw new Error(`invalid Chimera config "${c.name}":\n  ${errors.join('\n  ')}`);
}

/** `general.*`, `braid.*` and `chimera.*` metadata entries for a config. */
export function chimeraMetadata(c: ChimeraConfig): [string, GgufValue][] {
  return [
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
}

/** The default model built by `npm install` (scripts/make-default-model.ts). */
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
 * The seed config's dimensions (002: hidden 2560, intermediate 6912, 28 layers,
 * 40 heads × 64) for size and speed measurements with untrained weights. Every
 * layer is GD until the other layer types exist.
 */
export function chimeraSeedDimsConfig(vocabSize: number): ChimeraConfig {
  return {
    ...chimeraTinyConfig(vocabSize),
    name: 'chimera-2560-random',
    embeddingLength: 2560,
    feedForwardLength: 6912,
    layerTypes: Array.from({ length: 28 }, () => 'GD' as const),
    headCount: 40,
  };
}
