/**
 * Exports a braid Chimera GGUF (e.g. from writeRandomChimera) as a Hugging
 * Face folder under the Chimera 5.1 reference's names (config.json with the
 * 5.1 keys, model.safetensors, tokenizer.json), so `braid convert` can be
 * tested on a 5.1-style checkpoint whose right answer is known: converting
 * it back must give the original tensors bit for bit.
 *
 * BitLinear weights are stored in 5.1 as latent fp32 matrices that the
 * converter quantizes. For a BT2 group with codes w (n of them non-zero) and
 * scale s, the latent values are w_j · s · m_j with the m_j powers of two
 * summing to 128 (zeros stay 0): their absmean is exactly s and every
 * |W_j / s| = m_j >= 1 rounds and clamps back to ±1, so re-quantization
 * reproduces codes and scale exactly (all products by powers of two are exact
 * in f32). Only an all-zero group (probability ~0.31^128) cannot keep its scale.
 *
 * Not exportable (the converter refuses them too): TM layers, Parcae looping,
 * widths 5.1 would round differently (intermediate not a multiple of 256).
 */
import { copyFileSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { chimera51TensorTable } from '../../engine/convert/chimera51-tensors.ts';
import { writeCheckpointTensors } from '../../engine/convert/checkpoint-tensors.ts';
import { halfToFloat } from '../../engine/convert/half.ts';
import type { SafetensorToWrite } from '../../engine/convert/safetensors.ts';
import { unpackBt2 } from '../../engine/gguf/bt2.ts';
import { parseGguf } from '../../engine/gguf/reader.ts';
import {
  GgmlType,
  metaNumber,
  metaNumberArray,
  metaOptNumber,
  metaString,
  metaStringArray,
  type GgufFile,
  type GgufMetadata,
} from '../../engine/gguf/types.ts';
import type { ChimeraConfig, ChimeraLayerType } from '../../engine/model-init/chimera-config.ts';
import { tokenizerSpecFromHf } from '../../engine/tokenizer/hf.ts';
import { TINY_TOKENIZER } from './make-hf-checkpoint.ts';

/** The ChimeraConfig of a GGUF's metadata (the subset 5.1 can express). */
export function chimeraConfigFromGguf(meta: GgufMetadata): ChimeraConfig {
  if (metaString(meta, 'general.architecture') !== 'chimera') throw new Error('not a Chimera GGUF');
  if (meta.has('chimera.loop.loop')) throw new Error('looping models have no Chimera 5.1 equivalent (§2.11)');
  const types = metaStringArray(meta, 'chimera.layer_types') as ChimeraLayerType[];
  if (types.includes('TM')) throw new Error('TM layers have no Chimera 5.1 equivalent (§2.8)');
  const c: ChimeraConfig = {
    name: metaString(meta, 'general.name'),
    provenance: metaString(meta, 'braid.provenance'),
    vocabSize: metaNumber(meta, 'chimera.vocab_size'),
    embeddingLength: metaNumber(meta, 'chimera.embedding_length'),
    feedForwardLength: metaNumber(meta, 'chimera.feed_forward_length'),
    layerTypes: types,
    headCount: metaNumber(meta, 'chimera.gdn.head_count'),
    headDim: metaNumber(meta, 'chimera.gdn.head_dim'),
    valueDim: metaNumber(meta, 'chimera.gdn.value_dim'),
    convKernel: metaNumber(meta, 'chimera.gdn.conv_kernel'),
    chunkSize: metaNumber(meta, 'chimera.gdn.chunk_size'),
    rmsNormEps: metaNumber(meta, 'chimera.rms_norm_eps'),
    contextLength: metaNumber(meta, 'chimera.context_length'),
    spanGate: (metaOptNumber(meta, 'chimera.span_engine.risk_gate') ?? 0) === 1,
  };
  if (types.includes('XM')) {
    c.xlstm = {
      headCount: metaNumber(meta, 'chimera.xlstm.head_count'),
      headDim: metaNumber(meta, 'chimera.xlstm.head_dim'),
      gateSoftCap: metaNumber(meta, 'chimera.xlstm.gate_soft_cap'),
      normEps: metaNumber(meta, 'chimera.xlstm.norm_eps'),
    };
  }
  if (types.includes('SK')) c.tsp = { sketchDim: metaNumber(meta, 'chimera.tsp.sketch_dim') };
  if (meta.has('chimera.moe.layers')) {
    c.moe = {
      layers: [...metaNumberArray(meta, 'chimera.moe.layers')],
      expertCount: metaNumber(meta, 'chimera.moe.expert_count'),
      expertUsedCount: metaNumber(meta, 'chimera.moe.expert_used_count'),
      sharedExpertCount: metaNumber(meta, 'chimera.moe.shared_expert_count'),
      feedForwardLength: metaNumber(meta, 'chimera.moe.feed_forward_length'),
      routedScalingFactor: metaNumber(meta, 'chimera.moe.routed_scaling_factor'),
    };
  }
  return c;
}

/** The 5.1 config.json that describes `c`, or an error naming what 5.1 cannot express. */
export function chimera51ConfigJson(c: ChimeraConfig, ids: { bos: number; eos: number; pad: number }): Record<string, unknown> {
  const bad: string[] = [];
  const D = c.embeddingLength;
  if (c.valueDim !== c.headDim) bad.push(`value_dim ${c.valueDim} != head_dim ${c.headDim} (5.1 has expand_v = 1)`);
  if (c.convKernel !== 4) bad.push(`conv_kernel ${c.convKernel} (5.1 uses 4)`);
  if (c.feedForwardLength % 256) bad.push(`feed_forward_length ${c.feedForwardLength} (5.1 rounds to a multiple of 256)`);
  if (c.xlstm && (c.xlstm.headCount !== c.headCount || c.xlstm.gateSoftCap !== 15 || Math.fround(c.xlstm.normEps) !== Math.fround(1e-5))) {
    bad.push('xlstm heads must equal num_heads, soft cap 15, LayerNorm eps 1e-5 (as 5.1)');
  }
  if (c.tsp && c.tsp.sketchDim !== Math.floor(D / 4)) bad.push(`tsp sketch_dim ${c.tsp.sketchDim} (5.1 uses hidden_size // 4)`);
  if (c.moe && c.moe.routedScalingFactor !== 1) bad.push('moe routed_scaling_factor must be 1');
  if (bad.length) throw new Error(`no Chimera 5.1 config expresses this model: ${bad.join('; ')}`);
  const json: Record<string, unknown> = {
    architectures: ['Chimera51ForCausalLM'],
    model_type: 'chimera51',
    hidden_size: D,
    intermediate_size: c.feedForwardLength,
    num_hidden_layers: c.layerTypes.length,
    num_heads: c.headCount,
    head_dim: c.headDim,
    hidden_act: 'swiglu',
    rms_norm_eps: c.rmsNormEps,
    vocab_size: c.vocabSize,
    max_position_embeddings: c.contextLength,
    tie_word_embeddings: true,
    torch_dtype: 'float32',
    bos_token_id: ids.bos,
    eos_token_id: ids.eos,
    pad_token_id: ids.pad,
    quantization: { method: 'bitnet', weight_scale: 'absmean_per_group', group_size: 128 },
    backbone: {
      layer_pattern: c.layerTypes.join(' '),
      layer_aliases: { GD: 'gated_deltanet', XM: 'xlstm_m', TM: 'titans_mac', SK: 'tsp_span_knot' },
      moe: c.moe
        ? {
            enabled: true,
            layers: c.moe.layers,
            n_routed_experts: c.moe.expertCount,
            n_shared_experts: c.moe.sharedExpertCount,
            num_experts_per_tok: c.moe.expertUsedCount,
            moe_intermediate_size: c.moe.feedForwardLength,
          }
        : { enabled: false, layers: [] },
    },
    gated_deltanet: { chunk_size: c.chunkSize },
    xlstm: { memory_size_per_head: [c.xlstm?.headDim ?? 64, c.xlstm?.headDim ?? 64] },
    looping: { enabled: false },
    span_inference: { enabled: c.spanGate === true },
  };
  return json;
}

const POWERS = new Map<number, number[]>();

/** Powers of two, `n` of them (1..128), summing to 128 (memoized: every group asks). */
function powersSumming128(n: number): number[] {
  const known = POWERS.get(n);
  if (known) return known;
  const parts = [128];
  for (let i = 0; parts.length < n; ) {
    // Split the first part still larger than 1 (parts stay sorted, largest first).
    while (parts[i]! === 1) i++;
    const half = parts[i]! / 2;
    parts.splice(i, 1, half, half);
  }
  POWERS.set(n, parts);
  return parts;
}

/** Latent fp32 weights whose BT2 quantization is exactly (codes, scales); see the header. */
export function bt2Latent(bytes: Uint8Array, rows: number, cols: number): Float32Array {
  const { w, scales } = unpackBt2(bytes, rows, cols);
  const out = new Float32Array(rows * cols);
  const groups = cols / 128;
  for (let r = 0; r < rows; r++) {
    for (let g = 0; g < groups; g++) {
      const base = r * cols + g * 128;
      const s = scales[r * groups + g]!;
      let n = 0;
      for (let j = 0; j < 128; j++) if (w[base + j] !== 0) n++;
      if (n === 0) continue;
      const m = powersSumming128(n);
      let k = 0;
      for (let j = 0; j < 128; j++) if (w[base + j] !== 0) out[base + j] = w[base + j]! * s * m[k++]!;
    }
  }
  return out;
}

function floatValues(file: GgufFile, bytes: Uint8Array, name: string): Float32Array {
  const t = file.tensors.find((x) => x.name === name)!;
  const at = file.dataOffset + t.offset;
  const n = t.dims.reduce((a, b) => a * b, 1);
  const view = new DataView(bytes.buffer, bytes.byteOffset + at, t.byteSize!);
  const out = new Float32Array(n);
  if (t.type === GgmlType.F32) for (let i = 0; i < n; i++) out[i] = view.getFloat32(4 * i, true);
  else if (t.type === GgmlType.F16) for (let i = 0; i < n; i++) out[i] = halfToFloat(view.getUint16(2 * i, true));
  else throw new Error(`${name}: type ${t.type} is not a float type`);
  return out;
}

export interface ChimeraExportOptions {
  shards?: number;
  /** tokenizer.json to include; default the GPT-2-style test fixture. The GGUF should embed the same tokenizer. */
  tokenizerJson?: string;
}

/** Writes `dir` (config.json, safetensors, tokenizer.json) from the GGUF at `gguf`. */
export async function writeChimeraHfFolder(gguf: string, dir: string, opts: ChimeraExportOptions = {}): Promise<void> {
  const bytes = new Uint8Array(readFileSync(gguf));
  const file = parseGguf(bytes, gguf);
  const c = chimeraConfigFromGguf(file.metadata);
  // The token ids in config.json are those of the tokenizer.json written beside it (the GGUF's own
  // tokenizer may be braid's, which has no tokenizer.json form).
  const tokenizerJson = opts.tokenizerJson ?? TINY_TOKENIZER;
  const tok = tokenizerSpecFromHf(JSON.parse(readFileSync(tokenizerJson, 'utf8')));
  if (tok.tokens.length > c.vocabSize) throw new Error(`${tokenizerJson} has ${tok.tokens.length} tokens, more than the model's ${c.vocabSize}`);
  const config = chimera51ConfigJson(c, { bos: tok.bos_token_id, eos: tok.eos_token_id, pad: tok.padding_token_id });
  const tensors: SafetensorToWrite[] = [];
  for (const e of chimera51TensorTable(c)) {
    const t = file.tensors.find((x) => x.name === e.gguf);
    if (!t) throw new Error(`${gguf}: tensor ${e.gguf} is missing`);
    if (e.kind === 'bt2') {
      // One BT2 matrix per part (the experts of a 3-D tensor are consecutive matrices).
      let at = file.dataOffset + t.offset;
      for (const p of e.parts) {
        const [rows, cols] = p.shape as [number, number];
        const size = rows * (cols / 4) + rows * (cols / 128) * 4;
        tensors.push({ name: p.hf, shape: p.shape, dtype: 'F32', data: bt2Latent(bytes.subarray(at, at + size), rows, cols) });
        at += size;
      }
      continue;
    }
    const v = floatValues(file, bytes, e.gguf);
    let at = 0;
    for (const p of e.parts) {
      const n = p.shape.reduce((a, b) => a * b, 1);
      tensors.push({ name: p.hf, shape: p.shape, dtype: 'F32', data: v.slice(at, at + n) });
      at += n;
    }
  }
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'config.json'), JSON.stringify(config, null, 2) + '\n');
  copyFileSync(tokenizerJson, join(dir, 'tokenizer.json'));
  writeCheckpointTensors(dir, tensors, opts.shards ?? 1);
}
