/**
 * A Chimera 5.1 Hugging Face folder → braid's Chimera GGUF (docs/format.md):
 * config.json → ChimeraConfig (chimera51-config.ts) → `chimera.*` metadata;
 * every tensor checked against chimera51-tensors.ts (all problems in one
 * error); BitLinear latent weights quantized to BT2 with braid's quantizer
 * (per-128-group absmean, `quantization.group_size`), float matrices F32 or
 * F16, vectors F32; tokenizer.json → `tokenizer.ggml.*`.
 *
 * Semantic difference that converts anyway, and is said so in the provenance:
 * 5.1's MoE router is a softmax over all experts renormalised over the top-K;
 * braid routes as the config intends (DeepSeek-V3 sigmoid scores, §2.10), so
 * a converted MoE layer mixes its experts with different weights.
 */
import { encodeBt2 } from '../gguf/bt2.ts';
import { GgmlType, type GgufValue } from '../gguf/types.ts';
import type { GgufTensorSpec, GgufWriteInput } from '../gguf/writer.ts';
import { chimeraMetadata } from '../model-init/chimera-config.ts';
import { parseChimera51Config } from './chimera51-config.ts';
import { chimera51GgmlType, chimera51TensorTable, CHIMERA51_LM_HEAD, isIgnoredChimera51 } from './chimera51-tensors.ts';
import { f16Bytes, f32Bytes, type ConvertOptions } from './gguf-tensor.ts';
import type { HfFolder } from './hf-folder.ts';
import { hfTokenizerMetadata } from './hf-tokenizer.ts';
import { readTensorF32, type SafetensorInfo } from './safetensors.ts';
import { matchTensors } from './tensor-check.ts';

export function chimeraGgufInput(folder: HfFolder, opts: ConvertOptions): GgufWriteInput {
  const moeNote = ' (MoE layers: braid routes with sigmoid scores, 5.1 with a softmax — expert weights differ)';
  const config = parseChimera51Config(folder.config, opts.name, '', `${folder.dir}/config.json`);
  config.provenance = `converted by braid convert from a Chimera 5.1 checkpoint (${folder.dir})${config.moe ? moeNote : ''}`;
  const table = chimera51TensorTable(config);
  const expected = table.flatMap((e) => e.parts);
  const present = new Map([...folder.tensors].filter(([name]) => !isIgnoredChimera51(name)));
  const found = matchTensors(expected, present, [CHIMERA51_LM_HEAD]);
  const byName = new Map(found.map((t) => [t.name, t]));
  const head = present.get(CHIMERA51_LM_HEAD);
  if (head) {
    const embd = readTensorF32(byName.get('embed.weight')!);
    const h = readTensorF32(head);
    if (h.some((v, i) => v !== embd[i])) throw new Error(`${CHIMERA51_LM_HEAD} differs from embed.weight: braid ties the LM head to the embedding`);
  }
  const ids = folder.config as { bos_token_id?: number; eos_token_id?: number; pad_token_id?: number };
  const tokIds = {
    ...(Number.isInteger(ids.bos_token_id) ? { bos_token_id: ids.bos_token_id! } : {}),
    ...(Number.isInteger(ids.eos_token_id) ? { eos_token_id: ids.eos_token_id! } : {}),
    ...(Number.isInteger(ids.pad_token_id) ? { pad_token_id: ids.pad_token_id! } : {}),
  };
  const metadata: [string, GgufValue][] = [
    ...chimeraMetadata(config),
    ...hfTokenizerMetadata(folder, config.vocabSize, tokIds, opts.name),
  ];
  const tensors: GgufTensorSpec[] = table.map((e) => {
    const type = chimera51GgmlType(e, opts.dtype);
    const parts = e.parts.map((p) => byName.get(p.hf)!);
    return { name: e.gguf, type, dims: e.ggufDims, data: () => encodeParts(parts, type) };
  });
  return { metadata, tensors };
}

/** Each part in order: BT2 parts quantized one matrix at a time, float parts concatenated. */
function* encodeParts(parts: SafetensorInfo[], type: number): Generator<Uint8Array> {
  for (const t of parts) {
    const v = readTensorF32(t);
    if (type === GgmlType.BT2) {
      const rows = t.shape[0]!;
      yield encodeBt2(v, rows, v.length / rows);
    } else yield type === GgmlType.F16 ? f16Bytes(v) : f32Bytes(v);
  }
}
