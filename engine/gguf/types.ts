/**
 * The GGUF v3 value model shared by the reader and the writer, plus typed
 * accessors that turn "missing key" and "wrong type" into readable errors.
 *
 * Spec: https://github.com/ggml-org/ggml/blob/master/docs/gguf.md and docs/format.md.
 */

/** GGUF metadata value type ids (gguf_type in ggml). */
export const GgufValueType = {
  u8: 0,
  i8: 1,
  u16: 2,
  i16: 3,
  u32: 4,
  i32: 5,
  f32: 6,
  bool: 7,
  string: 8,
  array: 9,
  u64: 10,
  i64: 11,
  f64: 12,
} as const;

export type GgufNumberType = 'u8' | 'i8' | 'u16' | 'i16' | 'u32' | 'i32' | 'f32' | 'f64';
export type GgufBigIntType = 'u64' | 'i64';
export type GgufScalarType = GgufNumberType | GgufBigIntType | 'bool' | 'string';

export type GgufScalar =
  | { type: GgufNumberType; value: number }
  | { type: GgufBigIntType; value: bigint }
  | { type: 'bool'; value: boolean }
  | { type: 'string'; value: string };

/** Arrays hold scalars of one type. Nested arrays are rejected, as ggml's own loader does. */
export type GgufArray =
  | { type: 'array'; itemType: GgufNumberType; value: readonly number[] }
  | { type: 'array'; itemType: GgufBigIntType; value: readonly bigint[] }
  | { type: 'array'; itemType: 'bool'; value: readonly boolean[] }
  | { type: 'array'; itemType: 'string'; value: readonly string[] };

export type GgufValue = GgufScalar | GgufArray;

/** Ordered key → value map (the writer keeps insertion order). */
export type GgufMetadata = ReadonlyMap<string, GgufValue>;

/** Value constructors, so callers write `gv.u32(4)` instead of object literals. */
export const gv = {
  u8: (value: number): GgufValue => ({ type: 'u8', value }),
  i8: (value: number): GgufValue => ({ type: 'i8', value }),
  u16: (value: number): GgufValue => ({ type: 'u16', value }),
  i16: (value: number): GgufValue => ({ type: 'i16', value }),
  u32: (value: number): GgufValue => ({ type: 'u32', value }),
  i32: (value: number): GgufValue => ({ type: 'i32', value }),
  f32: (value: number): GgufValue => ({ type: 'f32', value }),
  f64: (value: number): GgufValue => ({ type: 'f64', value }),
  u64: (value: bigint): GgufValue => ({ type: 'u64', value }),
  i64: (value: bigint): GgufValue => ({ type: 'i64', value }),
  bool: (value: boolean): GgufValue => ({ type: 'bool', value }),
  str: (value: string): GgufValue => ({ type: 'string', value }),
  numArray: (itemType: GgufNumberType, value: readonly number[]): GgufValue => ({ type: 'array', itemType, value }),
  bigArray: (itemType: GgufBigIntType, value: readonly bigint[]): GgufValue => ({ type: 'array', itemType, value }),
  boolArray: (value: readonly boolean[]): GgufValue => ({ type: 'array', itemType: 'bool', value }),
  strArray: (value: readonly string[]): GgufValue => ({ type: 'array', itemType: 'string', value }),
};

/** ggml tensor type ids used by braid (docs/format.md). */
export const GgmlType = {
  F32: 0,
  F16: 1,
  /** braid ternary, 2 bits per weight + fp32 scale per 128 (c/src/kernels.h). */
  BT2: 1024,
} as const;

export const BT2_GROUP = 128;

/**
 * Block size (elements) and bytes per block of the ggml types we can size.
 * Types missing here are still listed by the reader, with byteSize null.
 */
export const GGML_TYPE_SIZES: ReadonlyMap<number, { name: string; block: number; bytes: number }> = new Map([
  [0, { name: 'F32', block: 1, bytes: 4 }],
  [1, { name: 'F16', block: 1, bytes: 2 }],
  [2, { name: 'Q4_0', block: 32, bytes: 18 }],
  [3, { name: 'Q4_1', block: 32, bytes: 20 }],
  [6, { name: 'Q5_0', block: 32, bytes: 22 }],
  [7, { name: 'Q5_1', block: 32, bytes: 24 }],
  [8, { name: 'Q8_0', block: 32, bytes: 34 }],
  [9, { name: 'Q8_1', block: 32, bytes: 36 }],
  [10, { name: 'Q2_K', block: 256, bytes: 84 }],
  [11, { name: 'Q3_K', block: 256, bytes: 110 }],
  [12, { name: 'Q4_K', block: 256, bytes: 144 }],
  [13, { name: 'Q5_K', block: 256, bytes: 176 }],
  [14, { name: 'Q6_K', block: 256, bytes: 210 }],
  [15, { name: 'Q8_K', block: 256, bytes: 292 }],
  [24, { name: 'I8', block: 1, bytes: 1 }],
  [25, { name: 'I16', block: 1, bytes: 2 }],
  [26, { name: 'I32', block: 1, bytes: 4 }],
  [27, { name: 'I64', block: 1, bytes: 8 }],
  [28, { name: 'F64', block: 1, bytes: 8 }],
  [30, { name: 'BF16', block: 1, bytes: 2 }],
  [34, { name: 'TQ1_0', block: 256, bytes: 54 }],
  [35, { name: 'TQ2_0', block: 256, bytes: 66 }],
]);

