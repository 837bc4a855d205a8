import { describe, expect, it } from 'vitest';
import {
  bt2Bytes,
  decodeBt2,
  encodeBt2,
  packBt2,
  quantizeBt2,
  roundHalfEven,
  unpackBt2,
} from '../../engine/gguf/bt2.ts';

/** Deterministic N(0, 1) samples (LCG + Box-Muller). */
function normals(n: number, seed = 1): Float32Array {
  let s = seed >>> 0;
  const u = () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) + 0.5) / 4294967296;
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = Math.sqrt(-2 * Math.log(u())) * Math.cos(2 * Math.PI * u());
  return out;
}

describe('BT2 packing', () => {
  it('has the documented size: rows·cols/4 + rows·cols/128·4', () => {
    expect(bt2Bytes(1, 128)).toBe(32 + 4);
    expect(bt2Bytes(3, 384)).toBe(3 * 96 + 3 * 3 * 4);
    expect(() => bt2Bytes(2, 100)).toThrow(/multiple of 128/);
  });

  it('puts weights m, m+32, m+64, m+96 of a group in bits 0-1, 2-3, 4-5, 6-7 of byte m as w+1', () => {
    // Quarter k of the group holds one value: -1, 0, +1, 0 → codes 0, 1, 2, 1.
    const w = new Int8Array(128);
    for (let j = 0; j < 128; j++) w[j] = [-1, 0, 1, 0][j >> 5]!;
    const out = packBt2(w, Float32Array.of(0.5), 1, 128);
    expect(out.length).toBe(36);
    // 0 | 1<<2 | 2<<4 | 1<<6 = 0x64
    expect([...out.subarray(0, 32)]).toEqual(new Array(32).fill(0x64));
    // 0.5f little-endian
    expect([...out.subarray(32)]).toEqual([0x00, 0x00, 0x00, 0x3f]);
  });

  it('places single weights at the documented byte and bit', () => {
    const w = new Int8Array(2 * 256); // 2 rows, 2 groups each; all zero → code 1 everywhere (0x55)
    w[5] = 1; // row 0, group 0, m=5, bits 0-1 → code 2
    w[101] = -1; // row 0, group 0, m=5, bits 6-7 → code 0
    w[256 + 128 + 70] = 1; // row 1, group 1, weight 70 = m 6 + 64 → bits 4-5
    const scales = Float32Array.of(1, 2, 3, -4);
    const out = packBt2(w, scales, 2, 256);
    const expected = new Uint8Array(2 * 64).fill(0x55);
    expected[5] = (2 << 0) | (1 << 2) | (1 << 4) | (0 << 6); // 0x16
    expected[64 + 32 + 6] = (1 << 0) | (1 << 2) | (2 << 4) | (1 << 6); // 0x65
    expect([...out.subarray(0, 128)]).toEqual([...expected]);
    const dv = new DataView(out.buffer, out.byteOffset + 128);
    expect([0, 1, 2, 3].map((i) => dv.getFloat32(4 * i, true))).toEqual([1, 2, 3, -4]);
    expect(out[5]).toBe(0x16);
    expect(out[102]).toBe(0x65);
  });

  it('unpacks what it packs, and rejects non-ternary values and code 3', () => {
    const rows = 3;
    const cols = 384;
    const w = new Int8Array(rows * cols).map((_, i) => ((i * 7919) % 3) - 1);
    const scales = new Float32Array(rows * 3).map((_, i) => 0.01 * (i + 1));
    const packed = packBt2(w, scales, rows, cols);
    const back = unpackBt2(packed, rows, cols);
    expect(back.w).toEqual(w);
    expect(back.scales).toEqual(scales);
    expect(() => packBt2(Int8Array.from({ length: 128 }, () => 2), Float32Array.of(1), 1, 128)).toThrow(/not ternary/);
    packed[0] = 0xff;
    expect(() => unpackBt2(packed, rows, cols)).toThrow(/invalid code 3/);
  });
});

