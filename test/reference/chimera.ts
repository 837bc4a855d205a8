/**
 * The whole Chimera forward in float64, ARCHITECTURES.md §2.0 without
 * looping or the span gate (what GD-only files contain today):
 *   x_t ← E[id_t]
 *   per block i:  x ← x + Mixer_i(RMSNorm(x; attn_norm_i)),  x ← x + FFN_i(RMSNorm(x; ffn_norm_i))
 *   h ← RMSNorm(x; output_norm),  logits_t ← E h_t   (tied head)
 * Mixers and FFNs come from module maps keyed by chimera.layer_types; a layer
 * type without an entry is an error, never silently skipped.
 */
import { metaNumber, metaStringArray } from '../../engine/gguf/types.ts';
import { QuantTracker } from './bitlinear.ts';
import { loadGdnLayer } from './gdn.ts';
import type { LayerBuilder, SequenceLayer } from './layer.ts';
import { matvec, rmsnorm } from './ops.ts';
import { loadSwigluLayer } from './swiglu.ts';
import { GgufWeights } from './weights.ts';

/** Layer type (chimera.layer_types entry) → mixer builder. */
export const MIXERS: Readonly<Record<string, LayerBuilder>> = {
  GD: loadGdnLayer,
};

/** FFN kind → builder. Every layer is dense today; MoE layers will pick theirs from metadata. */
export const FFNS: Readonly<Record<string, LayerBuilder>> = {
  dense: loadSwigluLayer,
};

interface Block {
  attnNorm: Float64Array;
  mixer: SequenceLayer;
  ffnNorm: Float64Array;
  ffn: SequenceLayer;
}

export interface ReferenceOutput {
  /** [T][V] */
  logits: Float64Array[];
  /** Final-norm hidden states [T][D] (what embeddings pool). */
  hidden: Float64Array[];
  /** Closest call of any int8 activation rounding (distance of x/s to a .5 boundary). */
  minQuantMargin: number;
  /** Activations quantized. */
  quantized: number;
  /** First position with a rounding call closer than the nearTie passed to forward (Infinity if none). */
  firstNearTie: number;
}

export class ChimeraReference {
  readonly V: number;
  readonly D: number;
  readonly eps: number;
  readonly layerTypes: readonly string[];
  private readonly embd: Float64Array;
  private readonly outputNorm: Float64Array;
  private readonly blocks: Block[];

  constructor(path: string) {
    const weights = new GgufWeights(path);
    const meta = weights.metadata;
    this.V = metaNumber(meta, 'chimera.vocab_size');
    this.D = metaNumber(meta, 'chimera.embedding_length');
    this.eps = metaNumber(meta, 'chimera.rms_norm_eps');
    this.layerTypes = metaStringArray(meta, 'chimera.layer_types');
    if (this.layerTypes.length !== metaNumber(meta, 'chimera.block_count')) throw new Error('layer_types and block_count disagree');
    this.embd = weights.f32('token_embd.weight', [this.V, this.D]);
    this.outputNorm = weights.f32('output_norm.weight', [this.D]);
    this.blocks = this.layerTypes.map((type, i) => {
      const mixer = MIXERS[type];
      if (mixer === undefined) throw new Error(`layer ${i}: the reference has no mixer for type "${type}"`);
      const ctx = { weights, prefix: `blk.${i}.`, D: this.D, eps: this.eps };
      return {
        attnNorm: weights.f32(`blk.${i}.attn_norm.weight`, [this.D]),
        mixer: mixer(ctx),
        ffnNorm: weights.f32(`blk.${i}.ffn_norm.weight`, [this.D]),
        ffn: FFNS.dense!(ctx),
      };
    });
  }

  /** nearTie: report the first position whose int8 rounding came closer than this to a boundary. */
  forward(tokens: readonly number[], nearTie = 0): ReferenceOutput {
    const quant = new QuantTracker(nearTie);
    let x = tokens.map((id) => {
      if (!Number.isInteger(id) || id < 0 || id >= this.V) throw new Error(`token ${id} outside the vocabulary`);
      return this.embd.slice(id * this.D, (id + 1) * this.D);
    });
    for (const b of this.blocks) {
      const mixed = b.mixer.forward(x.map((r) => rmsnorm(r, b.attnNorm, this.eps)), quant);
      x = x.map((r, t) => Float64Array.from(r, (v, j) => v + mixed[t]![j]!));
      const ffn = b.ffn.forward(x.map((r) => rmsnorm(r, b.ffnNorm, this.eps)), quant);
      x = x.map((r, t) => Float64Array.from(r, (v, j) => v + ffn[t]![j]!));
    }
    const hidden = x.map((r) => rmsnorm(r, this.outputNorm, this.eps));
    const logits = hidden.map((h) => matvec(this.embd, h, this.V, this.D));
    return { logits, hidden, minQuantMargin: quant.minMargin, quantized: quant.count, firstNearTie: quant.firstNearTie };
  }
}