/**
 * Bytes of a tensor with GGUF dims (ne0 first), or null when the type is not
 * one we can size. Throws for shapes the type cannot hold.
 */
export function ggmlTensorBytes(type: number, dims: readonly number[]): number | null {
  const cols = dims[0] ?? 1;
  const rows = dims.slice(1).reduce((a, b) => a * b, 1);
  if (type === GgmlType.BT2) {
    if (cols % BT2_GROUP !== 0) throw new Error(`BT2 tensor needs ne0 (cols) a multiple of 128, got ${cols}`);
    return rows * (cols / 4) + rows * (cols / BT2_GROUP) * 4;
  }
  const t = GGML_TYPE_SIZES.get(type);
  if (!t) return null;
  if (cols % t.block !== 0) throw new Error(`${t.name} tensor needs ne0 a multiple of ${t.block}, got ${cols}`);
  return rows * (cols / t.block) * t.bytes;
}

export function ggmlTypeName(type: number): string {
  if (type === GgmlType.BT2) return 'BT2';
  return GGML_TYPE_SIZES.get(type)?.name ?? `type#${type}`;
}

/** One entry of the tensor-info table. */
export interface GgufTensorInfo {
  name: string;
  /** GGUF order: dims[0] = ne0 = columns (fastest varying). */
  dims: number[];
  type: number;
  /** Offset relative to the start of the tensor data section. */
  offset: number;
  /** Absolute offset in the file. */
  fileOffset: number;
  /** Size in bytes, or null for a type this reader cannot size. */
  byteSize: number | null;
}

export interface GgufFile {
  version: number;
  metadata: GgufMetadata;
  tensors: GgufTensorInfo[];
  alignment: number;
  /** Absolute offset of the tensor data section. */
  dataOffset: number;
  fileSize: number;
}

// ---- typed accessors ---------------------------------------------------------

function describe(v: GgufValue): string {
  return v.type === 'array' ? `array[${v.itemType}]` : v.type;
}

function need(meta: GgufMetadata, key: string): GgufValue {
  const v = meta.get(key);
  if (v === undefined) throw new Error(`GGUF metadata key "${key}" is missing`);
  return v;
}

export function metaString(meta: GgufMetadata, key: string): string {
  const v = need(meta, key);
  if (v.type !== 'string') throw new Error(`GGUF metadata key "${key}" is ${describe(v)}, expected string`);
  return v.value;
}

export function metaOptString(meta: GgufMetadata, key: string): string | undefined {
  return meta.has(key) ? metaString(meta, key) : undefined;
}

/** Any integer or float scalar as a JS number (u64/i64 must be exactly representable). */
export function metaNumber(meta: GgufMetadata, key: string): number {
  const v = need(meta, key);
  if (v.type === 'u64' || v.type === 'i64') {
    const n = Number(v.value);
    if (!Number.isSafeInteger(n)) throw new Error(`GGUF metadata key "${key}" = ${v.value} does not fit a JS number`);
    return n;
  }
  if (typeof v.value !== 'number') throw new Error(`GGUF metadata key "${key}" is ${describe(v)}, expected a number`);
  return v.value;
}

export function metaOptNumber(meta: GgufMetadata, key: string): number | undefined {
  return meta.has(key) ? metaNumber(meta, key) : undefined;
}

export function metaStringArray(meta: GgufMetadata, key: string): readonly string[] {
  const v = need(meta, key);
  if (v.type !== 'array' || v.itemType !== 'string') {
    throw new Error(`GGUF metadata key "${key}" is ${describe(v)}, expected array[string]`);
  }
  return v.value;
}

export function metaNumberArray(meta: GgufMetadata, key: string): readonly number[] {
  const v = need(meta, key);
  if (v.type !== 'array' || v.itemType === 'string' || v.itemType === 'bool') {
    throw new Error(`GGUF metadata key "${key}" is ${describe(v)}, expected a numeric array`);
  }
  return (v.value as readonly (number | bigint)[]).map(Number);
}