describe('BT2 absmean quantizer', () => {
  it('rounds half to even', () => {
    expect([0.5, 1.5, 2.5, -0.5, -1.5, -2.5, 0.49, 0.51].map((x) => roundHalfEven(x) + 0)).toEqual([0, 2, 2, 0, -2, -2, 0, 1]);
  });

  it('uses scale = mean|W| of each 128-group and clamps to ±1', () => {
    // Group of values with mean |W| = 1: a tie at ±0.5 must round to 0, ±1.5 to ±2 then clamp to ±1.
    const W = new Float32Array(128);
    const pattern = [0.5, -0.5, 1.5, -1.5, 0.51, -0.51, 0.49, 0];
    for (let j = 0; j < 128; j++) W[j] = pattern[j % 8]!;
    const { w, scales } = quantizeBt2(W, 1, 128);
    const mean = W.reduce((a, v) => a + Math.abs(v), 0) / 128; // = 5.51 / 8 = 0.68875
    expect(scales[0]).toBe(Math.fround(mean));
    expect(scales[0]).toBeCloseTo(0.68875, 6);
    const s = scales[0]!;
    for (let j = 0; j < 128; j++) {
      expect(w[j]).toBe(Math.max(-1, Math.min(1, roundHalfEven(Math.fround(W[j]! / s)))) || 0);
    }
    // Exact ties: 64 × -0.5 and 64 × 1.5 → scale exactly 1; -0.5 rounds to 0 (even), 1.5 to 2 → clamp 1.
    const exact = new Float32Array(128).map((_, j) => (j % 2 ? 1.5 : -0.5));
    const q = quantizeBt2(exact, 1, 128);
    expect(q.scales[0]).toBe(1);
    expect([...q.w.subarray(0, 4)]).toEqual([0, 1, 0, 1]);
  });

  it('floors the scale at 1e-6 for an all-zero group and keeps every group independent', () => {
    const W = new Float32Array(256);
    for (let j = 128; j < 256; j++) W[j] = j % 2 ? 3 : -3;
    const { w, scales } = quantizeBt2(W, 1, 256);
    expect(scales[0]).toBe(Math.fround(1e-6));
    expect(scales[1]).toBe(3);
    expect([...w.subarray(0, 128)].every((v) => v === 0)).toBe(true);
    expect([...w.subarray(128, 132)]).toEqual([-1, 1, -1, 1]);
  });

  it('on Gaussian weights: ~31% zeros, signs preserved, large values saturate', () => {
    const rows = 64;
    const cols = 1024;
    const W = normals(rows * cols, 7);
    const { w, scales } = quantizeBt2(W, rows, cols);
    let zeros = 0;
    for (let i = 0; i < w.length; i++) {
      const s = scales[Math.floor(i / cols) * 8 + Math.floor((i % cols) / 128)]!;
      if (w[i] === 0) zeros++;
      else expect(Math.sign(w[i]!)).toBe(Math.sign(W[i]!));
      if (Math.abs(W[i]!) > 0.5 * s * 1.0001) expect(Math.abs(w[i]!)).toBe(1);
      if (Math.abs(W[i]!) < 0.5 * s * 0.9999) expect(w[i]).toBe(0);
    }
    expect(zeros / w.length).toBeGreaterThan(0.29);
    expect(zeros / w.length).toBeLessThan(0.33);
    // The mean scale of N(0,1) groups is sqrt(2/π) ≈ 0.798.
    const meanScale = scales.reduce((a, b) => a + b, 0) / scales.length;
    expect(meanScale).toBeGreaterThan(0.77);
    expect(meanScale).toBeLessThan(0.83);
  });

  it('encode → decode gives scale·w', () => {
    const W = normals(2 * 256, 3);
    const bytes = encodeBt2(W, 2, 256);
    const { w, scales } = quantizeBt2(W, 2, 256);
    const d = decodeBt2(bytes, 2, 256);
    for (let i = 0; i < d.length; i++) expect(d[i]).toBe(scales[Math.floor(i / 128)]! * w[i]!);
  });
});
