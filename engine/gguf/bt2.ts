/**
 * BT2, braid's 2-bit ternary tensor format (c/src/kernels.h, docs/format.md),
 * and the per-128-group absmean quantizer of seed 002:
 *   scale = max(mean |W| over the group, 1e-6)
 *   w     = clamp(round_half_even(W / scale), -1, 1)
 *
 * Layout of a [rows, cols] matrix: qs (rows·cols/4 bytes; in each 128-group,
 * byte m holds weights m, m+32, m+64, m+96 in bits 0-1, 2-3, 4-5, 6-7 as
 * code = w + 1), then scales (rows·cols/128 float32, little-endian).
 */
import { BT2_GROUP } from './types.ts';

export { BT2_GROUP };

const SCALE_FLOOR = 1e-6;

export function bt2Bytes(rows: number, cols: number): number {
  checkShape(rows, cols);
  return rows * (cols / 4) + rows * (cols / BT2_GROUP) * 4;
}

function checkShape(rows: number, cols: number): void {
  if (!Number.isInteger(rows) || rows < 1 || !Number.isInteger(cols) || cols < BT2_GROUP || cols % BT2_GROUP) {
    throw new Error(`BT2 needs rows >= 1 and cols a positive multiple of ${BT2_GROUP}, got [${rows}, ${cols}]`);
  }
}

/** Round half to even, the rounding the C quantizers use (rint in the default mode). */
export function roundHalfEven(x: number): number {
  const f = Math.floor(x);
  const d = x - f;
  if (d > 0.5) return f + 1;
  if (d < 0.5) return f;
  return f % 2 === 0 ? f : f + 1;
}

/**
 * Packs ternary values w[rows*cols] (each -1, 0 or +1, row-major) and scales
 * [rows*cols/128] into BT2 bytes.
 */
export function packBt2(w: Int8Array, scales: Float32Array, rows: number, cols: number): Uint8Array {
  checkShape(rows, cols);
  const groups = cols / BT2_GROUP;
  if (w.length !== rows * cols) throw new Error(`packBt2: ${w.length} weights for [${rows}, ${cols}]`);
  if (scales.length !== rows * groups) throw new Error(`packBt2: ${scales.length} scales, expected ${rows * groups}`);
  const qsBytes = rows * (cols / 4);
  const out = new Uint8Array(qsBytes + scales.length * 4);
  for (let r = 0; r < rows; r++) {
    for (let g = 0; g < groups; g++) {
      const src = r * cols + g * BT2_GROUP;
      const dst = r * (cols / 4) + g * 32;
      for (let m = 0; m < 32; m++) {
        let byte = 0;
        for (let k = 0; k < 4; k++) {
          const v = w[src + m + 32 * k]!;
          if (v < -1 || v > 1) throw new Error(`packBt2: weight ${v} at row ${r} is not ternary`);
          byte |= (v + 1) << (2 * k);
        }
        out[dst + m] = byte;
      }
    }
  }
  const dv = new DataView(out.buffer, out.byteOffset + qsBytes, scales.length * 4);
  for (let i = 0; i < scales.length; i++) dv.setFloat32(i * 4, scales[i]!, true);
  return out;
}

/** Inverse of packBt2. Throws on code 3 (never written by a valid encoder). */
export function unpackBt2(bytes: Uint8Array, rows: number, cols: number): { w: Int8Array; scales: Float32Array } {
  const size = bt2Bytes(rows, cols);
  if (bytes.byteLength !== size) throw new Error(`unpackBt2: ${bytes.byteLength} bytes, expected ${size}`);
  const groups = cols / BT2_GROUP;
  const w = new Int8Array(rows * cols);
  for (let r = 0; r < rows; r++) {
    for (let g = 0; g < groups; g++) {
      const src = r * (cols / 4) + g * 32;
      const dst = r * cols + g * BT2_GROUP;
      for (let m = 0; m < 32; m++) {
        const byte = bytes[src + m]!;
        for (let k = 0; k < 4; k++) {
          const code = (byte >> (2 * k)) & 3;
          if (code === 3) throw new Error(`unpackBt2: invalid code 3 in row ${r}, group ${g}`);
          w[dst + m + 32 * k] = code - 1;
        }
      }
    }
  }
  const qsBytes = rows * (cols / 4);
  const dv = new DataView(bytes.buffer, bytes.byteOffset + qsBytes, rows * groups * 4);
  const scales = new Float32Array(rows * groups);
  for (let i = 0; i < scales.length; i++) scales[i] = dv.getFloat32(i * 4, true);
  return { w, scales };
}

/**
 * Per-group absmean ternary quantization of W [rows, cols] (row-major).
 * Arithmetic follows float32 like the C side: the mean is accumulated in
 * double and rounded once to float32, and W/scale is rounded to float32
 * before rounding to an integer, so ties land where C's float division puts them.
 */
export function quantizeBt2(W: Float32Array, rows: number, cols: number): { w: Int8Array; scales: Float32Array } {
  checkShape(rows, cols);
  if (W.length !== rows * cols) throw new Error(`quantizeBt2: ${W.length} values for [${rows}, ${cols}]`);
  const groups = cols / BT2_GROUP;
  const w = new Int8Array(rows * cols);
  const scales = new Float32Array(rows * groups);
  for (let r = 0; r < rows; r++) {
    for (let g = 0; g < groups; g++) {
      const base = r * cols + g * BT2_GROUP;
      let sum = 0;
      for (let j = 0; j < BT2_GROUP; j++) sum += Math.abs(W[base + j]!);
      const scale = Math.max(Math.fround(sum / BT2_GROUP), Math.fround(SCALE_FLOOR));
      scales[r * groups + g] = scale;
      for (let j = 0; j < BT2_GROUP; j++) {
        const q = roundHalfEven(Math.fround(W[base + j]! / scale));
        w[base + j] = q > 1 ? 1 : q < -1 ? -1 : q;
      }
    }
  }
  return { w, scales };
}

/** quantizeBt2 + packBt2: the bytes of a BT2 tensor for float weights. */
export function encodeBt2(W: Float32Array, rows: number, cols: number): Uint8Array {
  const { w, scales } = quantizeBt2(W, rows, cols);
  return packBt2(w, scales, rows, cols);
}

/** Effective float weights (scale · w) of a BT2 tensor, for tests and reference paths. */
export function decodeBt2(bytes: Uint8Array, rows: number, cols: number): Float32Array {
  const { w, scales } = unpackBt2(bytes, rows, cols);
  const groups = cols / BT2_GROUP;
  const out = new Float32Array(rows * cols);
  for (let i = 0; i < out.length; i++) {
    const r = Math.floor(i / cols);
    const g = Math.floor((i % cols) / BT2_GROUP);
    out[i] = scales[r * groups + g]! * w[i]!;
  }
  return out;
}
