/**
 * 16-bit float ↔ f32 conversions for safetensors payloads: IEEE half (F16)
 * and bfloat16 (BF16). floatToHalf (round to nearest even) lives with the
 * GGUF writers in init-chimera.ts and is re-exported here so convert code has
 * one place for both directions.
 */
export { floatToHalf } from '../model-init/init-chimera.ts';

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** The f32 value of IEEE half bits (exact: every half is an f32). */
export function halfToFloat(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >>> 10) & 0x1f;
  const mant = h & 0x3ff;
  if (exp === 0) return sign * mant * 2 ** -24;
  if (exp === 0x1f) return mant ? NaN : sign * Infinity;
  return sign * (1 + mant / 1024) * 2 ** (exp - 15);
}

/** The f32 value of bfloat16 bits (the upper half of an f32; exact). */
export function bf16ToFloat(b: number): number {
  u32[0] = (b & 0xffff) << 16;
  return f32[0]!;
}

/** bfloat16 bits of an f32 value, round to nearest even (NaN stays NaN). */
export function floatToBf16(v: number): number {
  f32[0] = v;
  const x = u32[0]!;
  if ((x & 0x7f800000) === 0x7f800000 && x & 0x7fffff) return ((x >>> 16) | 0x40) & 0xffff;
  const rounded = x + 0x7fff + ((x >>> 16) & 1);
  return (rounded >>> 16) & 0xffff;
}
