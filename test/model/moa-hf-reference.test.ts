/**
 * A converted Hugging Face MoA checkpoint computes, through braid (`braid convert` + the C
 * forward), the logits an independent PyTorch reference computes from the checkpoint's own
 * float weights (scripts/reference/moa_torch.py, written from ARCHITECTURES.md §2-MoA and
 * docs/architecture.md, sharing no code with the converter or the C library).
 *
 * test/golden/moa-hf/ holds four synthetic HF folders — one per metric with ball pruning, V
 * energy, discrepancy modulation, FiLM and router-bias gates on (cosine with branch_topk 1,
 * maha_diag with router_topk 1), and `plain` (l2, F16 safetensors) with plain RoPE, no balls, no
 * gates, all four paths and two branches — and the reference's logits for sequences.json,
 * computed in float64 and rounded to float32 once (make.sh regenerates them; this test never
 * runs python).
 *
 * Tolerance: |C − golden| <= 1e-4 on logits up to ~10 in magnitude (~1e-5 relative). C runs in
 * float32; PyTorch's own float32 run of the same reference differs from its float64 by up to
 * 2.9e-5 (l2's explicit ‖q − k‖² cancels), and C measured at most 1.9e-5 over the ref, AVX2 and
 * AVX-512 kernels, so 1e-4 leaves room for float32 rounding while a wrong term (a sign, a tap, a
 * missing gate) moves logits by 1e-2 or more (the nudge test below shows it for each component). The discontinuous decisions (router / branch top-k, ball membership) have
 * margins >= 5e-5 in the golden (make.sh prints them), far above float32 rounding, so both
 * sides take the same branches.
 */
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { initLibrary } from '../../engine/binding/library.ts';
import { convertHfFolder } from '../../engine/convert/convert.ts';
import { NativeModel } from '../../engine/model/native-model.ts';
import { PACKAGE_ROOT } from '../../server/config.ts';

const GOLDEN = path.join(PACKAGE_ROOT, 'test/golden/moa-hf');
/** One folder per metric with every switch on, and `plain` with every switch the other way. */
const FOLDERS = ['l2', 'cosine', 'maha_diag', 'plain'] as const;
const TOLERANCE = 1e-4;

const sequences = JSON.parse(readFileSync(path.join(GOLDEN, 'sequences.json'), 'utf8')) as number[][];
let dir: string;
const models = new Map<string, NativeModel>();

function golden(folder: string): Float32Array {
  const b = readFileSync(path.join(GOLDEN, `${folder}.logits.f32`));
  return new Float32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength));
}

/** The golden rows of sequence s ([len][V]). */
function goldenRows(all: Float32Array, s: number, V: number): Float32Array {
  const start = sequences.slice(0, s).reduce((n, q) => n + q.length, 0) * V;
  return all.subarray(start, start + sequences[s]!.length * V);
}

function maxAbsDiff(a: Float32Array, b: Float32Array): number {
  expect(a.length).toBe(b.length);
  let worst = 0;
  for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i]! - b[i]!));
  return worst;
}

beforeAll(async () => {
  initLibrary(1);
  dir = mkdtempSync(path.join(tmpdir(), 'braid-moa-hf-'));
  for (const folder of FOLDERS) {
    const out = path.join(dir, `${folder}.gguf`);
    const r = await convertHfFolder({ input: path.join(GOLDEN, folder), output: out });
    expect(r.arch).toBe('moa');
    models.set(folder, await NativeModel.load(out));
  }
}, 60_000);

