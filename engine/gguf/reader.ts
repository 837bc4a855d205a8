/**
 * GGUF v3 reader for the TS side: header, metadata and tensor infos only.
 * The C library maps and reads tensor data; the engine only needs the
 * tokenizer, the chat template and the hyper-parameters.
 *
 * Only the head of the file is read (a model can be many GB). Every length
 * and count is checked against the file size before it is trusted, so a
 * corrupt or truncated file gives a readable error instead of a RangeError
 * or a multi-gigabyte allocation.
 */
import { open } from 'node:fs/promises';
import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import {
  GgufValueType,
  ggmlTensorBytes,
  type GgufFile,
  type GgufScalarType,
  type GgufTensorInfo,
  type GgufValue,
} from './types.ts';

const MAGIC = 0x46554747; // "GGUF" little-endian
const MAX_DIMS = 4; // GGML_MAX_DIMS
const DEFAULT_ALIGNMENT = 32;
const FIRST_READ = 1 << 20;

export class GgufFormatError extends Error {
  override readonly name = 'GgufFormatError';
}

/** Thrown by the cursor when the buffer ends before the file does: read more and retry. */
class NeedMore extends Error {}

const TYPE_BY_ID = new Map<number, GgufScalarType | 'array'>(
  Object.entries(GgufValueType).map(([name, id]) => [id, name as GgufScalarType | 'array']),
);

/** Fixed byte width of each scalar type (strings are variable). */
const WIDTH: Record<Exclude<GgufScalarType, 'string'>, number> = {
  u8: 1,
  i8: 1,
  bool: 1,
  u16: 2,
  i16: 2,
  u32: 4,
  i32: 4,
  f32: 4,
  u64: 8,
  i64: 8,
  f64: 8,
};

class Cursor {
  pos = 0;
  private readonly view: DataView;
  private readonly utf8 = new TextDecoder('utf-8', { fatal: true });

  constructor(
    private readonly buf: Uint8Array,
    private readonly fileSize: number,
    private readonly path: string,
  ) {
    this.view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  }

  fail(what: string): never {
    throw new GgufFormatError(`${this.path}: ${what} (at byte ${this.pos})`);
  }

  /** Ensures n more bytes exist in the file, and in the buffer. */
  take(n: number, what: string): number {
    if (this.pos + n > this.fileSize) {
      this.fail(`truncated file: ${what} needs ${n} bytes but only ${this.fileSize - this.pos} remain`);
    }
    if (this.pos + n > this.buf.byteLength) throw new NeedMore();
    const at = this.pos;
    this.pos += n;
    return at;
  }

  u32(what: string): number {
    return this.view.getUint32(this.take(4, what), true);
  }

  /** u64 as a number; anything above 2^53 is corrupt for our purposes. */
  u64(what: string): number {
    const v = this.view.getBigUint64(this.take(8, what), true);
    if (v > BigInt(Number.MAX_SAFE_INTEGER)) this.fail(`${what} = ${v} is implausibly large`);
    return Number(v);
  }

  string(what: string): string {
    const len = this.u64(`${what} length`);
    const at = this.take(len, what);
    try {
      return this.utf8.decode(this.buf.subarray(at, at + len));
    } catch {
      return this.fail(`${what} is not valid UTF-8`);
    }
  }

  scalar(type: GgufScalarType, what: string): number | bigint | boolean | string {
    const v = this.view;
    switch (type) {
      case 'u8':
        return v.getUint8(this.take(1, what));
      case 'i8':
        return v.getInt8(this.take(1, what));
      case 'u16':
        return v.getUint16(this.take(2, what), true);
      case 'i16':
        return v.getInt16(this.take(2, what), true);
      case 'u32':
        return v.getUint32(this.take(4, what), true);
      case 'i32':
        return v.getInt32(this.take(4, what), true);
      case 'f32':
        return v.getFloat32(this.take(4, what), true);
      case 'f64':
        return v.getFloat64(this.take(8, what), true);
      case 'u64':
        return v.getBigUint64(this.take(8, what), true);
      case 'i64':
        return v.getBigInt64(this.take(8, what), true);
      case 'bool': {
        const b = v.getUint8(this.take(1, what));
        if (b > 1) this.fail(`${what}: bool byte ${b} is neither 0 nor 1`);
        return b === 1;
      }
      case 'string':
        return this.string(what);
    }
  }

