/**
 * GGUF v3 writer.
 *
 * Layout (little-endian): magic "GGUF", version 3, u64 tensor count, u64
 * metadata count, the metadata key/values, the tensor-info table (name,
 * n_dims, dims with ne0 first, type, offset relative to the data section),
 * zero padding to `general.alignment` (32, not written because it is the
 * default), then each tensor's bytes, each padded to 32.
 *
 * Tensor data is streamed: a tensor supplies an (async) iterable of chunks,
 * so a model of hundreds of MB never has to sit in memory. The file is
 * written to a temporary name beside the target, fsynced and renamed into
 * place, so readers never see a half-written model.
 */
import { open, rename, rm } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { GgufValueType, ggmlTensorBytes, ggmlTypeName, type GgufMetadata, type GgufValue } from './types.ts';

const ALIGNMENT = 32;
const FLUSH_BYTES = 4 << 20;

export type TensorChunks = Iterable<Uint8Array> | AsyncIterable<Uint8Array>;

export interface GgufTensorSpec {
  name: string;
  /** ggml type id (GgmlType.F32, GgmlType.F16, GgmlType.BT2). */
  type: number;
  /** GGUF order: dims[0] = ne0 = columns. */
  dims: readonly number[];
  /**
   * The tensor bytes, exactly ggmlTensorBytes(type, dims) of them. A function
   * is called once, when the writer reaches this tensor, so producers can be lazy.
   */
  data: Uint8Array | (() => TensorChunks);
}

export interface GgufWriteInput {
  metadata: GgufMetadata | Iterable<readonly [string, GgufValue]>;
  tensors: readonly GgufTensorSpec[];
}

/** Grows a byte buffer for the header (metadata + tensor infos). */
class ByteSink {
  private buf = new Uint8Array(1 << 16);
  private view = new DataView(this.buf.buffer);
  len = 0;
  private readonly utf8 = new TextEncoder();

  private room(n: number): number {
    if (this.len + n > this.buf.byteLength) {
      const next = new Uint8Array(Math.max(this.buf.byteLength * 2, this.len + n));
      next.set(this.buf.subarray(0, this.len));
      this.buf = next;
      this.view = new DataView(next.buffer);
    }
    const at = this.len;
    this.len += n;
    return at;
  }

  u8(v: number): void {
    this.put(1, (d, o) => d.setUint8(o, v));
  }
  u32(v: number): void {
    this.put(4, (d, o) => d.setUint32(o, v, true));
  }
  u64(v: number | bigint): void {
    this.put(8, (d, o) => d.setBigUint64(o, BigInt(v), true));
  }
  string(s: string): void {
    const bytes = this.utf8.encode(s);
    this.u64(bytes.byteLength);
    const at = this.room(bytes.byteLength);
    this.buf.set(bytes, at);
  }
  padTo(alignment: number): void {
    const pad = (alignment - (this.len % alignment)) % alignment;
    const at = this.room(pad);
    this.buf.fill(0, at, this.len);
  }
  bytes(): Uint8Array {
    return this.buf.subarray(0, this.len);
  }

  /** Reserves n bytes, then writes through the (possibly reallocated) view. */
  private put(n: number, write: (view: DataView, at: number) => void): void {
    const at = this.room(n);
    write(this.view, at);
  }

  scalar(type: string, v: number | bigint | boolean | string, key: string): void {
    const int = (lo: number, hi: number): number => {
      if (typeof v !== 'number' || !Number.isInteger(v) || v < lo || v > hi) {
        throw new Error(`GGUF metadata "${key}": ${String(v)} is not a valid ${type}`);
      }
      return v;
    };
    const num = (): number => {
      if (typeof v !== 'number') throw new Error(`GGUF metadata "${key}": ${String(v)} is not a ${type}`);
      return v;
    };
    const big = (): bigint => {
      if (typeof v !== 'bigint') throw new Error(`GGUF metadata "${key}": ${String(v)} is not a bigint (${type})`);
      return v;
    };
    switch (type) {
      case 'u8':
        return this.put(1, (d, o) => d.setUint8(o, int(0, 0xff)));
      case 'i8':
        return this.put(1, (d, o) => d.setInt8(o, int(-0x80, 0x7f)));
      case 'u16':
        return this.put(2, (d, o) => d.setUint16(o, int(0, 0xffff), true));
      case 'i16':
        return this.put(2, (d, o) => d.setInt16(o, int(-0x8000, 0x7fff), true));
      case 'u32':
        return this.put(4, (d, o) => d.setUint32(o, int(0, 0xffffffff), true));
      case 'i32':
        return this.put(4, (d, o) => d.setInt32(o, int(-0x80000000, 0x7fffffff), true));
      case 'f32':
        return this.put(4, (d, o) => d.setFloat32(o, num(), true));
      case 'f64':
        return this.put(8, (d, o) => d.setFloat64(o, num(), true));
      case 'u64':
        return this.put(8, (d, o) => d.setBigUint64(o, BigInt.asUintN(64, big()), true));
      case 'i64':
        return this.put(8, (d, o) => d.setBigInt64(o, BigInt.asIntN(64, big()), true));
      case 'bool':
        if (typeof v !== 'boolean') throw new Error(`GGUF metadata "${key}": ${String(v)} is not a bool`);
        return this.u8(v ? 1 : 0);
      case 'string':
        if (typeof v !== 'string') throw new Error(`GGUF metadata "${key}": ${String(v)} is not a string`);
        return this.string(v);
      default:
        throw new Error(`GGUF metadata "${key}": unknown type ${type}`);
    }
  }

