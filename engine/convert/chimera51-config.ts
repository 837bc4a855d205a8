/**
 * A Chimera 5.1 `config.json` (the public PyTorch reference, NORESPI/chimera1,
 * ARCHITECTURES.md §1.1, FULL lineage) → braid's ChimeraConfig. The reference
 * builds its model from these keys (model.py); the same defaults apply here:
 * `backbone.layer_pattern` repeated to `num_hidden_layers` with the
 * `layer_aliases`; GDN and mLSTM heads = `num_heads`; GDN head width
 * `head_dim` (d_v = d_k, conv 4); mLSTM width `xlstm.memory_size_per_head[0]`;
 * SwiGLU width `intermediate_size` rounded up to a multiple of 256; MoE at
 * `backbone.moe.layers`; TSP sketch width `hidden_size // 4`; the span-engine
 * risk gate when `span_inference.enabled`.
 *
 * What braid cannot run is refused with the reason: Titans layers (5.1
 * computes a decayed linear attention, braid the paper's MAC, §2.8 — the
 * tensors differ), Parcae looping (5.1 uses a LayerNorm'd injection with a
 * diagonal B and no C, braid the official Parcae, §2.11), untied heads, and
 * quantization groups other than BT2's 128.
 */
import { BT2_GROUP } from '../gguf/types.ts';
import type { ChimeraConfig, ChimeraLayerType } from '../model-init/chimera-config.ts';

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);

/** 5.1's layer aliases → braid's layer types. */
const ALIAS_TO_TYPE: Record<string, ChimeraLayerType> = {
  gated_deltanet: 'GD',
  xlstm_m: 'XM',
  titans_mac: 'TM',
  tsp_span_knot: 'SK',
};

export const CHIMERA51_CONV = 4;

