/**
 * What every reference layer is: a sequence-to-sequence map over whole
 * prompts (rows [T][D] in, rows [T][D] out) from a zero recurrent state,
 * built from the GGUF weights of one block. chimera.ts picks the builder per
 * layer type from a module map, so a new layer type is one new file plus one
 * map entry.
 */
import type { QuantTracker } from './bitlinear.ts';
import type { GgufWeights } from './weights.ts';

export interface SequenceLayer {
  forward(xs: readonly Float64Array[], quant: QuantTracker): Float64Array[];
}

export interface LayerContext {
  weights: GgufWeights;
  /** "blk.N." */
  prefix: string;
  /** Hidden size. */
  D: number;
  /** chimera.rms_norm_eps. */
  eps: number;
}

export type LayerBuilder = (ctx: LayerContext) => SequenceLayer;
