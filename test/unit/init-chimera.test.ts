import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { unpackBt2 } from '../../engine/gguf/bt2.ts';
import { readGguf } from '../../engine/gguf/reader.ts';
import { GgmlType, metaNumber, metaString, metaStringArray, type GgufFile } from '../../engine/gguf/types.ts';
import { chimeraTinyConfig, validateChimeraConfig, type ChimeraConfig } from '../../engine/model-init/chimera-config.ts';
import { writeRandomChimera } from '../../engine/model-init/init-chimera.ts';
import { loadTokenizer } from '../../engine/tokenizer/load.ts';

const dir = mkdtempSync(join(tmpdir(), 'braid-init-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const config: ChimeraConfig = {
  ...chimeraTinyConfig(4096),
  name: 'test-chimera',
  embeddingLength: 128,
  feedForwardLength: 384,
  layerTypes: ['GD', 'GD'],
  headCount: 2,
  headDim: 32,
  valueDim: 64,
};

function tensorFloats(file: GgufFile, raw: Buffer, name: string): Float32Array {
  const t = file.tensors.find((x) => x.name === name)!;
  return new Float32Array(raw.buffer.slice(raw.byteOffset + t.fileOffset, raw.byteOffset + t.fileOffset + t.byteSize!));
}

describe('writeRandomChimera', () => {
  const a = join(dir, 'a.gguf');

  it('writes the tensor names, GGUF dims and types of docs/format.md', async () => {
    await writeRandomChimera(a, config, 7);
    const file = await readGguf(a);
    const D = 128, I = 384, HK = 64, HV = 128, H = 2, K = 4, V = 4096;
    const expected: [string, number, number[]][] = [
      ['token_embd.weight', GgmlType.F32, [D, V]],
      ['output_norm.weight', GgmlType.F32, [D]],
    ];
    for (const n of [0, 1]) {
      expected.push(
        [`blk.${n}.attn_norm.weight`, GgmlType.F32, [D]],
        [`blk.${n}.gdn_q.weight`, GgmlType.BT2, [D, HK]],
        [`blk.${n}.gdn_k.weight`, GgmlType.BT2, [D, HK]],
        [`blk.${n}.gdn_v.weight`, GgmlType.BT2, [D, HV]],
        [`blk.${n}.gdn_g.weight`, GgmlType.BT2, [D, HV]],
        [`blk.${n}.gdn_o.weight`, GgmlType.BT2, [HV, D]],
        [`blk.${n}.gdn_a.weight`, GgmlType.F32, [D, H]],
        [`blk.${n}.gdn_b.weight`, GgmlType.F32, [D, H]],
        [`blk.${n}.gdn_a_log`, GgmlType.F32, [H]],
        [`blk.${n}.gdn_dt_bias`, GgmlType.F32, [H]],
        [`blk.${n}.gdn_conv_q.weight`, GgmlType.F32, [K, HK]],
        [`blk.${n}.gdn_conv_k.weight`, GgmlType.F32, [K, HK]],
        [`blk.${n}.gdn_conv_v.weight`, GgmlType.F32, [K, HV]],
        [`blk.${n}.gdn_o_norm.weight`, GgmlType.F32, [64]],
        [`blk.${n}.ffn_norm.weight`, GgmlType.F32, [D]],
        [`blk.${n}.ffn_gate.weight`, GgmlType.BT2, [D, I]],
        [`blk.${n}.ffn_up.weight`, GgmlType.BT2, [D, I]],
        [`blk.${n}.ffn_down.weight`, GgmlType.BT2, [I, D]],
      );
    }
    expect(file.tensors.map((t) => [t.name, t.type, t.dims])).toEqual(expected);
  });

  it('records the hyper-parameters, provenance and tokenizer in metadata', async () => {
    const { metadata: m } = await readGguf(a);
    expect(metaString(m, 'general.architecture')).toBe('chimera');
    expect(metaString(m, 'general.name')).toBe('test-chimera');
    expect(metaString(m, 'braid.provenance')).toBe('random-init (untrained)');
    expect(metaNumber(m, 'braid.format_version')).toBe(1);
    expect(metaNumber(m, 'chimera.vocab_size')).toBe(4096);
    expect(metaNumber(m, 'chimera.embedding_length')).toBe(128);
    expect(metaNumber(m, 'chimera.feed_forward_length')).toBe(384);
    expect(metaNumber(m, 'chimera.block_count')).toBe(2);
    expect(metaStringArray(m, 'chimera.layer_types')).toEqual(['GD', 'GD']);
    expect(metaNumber(m, 'chimera.rms_norm_eps')).toBe(Math.fround(1e-6));
    expect(m.get('chimera.rms_norm_eps')?.type).toBe('f32');
    expect(metaNumber(m, 'chimera.gdn.head_count')).toBe(2);
    expect(metaNumber(m, 'chimera.gdn.head_dim')).toBe(32);
    expect(metaNumber(m, 'chimera.gdn.value_dim')).toBe(64);
    expect(metaNumber(m, 'chimera.gdn.conv_kernel')).toBe(4);
    expect(metaNumber(m, 'chimera.gdn.chunk_size')).toBe(64);
    expect(metaNumber(m, 'chimera.context_length')).toBe(4096);
    const tok = loadTokenizer(m);
    expect(tok.vocabSize).toBe(4096);
    expect(tok.decode(tok.encode('round trip ✓'))).toBe('round trip ✓');
  });

  it('samples the documented distributions', async () => {
    const file = await readGguf(a);
    const raw = readFileSync(a);
    const emb = tensorFloats(file, raw, 'token_embd.weight');
    const mean = emb.reduce((s, v) => s + v, 0) / emb.length;
    const std = Math.sqrt(emb.reduce((s, v) => s + (v - mean) ** 2, 0) / emb.length);
    expect(Math.abs(mean)).toBeLessThan(0.001);
    expect(std).toBeGreaterThan(0.019);
    expect(std).toBeLessThan(0.021);
    expect(tensorFloats(file, raw, 'blk.0.attn_norm.weight').every((v) => v === 1)).toBe(true);
    expect(tensorFloats(file, raw, 'blk.1.gdn_o_norm.weight').every((v) => v === 1)).toBe(true);
    const conv = tensorFloats(file, raw, 'blk.0.gdn_conv_q.weight');
    expect(conv.every((v) => v >= -0.5 && v <= 0.5)).toBe(true);
    expect(Math.max(...conv) - Math.min(...conv)).toBeGreaterThan(0.9);
    for (const v of tensorFloats(file, raw, 'blk.0.gdn_a_log')) {
      expect(v).toBeGreaterThanOrEqual(0);
      expect(v).toBeLessThanOrEqual(Math.log(16));
    }
    for (const v of tensorFloats(file, raw, 'blk.1.gdn_dt_bias')) {
      const dt = Math.log1p(Math.exp(v)); // softplus undoes the inverse-softplus init
      expect(dt).toBeGreaterThanOrEqual(1e-3 * 0.999);
      expect(dt).toBeLessThanOrEqual(1e-1 * 1.001);
    }

    // Ternary: codes 0/±1 with P(0) ≈ 0.31, constant scale 0.02·sqrt(2/π).
    const t = file.tensors.find((x) => x.name === 'blk.0.ffn_up.weight')!;
    const { w, scales } = unpackBt2(raw.subarray(t.fileOffset, t.fileOffset + t.byteSize!), 384, 128);
    const zeros = w.filter((v) => v === 0).length / w.length;
    const plus = w.filter((v) => v === 1).length / w.length;
    expect(zeros).toBeGreaterThan(0.29);
    expect(zeros).toBeLessThan(0.33);
    expect(plus).toBeGreaterThan(0.32);
    expect(plus).toBeLessThan(0.37);
    expect(scales.every((s) => s === Math.fround(0.02 * Math.sqrt(2 / Math.PI)))).toBe(true);
  });

  it('is deterministic for a seed and differs across seeds', async () => {
    const b = join(dir, 'b.gguf');
    const c = join(dir, 'c.gguf');
    await writeRandomChimera(b, config, 7);
    await writeRandomChimera(c, config, 8);
    expect(readFileSync(b).equals(readFileSync(a))).toBe(true);
    expect(readFileSync(c).equals(readFileSync(a))).toBe(false);
    expect(readFileSync(c).length).toBe(readFileSync(a).length);
  });

  it('rejects configs BT2 cannot hold, listing every problem', () => {
    const bad = { ...config, embeddingLength: 200, feedForwardLength: 100, layerTypes: [] };
    expect(() => validateChimeraConfig(bad)).toThrow(
      /^(?=[\s\S]*embeddingLength = 200 must be a multiple of 128)(?=[\s\S]*feedForwardLength = 100)(?=[\s\S]*at least one layer)/,
    );
    expect(() => validateChimeraConfig({ ...config, headCount: 3, valueDim: 40 })).toThrow(/headCount\*valueDim = 120/);
    expect(() => validateChimeraConfig({ ...config, layerTypes: ['XX' as 'GD'] })).toThrow(/"XX" is not one of GD/);
  });
});