export function parseChimera51Config(json: Obj, name: string, provenance: string, where = 'config.json'): ChimeraConfig {
  const problems: string[] = [];
  const obj = (v: unknown): Obj => (isObj(v) ? v : {});
  const int = (o: Obj, k: string, def?: number, path = k): number => {
    const v = o[k] ?? def;
    if (!Number.isInteger(v) || (v as number) < 1) {
      problems.push(`"${path}" must be a positive integer, got ${JSON.stringify(v)}`);
      return 1;
    }
    return v as number;
  };
  const backbone = obj(json.backbone);
  const moeCfg = obj(backbone.moe);
  const D = int(json, 'hidden_size');
  const L = int(json, 'num_hidden_layers', 28);
  const H = int(json, 'num_heads');
  const dk = int(json, 'head_dim');
  const V = int(json, 'vocab_size');
  const eps = json.rms_norm_eps ?? 1e-6;
  if (typeof eps !== 'number' || !(eps > 0 && eps < 1)) problems.push(`"rms_norm_eps" must be in (0, 1), got ${JSON.stringify(eps)}`);

  // Layer pattern, expanded as the reference does.
  const pattern = backbone.layer_pattern ?? json.layer_pattern ?? 'GD XM GD TM GD XM GD SK';
  const aliases: Obj = isObj(backbone.layer_aliases)
    ? backbone.layer_aliases
    : { GD: 'gated_deltanet', XM: 'xlstm_m', TM: 'titans_mac', SK: 'tsp_span_knot' };
  const layerTypes: ChimeraLayerType[] = [];
  if (typeof pattern !== 'string' || pattern.trim() === '') problems.push(`"backbone.layer_pattern" must be a non-empty string`);
  else {
    const parts = pattern.trim().split(/\s+/);
    for (let i = 0; i < L; i++) {
      const p = parts[i % parts.length]!;
      const alias = typeof aliases[p] === 'string' ? (aliases[p] as string) : p;
      const type = ALIAS_TO_TYPE[alias] ?? (['GD', 'XM', 'TM', 'SK'].includes(alias) ? (alias as ChimeraLayerType) : undefined);
      if (!type) {
        problems.push(`layer ${i}: type "${p}" (${alias}) is not one of gated_deltanet, xlstm_m, titans_mac, tsp_span_knot`);
        continue;
      }
      layerTypes.push(type);
    }
  }
  const tm = layerTypes.flatMap((t, i) => (t === 'TM' ? [i] : []));
  if (tm.length) {
    problems.push(
      `${tm.length > 1 ? 'layers' : 'layer'} ${tm.join(', ')} ${tm.length > 1 ? 'are' : 'is'} titans_mac: Chimera 5.1 computes Titans as a decayed linear attention ` +
        '(ARCHITECTURES.md §2.8-R) while braid runs the paper\'s MAC (§2.8-P); their weights do not carry over',
    );
  }
  const looping = obj(json.looping);
  // The reference loops whenever looping.enabled (default true) and L >= 3.
  if ((looping.enabled ?? true) !== false && L >= 3) {
    problems.push(
      '"looping.enabled" is true: Chimera 5.1\'s loop controller (LayerNorm injection, diagonal B, no C) is not ' +
        'braid\'s Parcae (ARCHITECTURES.md §2.11), so the looped model cannot be reproduced; set it to false to convert the ' +
        'layers run once',
    );
  }
  if (json.tie_word_embeddings === false) problems.push('"tie_word_embeddings" is false: braid ties the LM head to the embedding');
  const group = obj(json.quantization).group_size ?? BT2_GROUP;
  if (group !== BT2_GROUP) problems.push(`"quantization.group_size" ${JSON.stringify(group)}: braid's ternary format (BT2) uses groups of ${BT2_GROUP}`);

  const rawI = json.intermediate_size ?? Math.floor((D * 4 * 2) / 3);
  if (!Number.isInteger(rawI) || (rawI as number) < 1) problems.push(`"intermediate_size" must be a positive integer, got ${JSON.stringify(rawI)}`);
  const I = 256 * Math.ceil((rawI as number) / 256);
  const xl = obj(json.xlstm);
  const mem = Array.isArray(xl.memory_size_per_head) ? xl.memory_size_per_head[0] : 64;
  if (!Number.isInteger(mem) || (mem as number) < 1) problems.push(`"xlstm.memory_size_per_head"[0] must be a positive integer`);
  const moeLayers = Array.isArray(moeCfg.layers) ? (moeCfg.layers as unknown[]) : [];
  if (!moeLayers.every((n) => Number.isInteger(n) && (n as number) >= 0 && (n as number) < L)) {
    problems.push(`"backbone.moe.layers" must be layer indices in 0..${L - 1}`);
  }
  const span = obj(json.span_inference);
  const contextLength = Math.min(Number.isInteger(json.max_position_embeddings) ? (json.max_position_embeddings as number) : 4096, 0xffffffff);

  const c: ChimeraConfig = {
    name,
    provenance,
    vocabSize: V,
    embeddingLength: D,
    feedForwardLength: I,
    layerTypes,
    headCount: H,
    headDim: dk,
    valueDim: dk,
    convKernel: CHIMERA51_CONV,
    chunkSize: int(obj(json.gated_deltanet), 'chunk_size', 256, 'gated_deltanet.chunk_size'),
    rmsNormEps: eps as number,
    contextLength,
    spanGate: (span.enabled ?? true) === true,
  };
  if (layerTypes.includes('XM')) c.xlstm = { headCount: H, headDim: mem as number, gateSoftCap: 15, normEps: 1e-5 };
  if (layerTypes.includes('SK')) c.tsp = { sketchDim: Math.floor(D / 4) };
  if (moeLayers.length) {
    c.moe = {
      layers: moeLayers as number[],
      expertCount: int(moeCfg, 'n_routed_experts', 16, 'backbone.moe.n_routed_experts'),
      expertUsedCount: int(moeCfg, 'num_experts_per_tok', 2, 'backbone.moe.num_experts_per_tok'),
      sharedExpertCount: typeof moeCfg.n_shared_experts === 'number' ? moeCfg.n_shared_experts : 1,
      feedForwardLength: int(moeCfg, 'moe_intermediate_size', 1728, 'backbone.moe.moe_intermediate_size'),
      routedScalingFactor: 1,
    };
  }
  // Widths that feed a BT2 matrix must be whole groups.
  const bt2 = (what: string, v: number) => v % BT2_GROUP && problems.push(`${what} = ${v} is not a multiple of ${BT2_GROUP} (BT2 groups)`);
  bt2('hidden_size', D);
  bt2('intermediate_size (rounded up to 256 as the reference does)', I);
  bt2('num_heads · head_dim', H * dk);
  if (c.xlstm) bt2('num_heads · xlstm.memory_size_per_head[0]', H * c.xlstm.headDim);
  if (c.moe) bt2('backbone.moe.moe_intermediate_size', c.moe.feedForwardLength);
  if (problems.length) throw new Error(`${where}: cannot convert this Chimera 5.1 config:\n  ${problems.join('\n  ')}`);
  return c;
}
