/**
 * f32 values → a GGUF tensor spec (F32 or F16), produced lazily when the
 * writer reaches it, so a converted model never sits in memory whole.
 */
import { GgmlType } from '../gguf/types.ts';
import type { GgufTensorSpec } from '../gguf/writer.ts';
import { floatToHalf } from './half.ts';

export type FloatMatrixDtype = 'f32' | 'f16';

/** What every architecture's converter is told. */
export interface ConvertOptions {
  /** Storage of the float matrices (vectors are always F32). */
  dtype: FloatMatrixDtype;
  /** general.name. */
  name: string;
}

export function f32Bytes(v: Float32Array): Uint8Array {
  const out = new Uint8Array(v.length * 4);
  const view = new DataView(out.buffer);
  for (let i = 0; i < v.length; i++) view.setFloat32(4 * i, v[i]!, true);
  return out;
}

export function f16Bytes(v: Float32Array): Uint8Array {
  const out = new Uint8Array(v.length * 2);
  const view = new DataView(out.buffer);
  for (let i = 0; i < v.length; i++) view.setUint16(2 * i, floatToHalf(v[i]!), true);
  return out;
}

/** A float tensor whose values `load()` computes when the writer needs them. */
export function floatTensor(name: string, dims: readonly number[], dtype: FloatMatrixDtype, load: () => Float32Array): GgufTensorSpec {
  return {
    name,
    type: dtype === 'f16' ? GgmlType.F16 : GgmlType.F32,
    dims,
    data: () => [dtype === 'f16' ? f16Bytes(load()) : f32Bytes(load())],
  };
}
