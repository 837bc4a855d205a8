/**
 * An independent BT2 decoder, written from docs/format.md (not from
 * engine/gguf/bt2.ts or the C kernels), for the float64 reference.
 *
 *   qs:     rows × cols/4 bytes. In each row, 128-weight group g is 32 bytes;
 *           byte m holds the 2-bit codes of weights 128g+m (bits 0-1),
 *           128g+m+32 (bits 2-3), 128g+m+64 (bits 4-5), 128g+m+96 (bits 6-7).
 *           code = w + 1 ∈ {0, 1, 2}.
 *   scales: rows × cols/128 little-endian float32 right after qs; row r,
 *           group g at r·cols/128 + g. Effective weight = scale · w.
 */

export const GROUP = 128;

export interface TernaryMatrix {
  rows: number;
  cols: number;
  /** [rows][cols] row-major, each -1, 0 or +1. */
  w: Int8Array;
  /** [rows][cols/128] per-group scales (float32 values). */
  scales: Float64Array;
}

export function decodeTernary(bytes: Uint8Array, rows: number, cols: number): TernaryMatrix {
  if (cols % GROUP !== 0) throw new Error(`BT2: cols ${cols} is not a multiple of ${GROUP}`);
  const groups = cols / GROUP;
  const qsBytes = (rows * cols) / 4;
  const want = qsBytes + rows * groups * 4;
  if (bytes.byteLength !== want) throw new Error(`BT2 [${rows}, ${cols}]: ${bytes.byteLength} bytes, expected ${want}`);
  const w = new Int8Array(rows * cols);
  for (let r = 0; r < rows; r++) {
    for (let g = 0; g < groups; g++) {
      const group = bytes.subarray(r * (cols / 4) + g * 32, r * (cols / 4) + g * 32 + 32);
      for (let j = 0; j < GROUP; j++) {
        // Weight j of the group: byte j mod 32, 2-bit field j div 32.
        const code = (group[j % 32]! >> (2 * Math.floor(j / 32))) & 3;
        if (code > 2) throw new Error(`BT2: code 3 at row ${r}, column ${g * GROUP + j}`);
        w[r * cols + g * GROUP + j] = code - 1;
      }
    }
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset + qsBytes, rows * groups * 4);
  const scales = Float64Array.from({ length: rows * groups }, (_, i) => view.getFloat32(4 * i, true));
  return { rows, cols, w, scales };
}
