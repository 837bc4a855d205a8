/**
 * `braid convert` on synthetic moa_metric folders (scripts/reference/make-hf-checkpoint.ts):
 * the C library loads the result, describe() says what config.json says, every tensor holds
 * the effective values (softplus applied to the `*_raw` ones), and the logits are those of a
 * GGUF written straight from the same effective arrays without safetensors or the converter.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { initLibrary } from '../../engine/binding/library.ts';
import { convertHfFolder } from '../../engine/convert/convert.ts';
import { f32Bytes } from '../../engine/convert/gguf-tensor.ts';
import { halfToFloat } from '../../engine/convert/half.ts';
import { moaMetadata } from '../../engine/convert/moa-config.ts';
import { parseGguf } from '../../engine/gguf/reader.ts';
import { GgmlType, gv, metaNumber, metaStringArray, type GgufFile } from '../../engine/gguf/types.ts';
import { writeGguf } from '../../engine/gguf/writer.ts';
import { NativeModel } from '../../engine/model/native-model.ts';
import { tokenizerSpecFromHf } from '../../engine/tokenizer/hf.ts';
import { tokenizerMetadata } from '../../engine/tokenizer/spec.ts';
import { TINY_EOS, TINY_TOKENIZER, writeMoaHfFolder, type MoaCheckpointOptions, type MoaSynthetic } from '../../scripts/reference/make-hf-checkpoint.ts';

const dir = mkdtempSync(path.join(tmpdir(), 'braid-moa-convert-'));
const PROMPT = [5, 261, 40, 41, 100, 7, 7, 200, 287, 0, 13, 99, 150, 33, 64, 65, 66, 1, 2, 3];

beforeAll(() => initLibrary(1));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

let n = 0;
async function convertSynthetic(o: MoaCheckpointOptions, dtype: 'f32' | 'f16' = 'f32'): Promise<{ syn: MoaSynthetic; out: string; file: GgufFile; bytes: Buffer }> {
  const folder = path.join(dir, `hf-${n}`);
  const out = path.join(dir, `out-${n++}.gguf`);
  const syn = writeMoaHfFolder(folder, o);
  await convertHfFolder({ input: folder, output: out, dtype, name: 'moa-synthetic' });
  const bytes = readFileSync(out);
  return { syn, out, file: parseGguf(bytes, out), bytes };
}

function tensorValues(file: GgufFile, bytes: Buffer, name: string): Float32Array {
  const t = file.tensors.find((x) => x.name === name);
  if (!t) throw new Error(`no tensor ${name}`);
  const view = new DataView(bytes.buffer, bytes.byteOffset + file.dataOffset + t.offset, t.byteSize!);
  const count = t.dims.reduce((a, b) => a * b, 1);
  return Float32Array.from({ length: count }, (_, i) =>
    t.type === GgmlType.F16 ? halfToFloat(view.getUint16(2 * i, true)) : view.getFloat32(4 * i, true),
  );
}

async function logits(file: string, tokens: number[]): Promise<Float32Array> {
  const m = await NativeModel.load(file);
  try {
    const ctx = m.createContext(32);
    const out = await ctx.eval(tokens, { allLogits: true });
    await ctx.dispose();
    return out;
  } finally {
    await m.dispose();
  }
}

/** The same model written directly from the generator's effective arrays (no safetensors, no converter). */
async function writeDirect(syn: MoaSynthetic, out: string): Promise<void> {
  const spec = tokenizerSpecFromHf(JSON.parse(readFileSync(TINY_TOKENIZER, 'utf8')));
  await writeGguf(out, {
    metadata: [
      ['general.architecture', gv.str('moa')],
      ['general.name', gv.str('moa-direct')],
      ...moaMetadata(syn.config),
      ...tokenizerMetadata(spec, syn.config.vocab_size),
    ],
    tensors: syn.table.map((e) => ({ name: e.gguf, type: GgmlType.F32, dims: e.ggufDims, data: f32Bytes(syn.effective.get(e.gguf)!) })),
  });
}