  value(key: string, v: GgufValue): void {
    this.u32(GgufValueType[v.type]);
    if (v.type !== 'array') return this.scalar(v.type, v.value, key);
    this.u32(GgufValueType[v.itemType]);
    this.u64(v.value.length);
    for (const item of v.value) this.scalar(v.itemType, item, key);
  }
}

/** Serialises the header; returns it and each tensor's size and data offset. */
function encodeHeader(input: GgufWriteInput): { header: Uint8Array; sizes: number[]; offsets: number[] } {
  const entries = [...input.metadata];
  const seen = new Set<string>();
  for (const [key] of entries) {
    if (seen.has(key)) throw new Error(`GGUF metadata key "${key}" given twice`);
    seen.add(key);
  }
  const al = entries.find(([k]) => k === 'general.alignment');
  if (al && !(al[1].type === 'u32' && al[1].value === ALIGNMENT)) {
    throw new Error(`this writer always aligns to ${ALIGNMENT}; general.alignment must be u32 ${ALIGNMENT} or absent`);
  }

  const sink = new ByteSink();
  sink.u32(0x46554747);
  sink.u32(3);
  sink.u64(input.tensors.length);
  sink.u64(entries.length);
  for (const [key, value] of entries) {
    sink.string(key);
    sink.value(key, value);
  }

  const sizes: number[] = [];
  const offsets: number[] = [];
  const names = new Set<string>();
  let offset = 0;
  for (const t of input.tensors) {
    if (names.has(t.name)) throw new Error(`tensor "${t.name}" given twice`);
    names.add(t.name);
    if (t.dims.length < 1 || t.dims.length > 4 || t.dims.some((d) => !Number.isInteger(d) || d < 1)) {
      throw new Error(`tensor "${t.name}": dims [${t.dims.join(', ')}] must be 1..4 positive integers`);
    }
    const size = ggmlTensorBytes(t.type, t.dims);
    if (size === null) throw new Error(`tensor "${t.name}": cannot write type ${ggmlTypeName(t.type)}`);
    sink.string(t.name);
    sink.u32(t.dims.length);
    for (const d of t.dims) sink.u64(d);
    sink.u32(t.type);
    sink.u64(offset);
    sizes.push(size);
    offsets.push(offset);
    offset += Math.ceil(size / ALIGNMENT) * ALIGNMENT;
  }
  sink.padTo(ALIGNMENT);
  return { header: sink.bytes(), sizes, offsets };
}

async function* chunksOf(data: GgufTensorSpec['data']): AsyncGenerator<Uint8Array> {
  if (data instanceof Uint8Array) {
    yield data;
    return;
  }
  yield* data();
}

/**
 * Writes a GGUF v3 file atomically (temp file, fsync, rename). Each tensor's
 * data must produce exactly its declared number of bytes, or nothing is written.
 */
export async function writeGguf(path: string, input: GgufWriteInput): Promise<void> {
  const { header, sizes } = encodeHeader(input);
  const tmp = join(dirname(path), `.${basename(path)}.${process.pid}.${Date.now()}.tmp`);
  const fh = await open(tmp, 'w');
  let renamed = false;
  try {
    try {
      // Coalesce small chunks into large writes; big chunks go straight through.
      let pending: Uint8Array[] = [];
      let pendingBytes = 0;
      const flush = async () => {
        if (pendingBytes === 0) return;
        const buf = pending.length === 1 ? pending[0]! : Buffer.concat(pending, pendingBytes);
        let done = 0;
        while (done < buf.byteLength) {
          const { bytesWritten } = await fh.write(buf, done, buf.byteLength - done);
          done += bytesWritten;
        }
        pending = [];
        pendingBytes = 0;
      };
      const emit = async (b: Uint8Array) => {
        if (b.byteLength === 0) return;
        // Small chunks are copied (producers may reuse their buffer after yielding);
        // large ones are written before emit returns, so no copy is needed.
        pending.push(b.byteLength >= FLUSH_BYTES ? b : new Uint8Array(b));
        pendingBytes += b.byteLength;
        if (pendingBytes >= FLUSH_BYTES || b.byteLength >= FLUSH_BYTES) await flush();
      };

      await emit(header);
      for (let i = 0; i < input.tensors.length; i++) {
        const t = input.tensors[i]!;
        const size = sizes[i]!;
        let got = 0;
        for await (const chunk of chunksOf(t.data)) {
          got += chunk.byteLength;
          if (got > size) throw new Error(`tensor "${t.name}": data is longer than its ${size} bytes`);
          await emit(chunk);
        }
        if (got !== size) throw new Error(`tensor "${t.name}": got ${got} bytes of data, expected ${size}`);
        const pad = (ALIGNMENT - (size % ALIGNMENT)) % ALIGNMENT;
        if (pad) await emit(new Uint8Array(pad));
      }
      await flush();
      await fh.sync();
    } finally {
      await fh.close();
    }
    await rename(tmp, path);
    renamed = true;
  } finally {
    // Any failure, the rename's included (the target is a directory, say), removes the temp file.
    if (!renamed) await rm(tmp, { force: true });
  }
  // Make the rename itself durable.
  const dir = await open(dirname(path), 'r');
  try {
    await dir.sync();
  } finally {
    await dir.close();
  }
}
