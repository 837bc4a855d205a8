/**
 * `braid convert` on Chimera 5.1 checkpoints. A random braid GGUF (GD, XM, SK layers, a MoE
 * layer with a shared expert, the span-engine risk gate) is exported under the 5.1 reference's
 * names (scripts/reference/chimera-hf-export.ts) and converted back: every tensor must come
 * back bit for bit (BT2 codes and scales through latent fp32 weights and braid's quantizer),
 * the metadata must match, and the logits must be identical.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { initLibrary } from '../../engine/binding/library.ts';
import { readCheckpointTensors } from '../../engine/convert/checkpoint-tensors.ts';
import { convertHfFolder, planConversion } from '../../engine/convert/convert.ts';
import { readSafetensorsHeader, readTensorF32, writeSafetensors, type SafetensorToWrite } from '../../engine/convert/safetensors.ts';
import { encodeBt2, quantizeBt2 } from '../../engine/gguf/bt2.ts';
import { parseGguf } from '../../engine/gguf/reader.ts';
import type { ChimeraConfig } from '../../engine/model-init/chimera-config.ts';
import { writeRandomChimera } from '../../engine/model-init/init-chimera.ts';
import { NativeModel } from '../../engine/model/native-model.ts';
import { tokenizerSpecFromHf } from '../../engine/tokenizer/hf.ts';
import { bt2Latent, writeChimeraHfFolder } from '../../scripts/reference/chimera-hf-export.ts';
import { TINY_TOKENIZER } from '../../scripts/reference/make-hf-checkpoint.ts';

const dir = mkdtempSync(path.join(tmpdir(), 'braid-chimera-convert-'));
const original = path.join(dir, 'original.gguf');
const hf = path.join(dir, 'hf');
const converted = path.join(dir, 'converted.gguf');
const PROMPT = [3, 261, 70, 71, 72, 10, 200, 287, 5, 5, 44, 150];

const config: ChimeraConfig = {
  name: 'chimera51-roundtrip',
  provenance: 'random-init (untrained)',
  vocabSize: 288,
  embeddingLength: 128,
  feedForwardLength: 256,
  layerTypes: ['GD', 'XM', 'GD', 'SK'],
  headCount: 2,
  headDim: 64,
  valueDim: 64,
  convKernel: 4,
  chunkSize: 64,
  rmsNormEps: 1e-6,
  contextLength: 512,
  xlstm: { headCount: 2, headDim: 64, gateSoftCap: 15, normEps: 1e-5 },
  tsp: { sketchDim: 32 },
  moe: { layers: [3], expertCount: 4, expertUsedCount: 2, sharedExpertCount: 1, feedForwardLength: 128, routedScalingFactor: 1 },
  spanGate: true,
};

beforeAll(async () => {
  initLibrary(1);
  const tokenizer = tokenizerSpecFromHf(JSON.parse(readFileSync(TINY_TOKENIZER, 'utf8')));
  await writeRandomChimera(original, config, 17, { tokenizer });
  await writeChimeraHfFolder(original, hf, { shards: 2 });
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

async function logits(file: string): Promise<Float32Array> {
  const m = await NativeModel.load(file);
  try {
    const ctx = m.createContext(16);
    const out = await ctx.eval(PROMPT, { allLogits: true });
    await ctx.dispose();
    return out;
  } finally {
    await m.dispose();
  }
}

describe('braid convert: Chimera 5.1', () => {
  it('the exported folder uses the 5.1 reference names and config keys', () => {
    const cfg = JSON.parse(readFileSync(path.join(hf, 'config.json'), 'utf8')) as Record<string, unknown>;
    expect(cfg.model_type).toBe('chimera51');
    expect((cfg.backbone as { layer_pattern: string }).layer_pattern).toBe('GD XM GD SK');
    const names = new Set(readCheckpointTensors(hf).keys());
    for (const n of [
      'embed.weight',
      'norm.weight',
      'span_engine.risk_gate.weight',
      'span_engine.certificate.risk_proj.weight',
      'layers.0.attn_norm.weight',
      'layers.0.attn.q_proj.weight',
      'layers.0.attn.A_log',
      'layers.0.attn.q_conv.conv.weight',
      'layers.0.mlp_norm.weight',
      'layers.0.mlp.down_proj.weight',
      'layers.1.attn.ogate.weight',
      'layers.1.attn.igate.bias',
      'layers.1.attn.o_norm.bias',
      'layers.3.attn.gdn.g_proj.weight',
      'layers.3.attn.energy_binding_fidelity.weight',
      'layers.3.attn.energy_weights',
      'layers.3.attn.sketch_encoder.weight',
      'layers.3.mlp.gate.weight',
      'layers.3.mlp.gate.e_score_correction_bias',
      'layers.3.mlp.experts.3.up_proj.weight',
      'layers.3.mlp.shared_experts.down_proj.weight',
    ]) {
      expect(names.has(n), n).toBe(true);
    }
    expect(readCheckpointTensors(hf).get('layers.0.attn.q_conv.conv.weight')!.shape).toEqual([128, 1, 4]);
  });

  it('GGUF → 5.1 safetensors → convert gives every tensor back bit for bit, the same metadata and identical logits', async () => {
    const r = await convertHfFolder({ input: hf, output: converted, name: config.name });
    expect(r.arch).toBe('chimera');
    const a = readFileSync(original);
    const b = readFileSync(converted);
    const fa = parseGguf(a, original);
    const fb = parseGguf(b, converted);
    expect(fb.tensors.map((t) => t.name).sort()).toEqual(fa.tensors.map((t) => t.name).sort());
    for (const t of fa.tensors) {
      const u = fb.tensors.find((x) => x.name === t.name)!;
      expect([u.type, u.dims], t.name).toEqual([t.type, t.dims]);
      const x = a.subarray(fa.dataOffset + t.offset, fa.dataOffset + t.offset + t.byteSize!);
      const y = b.subarray(fb.dataOffset + u.offset, fb.dataOffset + u.offset + u.byteSize!);
      expect(x.equals(y), t.name).toBe(true);
    }
    for (const [k, v] of fa.metadata) {
      if (k === 'braid.provenance') continue;
      expect(fb.metadata.get(k), k).toEqual(v);
    }
    expect(String(fb.metadata.get('braid.provenance')?.value)).toMatch(/Chimera 5\.1 .*softmax/);
    const la = await logits(original);
    const lb = await logits(converted);
    expect(la.every(Number.isFinite)).toBe(true);
    expect(lb).toEqual(la);
  });

  it('BitLinear latent weights are quantized with braid\'s per-128-group absmean quantizer', () => {
    const rows = 3;
    const cols = 256;
    const W = Float32Array.from({ length: rows * cols }, (_, i) => Math.sin(i * 0.37) * (1 + (i % 7)));
    // The export's latent reconstruction inverts the quantizer exactly...
    const bytes = encodeBt2(W, rows, cols);
    const q = quantizeBt2(W, rows, cols);
    const again = quantizeBt2(bt2Latent(bytes, rows, cols), rows, cols);
    expect(again.w).toEqual(q.w);
    expect(again.scales).toEqual(q.scales);
    // ...while naive dequantization (scale · w) would not keep the scales (absmean of ternary·s < s).
    const naive = Float32Array.from(q.w, (w, i) => w * q.scales[Math.floor(i / cols) * 2 + Math.floor((i % cols) / 128)]!);
    expect(quantizeBt2(naive, rows, cols).scales).not.toEqual(q.scales);
  });

  it('tensors outside braid\'s forward (span bank, valve, BitLinear caches) are skipped; an untied lm_head is refused', async () => {
    const extra = path.join(dir, 'extra');
    await writeChimeraHfFolder(original, extra);
    const st = path.join(extra, 'model.safetensors');
    const { tensors } = readSafetensorsHeader(st);
    const all: SafetensorToWrite[] = [...tensors.values()].map((t) => ({ name: t.name, shape: t.shape, dtype: 'F32', data: readTensorF32(t) }));
    const f = (name: string, shape: number[]): SafetensorToWrite => ({ name, shape, dtype: 'F32', data: new Float32Array(shape.reduce((x, y) => x * y, 1)).fill(0.5) });
    writeSafetensors(st, [
      ...all,
      f('span_engine.span_bank.keys', [4, 32]),
      f('entropy_valve.router.0.weight', [32, 6]),
      f('layers.0.attn.q_proj._alpha', [128]),
      { name: 'layers.0.attn.q_proj._packed', shape: [128, 32], dtype: 'U8', data: new Uint8Array(128 * 32) },
    ]);
    const out = path.join(dir, 'extra.gguf');
    await convertHfFolder({ input: extra, output: out });
    expect(tensorBytes(out)).toEqual(tensorBytes(converted));
    const embd = all.find((t) => t.name === 'embed.weight')!;
    writeSafetensors(st, [...all, { ...embd, name: 'lm_head.weight', data: (embd.data as Float32Array).map((v) => v * 2) }]);
    expect(() => planConversion({ input: extra, output: out })).toThrow(/lm_head.weight differs from embed.weight/);
    writeSafetensors(st, [...all, { ...embd, name: 'lm_head.weight' }]);
    expect(planConversion({ input: extra, output: out }).input.tensors).toHaveLength(fb_count());
  });
});

/** Tensors of the first conversion. */
function fb_count(): number {
  return tensorBytes(converted).size;
}

/** name → bytes of every tensor of a GGUF. */
function tensorBytes(file: string): Map<string, Buffer> {
  const b = readFileSync(file);
  const f = parseGguf(b, file);
  return new Map(f.tensors.map((t) => [t.name, b.subarray(f.dataOffset + t.offset, f.dataOffset + t.offset + t.byteSize!)]));
}
