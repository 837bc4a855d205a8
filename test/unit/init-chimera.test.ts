import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { unpackBt2 } from '../../engine/gguf/bt2.ts';
import { readGguf } from '../../engine/gguf/reader.ts';
import { GgmlType, metaNumber, metaString, metaStringArray, type GgufFile } from '../../engine/gguf/types.ts';
import {
  SEED_LOOPING,
  chimeraSeedDimsConfig,
  chimeraTinyConfig,
  validateChimeraConfig,
  type ChimeraConfig,
} from '../../engine/model-init/chimera-config.ts';
import { floatToHalf, writeRandomChimera } from '../../engine/model-init/init-chimera.ts';
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

  it("floatMatrices: 'f16' stores the decode-step float matrices as F16: the f32 draws rounded to half", async () => {
    const full: ChimeraConfig = {
      ...config,
      name: 'f16',
      layerTypes: ['GD', 'XM', 'TM', 'SK'],
      xlstm: { headCount: 2, headDim: 64, gateSoftCap: 15, normEps: 1e-5 },
      titans: { headCount: 2, headDim: 64, memoryDim: 32, persistentSlots: 2, segmentLength: 8, thetaMax: 0.1 },
      tsp: { sketchDim: 32 },
      moe: { layers: [3], expertCount: 4, expertUsedCount: 2, sharedExpertCount: 1, feedForwardLength: 128, routedScalingFactor: 1 },
      spanGate: true,
      looping: { prelude: [0, 0], loop: [1, 2], coda: [3, 3], max: 4, default: 2, backwardTruncation: 'half' },
    };
    const p32 = join(dir, 'm32.gguf');
    const p16 = join(dir, 'm16.gguf');
    await writeRandomChimera(p32, full, 5);
    await writeRandomChimera(p16, full, 5, { floatMatrices: 'f16' });
    const [f32, f16] = [await readGguf(p32), await readGguf(p16)];
    const raw32 = readFileSync(p32);
    const raw16 = readFileSync(p16);
    const matrices = [
      'token_embd.weight', 'output_gate.weight', 'parcae.b.weight', 'parcae.c.weight',
      'blk.0.gdn_a.weight', 'blk.0.gdn_b.weight', 'blk.3.gdn_a.weight', 'blk.3.gdn_b.weight',
      'blk.3.sk_sketch.weight', 'blk.3.sk_role.weight', 'blk.3.sk_filler.weight', 'blk.3.sk_energy.weight',
      'blk.3.ffn_gate_inp.weight',
    ];
    for (const t of f16.tensors) {
      const t32 = f32.tensors.find((x) => x.name === t.name)!;
      expect(t.dims, t.name).toEqual(t32.dims);
      expect(t.type, t.name).toBe(matrices.includes(t.name) ? GgmlType.F16 : t32.type);
    }
    expect(f16.tensors.filter((t) => t.type === GgmlType.F16).length).toBe(matrices.length);
    // per-head gates of XM/TM and all vectors stay F32
    expect(f16.tensors.find((t) => t.name === 'blk.1.xm_i.weight')?.type).toBe(GgmlType.F32);
    expect(f16.tensors.find((t) => t.name === 'blk.2.tm_alpha.weight')?.type).toBe(GgmlType.F32);
    for (const name of matrices) {
      const t = f16.tensors.find((x) => x.name === name)!;
      const h = new Uint16Array(raw16.buffer.slice(raw16.byteOffset + t.fileOffset, raw16.byteOffset + t.fileOffset + t.byteSize!));
      const v = tensorFloats(f32, raw32, name);
      expect(h.length, name).toBe(v.length);
      for (let i = 0; i < v.length; i++) if (h[i] !== floatToHalf(v[i]!)) throw new Error(`${name}[${i}]: ${h[i]} vs ${v[i]}`);
    }
    // the default is F32, as before
    expect(f32.tensors.some((t) => t.type === GgmlType.F16)).toBe(false);
    await expect(writeRandomChimera(join(dir, 'bad.gguf'), config, 1, { floatMatrices: 'bf16' as 'f16' })).rejects.toThrow(/floatMatrices/);
  });

  it('floatToHalf rounds to nearest even, with subnormals and overflow', () => {
    const cases: [number, number][] = [
      [0, 0x0000], [-0, 0x8000], [1, 0x3c00], [-2, 0xc000], [0.1, 0x2e66], [65504, 0x7bff],
      [65519.99, 0x7bff], [65520, 0x7c00], [Infinity, 0x7c00], [2 ** -24, 0x0001], [2 ** -25, 0x0000],
      [1.5 * 2 ** -25, 0x0001], [2 ** -14, 0x0400], [1 + 2 ** -11, 0x3c00], [1 + 3 * 2 ** -11, 0x3c02],
    ];
    for (const [v, h] of cases) expect(floatToHalf(v), String(v)).toBe(h);
    expect(floatToHalf(NaN) & 0x7c00).toBe(0x7c00);
    expect(floatToHalf(NaN) & 0x3ff).not.toBe(0);
  });

  it('rejects configs BT2 cannot hold, listing every problem', () => {
    const bad = { ...config, embeddingLength: 200, feedForwardLength: 100, layerTypes: [] };
    expect(() => validateChimeraConfig(bad)).toThrow(
      /^(?=[\s\S]*embeddingLength = 200 must be a multiple of 128)(?=[\s\S]*feedForwardLength = 100)(?=[\s\S]*at least one layer)/,
    );
    expect(() => validateChimeraConfig({ ...config, headCount: 3, valueDim: 40 })).toThrow(/headCount\*valueDim = 120/);
    expect(() => validateChimeraConfig({ ...config, layerTypes: ['XX' as 'GD'] })).toThrow(/"XX" is not one of GD/);
    // tm_pk / tm_pv cannot be empty GGUF tensors
    const titans = { headCount: 2, headDim: 64, memoryDim: 32, persistentSlots: 0, segmentLength: 8, thetaMax: 0.1 };
    expect(() => validateChimeraConfig({ ...config, layerTypes: ['GD', 'TM'], titans })).toThrow(/titans.persistentSlots/);
    expect(() => validateChimeraConfig({ ...config, layerTypes: ['GD', 'TM'], titans: { ...titans, persistentSlots: 1 } })).not.toThrow();
  });

  it('Parcae looping: chimera.loop.* metadata and the §2.11 inits (B = C = I, A_log 0, exp(−Δ) = √(1/5))', async () => {
    const looping: ChimeraConfig = {
      ...config,
      name: 'looping',
      layerTypes: ['GD', 'GD', 'GD'],
      looping: { prelude: [0, 0], loop: [1, 1], coda: [2, 2], max: 6, default: 2, backwardTruncation: 'half' },
    };
    const path = join(dir, 'looping.gguf');
    await writeRandomChimera(path, looping, 3);
    const file = await readGguf(path);
    const raw = readFileSync(path);
    expect(file.metadata.get('chimera.loop.loop')?.value).toEqual([1, 1]);
    expect(file.metadata.get('chimera.loop.coda')?.value).toEqual([2, 2]);
    expect(metaNumber(file.metadata, 'chimera.loop.max')).toBe(6);
    expect(metaNumber(file.metadata, 'chimera.loop.default')).toBe(2);
    expect(metaString(file.metadata, 'chimera.loop.backward_truncation')).toBe('half');
    const D = 128;
    for (const name of ['parcae.b.weight', 'parcae.c.weight']) {
      const m = tensorFloats(file, raw, name);
      expect(m.length).toBe(D * D);
      for (let r = 0; r < D; r++) for (let c = 0; c < D; c++) if (m[r * D + c] !== (r === c ? 1 : 0)) throw new Error(`${name}[${r},${c}] = ${m[r * D + c]}`);
    }
    expect(tensorFloats(file, raw, 'parcae.a_log').every((v) => v === 0)).toBe(true);
    expect(tensorFloats(file, raw, 'parcae.prelude_norm.weight').every((v) => v === 1)).toBe(true);
    const dt = tensorFloats(file, raw, 'parcae.dt_bias')[0]!;
    expect(Math.exp(-Math.log1p(Math.exp(dt)))).toBeCloseTo(Math.sqrt(1 / 5), 6);
    // no looping keys or tensors without a looping config (a.gguf: the first test's file)
    const plain = await readGguf(join(dir, 'a.gguf'));
    expect(plain.metadata.has('chimera.loop.loop')).toBe(false);
    expect(plain.tensors.some((t) => t.name.startsWith('parcae.'))).toBe(false);
  });

  it('the seed dims config loops like the seed (0–3 | 4–23 | 24–27, [1, 6]); the default tiny does not', () => {
    expect(chimeraSeedDimsConfig(4096).looping).toEqual(SEED_LOOPING);
    expect(SEED_LOOPING).toMatchObject({ prelude: [0, 3], loop: [4, 23], coda: [24, 27], max: 6, default: 2 });
    expect(() => validateChimeraConfig(chimeraSeedDimsConfig(4096))).not.toThrow();
    expect(chimeraTinyConfig(4096).looping).toBeUndefined();
    const bad = { ...config, layerTypes: ['GD', 'GD', 'GD'] as ChimeraConfig['layerTypes'] };
    expect(() =>
      validateChimeraConfig({ ...bad, looping: { prelude: [0, 0], loop: [2, 2], coda: [2, 2], max: 6, default: 2, backwardTruncation: 'half' } }),
    ).toThrow(/must tile layers 0\.\.2/);
    expect(() =>
      validateChimeraConfig({ ...bad, looping: { prelude: [0, 0], loop: [1, 1], coda: [2, 2], max: 2, default: 3, backwardTruncation: 'half' } }),
    ).toThrow(/looping.default/);
  });
});