  valueType(what: string): GgufScalarType | 'array' {
    const id = this.u32(what);
    const t = TYPE_BY_ID.get(id);
    if (t === undefined) this.fail(`${what}: unknown value type id ${id}`);
    return t;
  }

  value(what: string): GgufValue {
    const type = this.valueType(`${what} type`);
    if (type !== 'array') return { type, value: this.scalar(type, what) } as GgufValue;
    const itemType = this.valueType(`${what} array item type`);
    if (itemType === 'array') this.fail(`${what}: nested arrays are not supported`);
    const count = this.u64(`${what} array length`);
    // Each item takes at least its width (a string at least its 8-byte length).
    const minItem = itemType === 'string' ? 8 : WIDTH[itemType];
    if (this.pos + count * minItem > this.fileSize) {
      this.fail(`truncated file: ${what} claims ${count} items of ${itemType}, more than the file holds`);
    }
    const items: (number | bigint | boolean | string)[] = new Array(count);
    for (let i = 0; i < count; i++) items[i] = this.scalar(itemType, `${what}[${i}]`);
    return { type: 'array', itemType, value: items } as GgufValue;
  }
}

function parse(buf: Uint8Array, fileSize: number, path: string): GgufFile {
  // Annotated so TS treats c.fail() (returns never) as ending control flow.
  const c: Cursor = new Cursor(buf, fileSize, path);
  if (fileSize < 24) c.fail(`not a GGUF file: ${fileSize} bytes is shorter than the header`);
  const magic = c.u32('magic');
  if (magic !== MAGIC) c.fail(`not a GGUF file: bad magic 0x${magic.toString(16).padStart(8, '0')}`);
  const version = c.u32('version');
  if (version !== 2 && version !== 3) c.fail(`unsupported GGUF version ${version} (need 3)`);
  const nTensors = c.u64('tensor count');
  const nKv = c.u64('metadata count');
  // Smallest possible kv is 8 (key len) + 4 (type) + 1; tensor info 8 + 4 + 8 + 4 + 8.
  if (c.pos + nKv * 13 + nTensors * 32 > fileSize) {
    c.fail(`truncated or corrupt header: ${nKv} metadata entries and ${nTensors} tensors cannot fit in ${fileSize} bytes`);
  }

  const metadata = new Map<string, GgufValue>();
  for (let i = 0; i < nKv; i++) {
    const key = c.string(`metadata key #${i}`);
    if (metadata.has(key)) c.fail(`duplicate metadata key "${key}"`);
    metadata.set(key, c.value(`metadata "${key}"`));
  }

  let alignment = DEFAULT_ALIGNMENT;
  const al = metadata.get('general.alignment');
  if (al !== undefined) {
    const v = al.value;
    if (al.type !== 'u32' || typeof v !== 'number' || v === 0 || (v & (v - 1)) !== 0) {
      c.fail('general.alignment must be a u32 power of two');
    }
    alignment = v;
  }

  const raw: { name: string; dims: number[]; type: number; offset: number }[] = [];
  const names = new Set<string>();
  for (let i = 0; i < nTensors; i++) {
    const name = c.string(`tensor #${i} name`);
    if (names.has(name)) c.fail(`duplicate tensor name "${name}"`);
    names.add(name);
    const nDims = c.u32(`tensor "${name}" n_dims`);
    if (nDims < 1 || nDims > MAX_DIMS) c.fail(`tensor "${name}" has ${nDims} dims (1..${MAX_DIMS} allowed)`);
    const dims: number[] = [];
    for (let d = 0; d < nDims; d++) {
      const n = c.u64(`tensor "${name}" dim ${d}`);
      if (n === 0) c.fail(`tensor "${name}" has a zero dimension`);
      dims.push(n);
    }
    const type = c.u32(`tensor "${name}" type`);
    const offset = c.u64(`tensor "${name}" offset`);
    if (offset % alignment !== 0) c.fail(`tensor "${name}" offset ${offset} is not aligned to ${alignment}`);
    raw.push({ name, dims, type, offset });
  }

  const dataOffset = Math.ceil(c.pos / alignment) * alignment;
  if (nTensors > 0 && dataOffset > fileSize) c.fail('truncated file: tensor data section is missing');
  const tensors: GgufTensorInfo[] = raw.map((t) => {
    let byteSize: number | null;
    try {
      byteSize = ggmlTensorBytes(t.type, t.dims);
    } catch (e) {
      return c.fail(`tensor "${t.name}": ${(e as Error).message}`);
    }
    const fileOffset = dataOffset + t.offset;
    const end = fileOffset + (byteSize ?? 0);
    if (end > fileSize) {
      c.fail(`truncated file: tensor "${t.name}" spans bytes ${fileOffset}..${end} but the file has ${fileSize}`);
    }
    return { ...t, fileOffset, byteSize };
  });
  // Overlapping tensors mean a corrupt table (the writer never produces them).
  const sorted = tensors.filter((t) => t.byteSize !== null).sort((a, b) => a.offset - b.offset);
  for (let i = 1; i < sorted.length; i++) {
    const prev = sorted[i - 1]!;
    const cur = sorted[i]!;
    if (prev.offset + prev.byteSize! > cur.offset) c.fail(`tensors "${prev.name}" and "${cur.name}" overlap`);
  }
  return { version, metadata, tensors, alignment, dataOffset, fileSize };
}

