/**
 * safetensors (https://github.com/huggingface/safetensors): reader and writer.
 *
 * Layout: u64 little-endian header length N, N bytes of UTF-8 JSON
 * `{ "__metadata__"?: {string: string}, name: {dtype, shape, data_offsets: [begin, end]} }`,
 * then the data section; offsets are relative to its start. The reader checks
 * what the reference implementation checks: the header fits in the file, every
 * tensor's byte range matches dtype × shape, lies inside the data section and
 * overlaps no other, and the tensors cover the data section exactly (a gap
 * means a truncated or hand-edited file). Tensor bytes are read on demand by
 * positioned reads, so a large checkpoint never sits in memory whole.
 */
import { closeSync, fstatSync, openSync, readSync, writeFileSync } from 'node:fs';
import { bf16ToFloat, floatToBf16, floatToHalf, halfToFloat } from './half.ts';

export const SAFETENSORS_DTYPE_BYTES = {
  F64: 8,
  F32: 4,
  F16: 2,
  BF16: 2,
  I64: 8,
  I32: 4,
  I16: 2,
  I8: 1,
  U8: 1,
  BOOL: 1,
} as const;
export type SafetensorsDtype = keyof typeof SAFETENSORS_DTYPE_BYTES;

/** Dtypes whose values convert to f32 (the float tensors a model checkpoint holds). */
export const FLOAT_DTYPES: readonly SafetensorsDtype[] = ['F32', 'F16', 'BF16', 'F64'];

/** The header guard of the reference implementation (100 MB). */
const MAX_HEADER = 100_000_000;

export class SafetensorsError extends Error {
  constructor(file: string, what: string) {
    super(`${file}: ${what}`);
    this.name = 'SafetensorsError';
  }
}

export interface SafetensorInfo {
  name: string;
  dtype: SafetensorsDtype;
  shape: number[];
  /** The file holding it. */
  file: string;
  /** Absolute byte offset in the file. */
  offset: number;
  bytes: number;
}

export interface SafetensorsHeader {
  tensors: Map<string, SafetensorInfo>;
  metadata: Record<string, string>;
}

const isObj = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

function readExact(fd: number, length: number, position: number): Buffer {
  const buf = Buffer.alloc(length);
  let done = 0;
  while (done < length) {
    const n = readSync(fd, buf, done, length - done, position + done);
    if (n === 0) break;
    done += n;
  }
  return buf.subarray(0, done);
}

/** Parses and checks the header of one .safetensors file. */
export function readSafetensorsHeader(file: string): SafetensorsHeader {
  const fd = openSync(file, 'r');
  try {
    const size = fstatSync(fd).size;
    const fail = (what: string): never => {
      throw new SafetensorsError(file, what);
    };
    if (size < 8) fail(`${size} bytes is too short for a safetensors file (no 8-byte header length)`);
    const n = Number(readExact(fd, 8, 0).readBigUInt64LE(0));
    if (n > MAX_HEADER) fail(`header length ${n} is over the ${MAX_HEADER}-byte limit`);
    if (8 + n > size) fail(`header length ${n} runs past the end of the ${size}-byte file`);
    let json: unknown;
    try {
      json = JSON.parse(readExact(fd, n, 8).toString('utf8'));
    } catch (e) {
      fail(`header is not valid JSON (${(e as Error).message})`);
    }
    if (!isObj(json)) return fail('header is not a JSON object');
    const dataStart = 8 + n;
    const dataBytes = size - dataStart;
    const metadata: Record<string, string> = {};
    const tensors = new Map<string, SafetensorInfo>();
    for (const [name, entry] of Object.entries(json)) {
      if (name === '__metadata__') {
        if (!isObj(entry)) fail('"__metadata__" must be an object of strings');
        for (const [k, v] of Object.entries(entry as Record<string, unknown>)) {
          if (typeof v !== 'string') fail(`"__metadata__.${k}" must be a string`);
          metadata[k] = v as string;
        }
        continue;
      }
      if (!isObj(entry)) return fail(`tensor "${name}": entry is not an object`);
      const dtype = entry.dtype;
      if (typeof dtype !== 'string' || !(dtype in SAFETENSORS_DTYPE_BYTES)) {
        fail(`tensor "${name}": dtype ${JSON.stringify(dtype)} is not one of ${Object.keys(SAFETENSORS_DTYPE_BYTES).join(', ')}`);
      }
      const shape = entry.shape;
      if (!Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
        return fail(`tensor "${name}": shape ${JSON.stringify(shape)} is not a list of non-negative integers`);
      }
      const off = entry.data_offsets;
      if (!Array.isArray(off) || off.length !== 2 || !off.every((o) => Number.isSafeInteger(o) && o >= 0) || off[0] > off[1]) {
        return fail(`tensor "${name}": data_offsets ${JSON.stringify(off)} is not [begin, end] with 0 <= begin <= end`);
      }
      const [begin, end] = off as [number, number];
      const want = (shape as number[]).reduce((a, d) => a * d, 1) * SAFETENSORS_DTYPE_BYTES[dtype as SafetensorsDtype];
      if (end - begin !== want) {
        fail(`tensor "${name}": ${end - begin} bytes for ${dtype} ${JSON.stringify(shape)}, expected ${want}`);
      }
      if (end > dataBytes) fail(`tensor "${name}": bytes ${begin}..${end} run past the ${dataBytes}-byte data section`);
      tensors.set(name, { name, dtype: dtype as SafetensorsDtype, shape: shape as number[], file, offset: dataStart + begin, bytes: want });
    }
    // Sorted by start, each tensor must begin where the previous one ended.
    let at = dataStart;
    let prev = '(start of data)';
    for (const t of [...tensors.values()].sort((a, b) => a.offset - b.offset || a.bytes - b.bytes)) {
      if (t.offset < at) fail(`tensor "${t.name}" overlaps tensor "${prev}"`);
      if (t.offset > at) fail(`${t.offset - at} bytes before tensor "${t.name}" belong to no tensor`);
      at = t.offset + t.bytes;
      prev = t.name;
    }
    if (at !== size) fail(`${size - at} bytes after the last tensor belong to no tensor`);
    return { tensors, metadata };
  } finally {
    closeSync(fd);
  }
}