afterAll(async () => {
  for (const m of models.values()) await m.dispose();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('converted HF MoA checkpoint vs the independent PyTorch reference', () => {
  it('the golden is what it claims: 288-row vocabulary, two sequences, finite logits', () => {
    expect(sequences.map((s) => s.length)).toEqual([64, 9]);
    for (const folder of FOLDERS) {
      const g = golden(folder);
      expect(g.length).toBe(73 * 288);
      expect(g.every(Number.isFinite)).toBe(true);
    }
  });

  for (const folder of FOLDERS) {
    it(`${folder}: all-position logits of a fresh prefill match within ${TOLERANCE}`, async () => {
      const model = models.get(folder)!;
      expect(model.architecture).toBe('moa');
      const V = model.nVocab;
      expect(V).toBe(288);
      const g = golden(folder);
      const ctx = model.createContext(128);
      try {
        for (let s = 0; s < sequences.length; s++) {
          await ctx.reset();
          const got = await ctx.eval(sequences[s]!, { allLogits: true });
          expect(maxAbsDiff(got, goldenRows(g, s, V)), `${folder} sequence ${s}`).toBeLessThanOrEqual(TOLERANCE);
        }
      } finally {
        await ctx.dispose();
      }
    });

    it(`${folder}: KV-cached decode (token by token, uneven chunks, after a rewind) matches too`, async () => {
      const model = models.get(folder)!;
      const V = model.nVocab;
      const seq = sequences[0]!;
      const want = goldenRows(golden(folder), 0, V);
      const ctx = model.createContext(16); // chunks wider than 16 are split by NativeContext
      try {
        // one token per eval: every step reads the cache of all earlier positions
        const stepwise = new Float32Array(seq.length * V);
        for (let t = 0; t < seq.length; t++) stepwise.set(await ctx.eval([seq[t]!]), t * V);
        expect(maxAbsDiff(stepwise, want)).toBeLessThanOrEqual(TOLERANCE);
        // uneven chunks after a fresh start give the same rows bit for bit (batch invariance)
        await ctx.reset();
        const chunked = new Float32Array(seq.length * V);
        for (let at = 0, w = 1; at < seq.length; at += w, w = (w % 7) + 3) {
          const piece = seq.slice(at, at + w);
          chunked.set(await ctx.eval(piece, { allLogits: true }), at * V);
        }
        expect(maxAbsDiff(chunked, stepwise)).toBe(0);
        // drop the last 20 tokens and evaluate them again: the rewound cache forgets them exactly
        expect(ctx.nPast).toBe(seq.length);
        await ctx.rewind(20);
        expect(ctx.nPast).toBe(seq.length - 20);
        const again = await ctx.eval(seq.slice(seq.length - 20), { allLogits: true });
        expect(maxAbsDiff(again, stepwise.subarray((seq.length - 20) * V))).toBe(0);
      } finally {
        await ctx.dispose();
      }
    });
  }

  // The tolerance is tight enough to see every component: nudging one raw HF value by 0.1 in
  // each of these moves the logits by at least 2.8e-2 (measured), far past 10 × TOLERANCE.
  const NUDGED = [
    'model.layers.0.mha.rope.phase_a', // BlackHoleRoPE phase (MHA)
    'model.layers.0.mqa.rope.phase_b', // BlackHoleRoPE phase (MQA)
    'model.layers.1.mqa.rope.energy_c', // V energy
    'model.layers.0.mha.rope.disc', // discrepancy modulation
    'model.layers.0.mha.ball_radius_raw', // ball pruning (softplus map)
    'model.layers.0.mha.alpha_raw', // metric scale α (softplus map)
    'model.layers.0.router.film_gamma.weight', // FiLM feature gates
    'model.layers.0.router.bias_gate.bias', // router-bias gates
    'model.layers.0.local_conv.dw.weight', // LocalConv's oldest tap
    'model.layers.1.ffn.sepconv.dw.weight', // SepConv's oldest tap
    'model.layers.0.ffn.lowrank.up.weight', // LowRank branch
    'model.layers.1.ls_ffn.gamma', // LayerScale
  ];
  it('nudging one weight of any component by 0.1 breaks the match (the comparison is sensitive)', async () => {
    const seq = sequences[0]!;
    const want = goldenRows(golden('l2'), 0, 288);
    for (const name of NUDGED) {
      const folder = path.join(dir, 'nudged');
      mkdirSync(folder, { recursive: true });
      for (const f of ['config.json', 'tokenizer.json']) copyFileSync(path.join(GOLDEN, 'l2', f), path.join(folder, f));
      const st = Buffer.from(readFileSync(path.join(GOLDEN, 'l2', 'model.safetensors')));
      const headerLength = Number(st.readBigUInt64LE(0));
      const header = JSON.parse(st.subarray(8, 8 + headerLength).toString('utf8')) as Record<string, { dtype: string; data_offsets: [number, number] }>;
      const entry = header[name];
      expect(entry?.dtype, name).toBe('F32');
      const at = 8 + headerLength + entry!.data_offsets[0];
      st.writeFloatLE(st.readFloatLE(at) + 0.1, at);
      writeFileSync(path.join(folder, 'model.safetensors'), st);
      const out = path.join(dir, 'nudged.gguf');
      rmSync(out, { force: true });
      await convertHfFolder({ input: folder, output: out });
      const model = await NativeModel.load(out);
      try {
        const ctx = model.createContext(128);
        const got = await ctx.eval(seq, { allLogits: true });
        await ctx.dispose();
        expect(maxAbsDiff(got, want), name).toBeGreaterThan(10 * TOLERANCE);
      } finally {
        await model.dispose();
      }
    }
  }, 60_000);
});