/** Parses a GGUF image already in memory (tests, embedded blobs). */
export function parseGguf(bytes: Uint8Array, label = '<buffer>'): GgufFile {
  try {
    return parse(bytes, bytes.byteLength, label);
  } catch (e) {
    if (e instanceof NeedMore) throw new GgufFormatError(`${label}: internal error, buffer shorter than file`);
    throw e;
  }
}

/** Reads header, metadata and tensor infos of a GGUF file (tensor data is not read). */
export async function readGguf(path: string): Promise<GgufFile> {
  const fh = await open(path, 'r');
  try {
    const fileSize = (await fh.stat()).size;
    let want = Math.min(FIRST_READ, fileSize);
    for (;;) {
      const buf = new Uint8Array(want);
      const { bytesRead } = await fh.read(buf, 0, want, 0);
      if (bytesRead !== want) throw new GgufFormatError(`${path}: short read (${bytesRead} of ${want} bytes)`);
      try {
        return parse(buf, fileSize, path);
      } catch (e) {
        if (!(e instanceof NeedMore)) throw e;
        // Metadata bigger than the buffer (large vocabularies): double and re-parse.
        want = Math.min(want * 2, fileSize);
      }
    }
  } finally {
    await fh.close();
  }
}

/** Synchronous variant for scripts and startup code that cannot await. */
export function readGgufSync(path: string): GgufFile {
  const fd = openSync(path, 'r');
  try {
    const fileSize = fstatSync(fd).size;
    let want = Math.min(FIRST_READ, fileSize);
    for (;;) {
      const buf = new Uint8Array(want);
      const n = readSync(fd, buf, 0, want, 0);
      if (n !== want) throw new GgufFormatError(`${path}: short read (${n} of ${want} bytes)`);
      try {
        return parse(buf, fileSize, path);
      } catch (e) {
        if (!(e instanceof NeedMore)) throw e;
        want = Math.min(want * 2, fileSize);
      }
    }
  } finally {
    closeSync(fd);
  }
}
