/**
 * A `moa_metric` Hugging Face folder → the GGUF of docs/format.md, "MoA
 * models": config.json → `moa.*` metadata (moa-config.ts), every tensor
 * checked against the table of moa-tensors.ts (all problems in one error),
 * renamed, softplus applied where the table says, matrices F32 or F16,
 * vectors F32; tokenizer.json → `tokenizer.ggml.*`.
 */
import { gv, type GgufValue } from '../gguf/types.ts';
import type { GgufWriteInput } from '../gguf/writer.ts';
import { floatTensor, type ConvertOptions } from './gguf-tensor.ts';
import type { HfFolder } from './hf-folder.ts';
import { hfTokenizerMetadata } from './hf-tokenizer.ts';
import { moaMetadata, parseMoaConfig } from './moa-config.ts';
import { MOA_LM_HEAD, moaTensorTable, softplus } from './moa-tensors.ts';
import { readTensorF32 } from './safetensors.ts';
import { matchTensors } from './tensor-check.ts';

export function moaGgufInput(folder: HfFolder, opts: ConvertOptions): GgufWriteInput {
  const config = parseMoaConfig(folder.config, `${folder.dir}/config.json`);
  const table = moaTensorTable(config);
  const found = matchTensors(table, folder.tensors, [MOA_LM_HEAD]);
  const head = folder.tensors.get(MOA_LM_HEAD);
  if (head) {
    // MoA ties the head to the embedding; a separate head is only accepted when it is the same matrix.
    const embd = readTensorF32(found[0]!);
    const h = readTensorF32(head);
    if (h.length !== embd.length || h.some((v, i) => v !== embd[i])) {
      throw new Error(`${MOA_LM_HEAD} differs from model.embed_tokens.weight: braid's MoA ties the LM head to the embedding`);
    }
  }
  const metadata: [string, GgufValue][] = [
    ['general.architecture', gv.str('moa')],
    ['general.name', gv.str(opts.name)],
    ['braid.provenance', gv.str(`converted by braid convert from a Hugging Face moa_metric checkpoint (${folder.dir})`)],
    ['braid.format_version', gv.u32(1)],
    ...moaMetadata(config),
    ...hfTokenizerMetadata(folder, config.vocab_size, config, opts.name),
  ];
  const tensors = table.map((e, i) =>
    floatTensor(e.gguf, e.ggufDims, e.matrix ? opts.dtype : 'f32', () => {
      const v = readTensorF32(found[i]!);
      if (e.map === 'softplus') for (let j = 0; j < v.length; j++) v[j] = softplus(v[j]!);
      return v;
    }),
  );
  return { metadata, tensors };
}