describe('braid convert: moa_metric', () => {
  it('maha_diag, balls, V energy, discrepancy, gates: loads, describe() = config.json, tensors = effective values, logits = the direct GGUF', async () => {
    const { syn, out, file, bytes } = await convertSynthetic({ metric: 'maha_diag', seed: 3 });
    const c = syn.config;
    const m = await NativeModel.load(out);
    const d = m.describe() as { architecture: string; n_vocab: number; n_embd: number; n_layer: number; context_length: number; moa: Record<string, unknown> };
    await m.dispose();
    expect(d.architecture).toBe('moa');
    expect([d.n_vocab, d.n_embd, d.n_layer, d.context_length]).toEqual([c.vocab_size, c.dim, c.num_layers, c.max_position_embeddings]);
    for (const k of ['metric', 'attn_heads', 'mqa_q_heads', 'mixer_hidden', 'ffn_hidden', 'router_hidden', 'router_topk', 'conv_kernel', 'conv_mult', 'lr_rank', 'n_branches', 'branch_topk', 'r_basis', 'use_balls', 'enable_feature_gates', 'enable_router_gates', 'enable_v_energy', 'discrepancy_modulation'] as const) {
      expect(d.moa[k], k).toEqual(c[k]);
    }
    for (const k of ['router_temperature', 'theta_base', 'energy_amplification', 'layer_norm_eps', 'layer_scale_init_value'] as const) {
      expect(d.moa[k] as number, k).toBeCloseTo(c[k], 5);
    }
    // Every tensor: exactly the effective values; the softplus ones are positive and differ from the stored raw values.
    expect(file.tensors.length).toBe(syn.table.length);
    for (const e of syn.table) {
      expect(tensorValues(file, bytes, e.gguf), e.gguf).toEqual(syn.effective.get(e.gguf));
    }
    const alpha = tensorValues(file, bytes, 'blk.0.moa_mha_alpha');
    expect(alpha.every((a) => a > 0)).toBe(true);
    // Tokenizer: GPT-2 byte-level BPE, pad = eos = bos = <|endoftext|>, padded to the embedding rows.
    expect(metaNumber(file.metadata, 'tokenizer.ggml.eos_token_id')).toBe(TINY_EOS);
    expect(metaNumber(file.metadata, 'tokenizer.ggml.padding_token_id')).toBe(TINY_EOS);
    expect(metaNumber(file.metadata, 'tokenizer.ggml.bos_token_id')).toBe(TINY_EOS);
    expect(metaStringArray(file.metadata, 'tokenizer.ggml.tokens')).toHaveLength(c.vocab_size);

    const direct = path.join(dir, 'direct.gguf');
    await writeDirect(syn, direct);
    const a = await logits(out, PROMPT);
    const b = await logits(direct, PROMPT);
    expect(a.length).toBe(PROMPT.length * c.vocab_size);
    expect(a.every(Number.isFinite)).toBe(true);
    expect(a).toEqual(b);
    // Not a degenerate model: positions disagree on their best token.
    const argmax = (t: number) => {
      const row = a.subarray(t * c.vocab_size, (t + 1) * c.vocab_size);
      return row.indexOf(Math.max(...row));
    };
    expect(new Set(PROMPT.map((_, t) => argmax(t))).size).toBeGreaterThan(3);
  });

  it('l2 and cosine, balls off, plain RoPE (r_basis 0), no gates: the tensor set follows the flags and the model loads', async () => {
    for (const o of [
      { metric: 'l2', balls: false, rBasis: 0, discrepancy: false } as const,
      { metric: 'cosine', featureGates: false, routerGates: false, vEnergy: false, routerTopk: 1, branchTopk: 1 } as const,
    ]) {
      const { syn, out, file } = await convertSynthetic(o);
      const names = new Set(file.tensors.map((t) => t.name));
      expect(names.has('blk.0.moa_mha_maha')).toBe(false);
      if (o.metric === 'l2') {
        expect(names.has('blk.0.moa_mha_ball_radius')).toBe(false);
        expect(names.has('blk.1.moa_mqa_rope_a')).toBe(false);
      } else {
        expect(names.has('blk.0.moa_film_gamma.weight')).toBe(false);
        expect(names.has('blk.0.moa_gate.weight')).toBe(false);
        expect(names.has('blk.0.moa_mha_energy_c')).toBe(false);
        expect(names.has('blk.0.moa_mha_rope_a')).toBe(true);
      }
      const l = await logits(out, PROMPT.slice(0, 8));
      expect(l.length).toBe(8 * syn.config.vocab_size);
      expect(l.every(Number.isFinite)).toBe(true);
    }
  });

  it('--dtype f16 stores the matrices as F16 (vectors stay F32); BF16 shards in, same values as read', async () => {
    const { syn, out, file, bytes } = await convertSynthetic({ metric: 'l2', dtype: 'BF16', shards: 3, seed: 9 }, 'f16');
    const type = (name: string) => file.tensors.find((t) => t.name === name)!.type;
    expect(type('token_embd.weight')).toBe(GgmlType.F16);
    expect(type('blk.1.ffn_down.weight')).toBe(GgmlType.F16);
    expect(type('blk.1.moa_conv_dw.weight')).toBe(GgmlType.F32);
    expect(type('blk.0.moa_mha_alpha')).toBe(GgmlType.F32);
    // BF16 values are exact in F16 only if in range and short enough; compare within half precision.
    const embd = tensorValues(file, bytes, 'token_embd.weight');
    const want = syn.effective.get('token_embd.weight')!;
    for (let i = 0; i < want.length; i++) expect(Math.abs(embd[i]! - want[i]!)).toBeLessThanOrEqual(Math.abs(want[i]!) * 2 ** -11 + 1e-7);
    expect(tensorValues(file, bytes, 'blk.0.moa_mqa_ball_radius')).toEqual(syn.effective.get('blk.0.moa_mqa_ball_radius'));
    const l = await logits(out, PROMPT.slice(0, 6));
    expect(l.every(Number.isFinite)).toBe(true);
  });
});