/** The raw bytes of a tensor. */
export function readTensorBytes(t: SafetensorInfo): Uint8Array {
  const fd = openSync(t.file, 'r');
  try {
    const buf = readExact(fd, t.bytes, t.offset);
    if (buf.byteLength !== t.bytes) throw new SafetensorsError(t.file, `tensor "${t.name}" is truncated`);
    return buf;
  } finally {
    closeSync(fd);
  }
}

/** A float tensor's values as f32 (F16 and BF16 widen exactly; F64 rounds). */
export function readTensorF32(t: SafetensorInfo): Float32Array {
  const raw = readTensorBytes(t);
  const n = t.bytes / SAFETENSORS_DTYPE_BYTES[t.dtype];
  const view = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
  const out = new Float32Array(n);
  switch (t.dtype) {
    case 'F32':
      for (let i = 0; i < n; i++) out[i] = view.getFloat32(4 * i, true);
      break;
    case 'F16':
      for (let i = 0; i < n; i++) out[i] = halfToFloat(view.getUint16(2 * i, true));
      break;
    case 'BF16':
      for (let i = 0; i < n; i++) out[i] = bf16ToFloat(view.getUint16(2 * i, true));
      break;
    case 'F64':
      for (let i = 0; i < n; i++) out[i] = view.getFloat64(8 * i, true);
      break;
    default:
      throw new SafetensorsError(t.file, `tensor "${t.name}" has dtype ${t.dtype}, expected a float dtype (${FLOAT_DTYPES.join(', ')})`);
  }
  return out;
}

/** A tensor to write: f32 values stored as `dtype` (F32, F16 or BF16), or raw bytes of any dtype. */
export interface SafetensorToWrite {
  name: string;
  shape: readonly number[];
  dtype: SafetensorsDtype;
  data: Float32Array | Uint8Array;
}

function encode(t: SafetensorToWrite): Uint8Array {
  const n = t.shape.reduce((a, d) => a * d, 1);
  const want = n * SAFETENSORS_DTYPE_BYTES[t.dtype];
  if (t.data instanceof Uint8Array) {
    if (t.data.byteLength !== want) throw new Error(`safetensors "${t.name}": ${t.data.byteLength} bytes for ${t.dtype} [${t.shape.join(', ')}], expected ${want}`);
    return t.data;
  }
  if (t.data.length !== n) throw new Error(`safetensors "${t.name}": ${t.data.length} values for shape [${t.shape.join(', ')}]`);
  const out = new Uint8Array(want);
  const view = new DataView(out.buffer);
  const src = t.data;
  switch (t.dtype) {
    case 'F32':
      for (let i = 0; i < n; i++) view.setFloat32(4 * i, src[i]!, true);
      break;
    case 'F16':
      for (let i = 0; i < n; i++) view.setUint16(2 * i, floatToHalf(src[i]!), true);
      break;
    case 'BF16':
      for (let i = 0; i < n; i++) view.setUint16(2 * i, floatToBf16(src[i]!), true);
      break;
    default:
      throw new Error(`safetensors "${t.name}": f32 values can be written as F32, F16 or BF16, not ${t.dtype}`);
  }
  return out;
}

/** The bytes of a .safetensors file holding `tensors` in the given order. */
export function encodeSafetensors(tensors: readonly SafetensorToWrite[], metadata: Record<string, string> = {}): Uint8Array {
  const header: Record<string, unknown> = {};
  if (Object.keys(metadata).length > 0) header.__metadata__ = metadata;
  const payloads: Uint8Array[] = [];
  let at = 0;
  for (const t of tensors) {
    if (t.name in header) throw new Error(`safetensors: tensor "${t.name}" given twice`);
    const bytes = encode(t);
    header[t.name] = { dtype: t.dtype, shape: [...t.shape], data_offsets: [at, at + bytes.byteLength] };
    payloads.push(bytes);
    at += bytes.byteLength;
  }
  let json = JSON.stringify(header);
  // Pad with spaces so the data section starts 8-byte aligned, as the reference writer does.
  json += ' '.repeat((8 - (Buffer.byteLength(json) % 8)) % 8);
  const head = Buffer.from(json, 'utf8');
  const out = new Uint8Array(8 + head.byteLength + at);
  new DataView(out.buffer).setBigUint64(0, BigInt(head.byteLength), true);
  out.set(head, 8);
  let p = 8 + head.byteLength;
  for (const b of payloads) {
    out.set(b, p);
    p += b.byteLength;
  }
  return out;
}

export function writeSafetensors(path: string, tensors: readonly SafetensorToWrite[], metadata: Record<string, string> = {}): void {
  writeFileSync(path, encodeSafetensors(tensors, metadata));
}
