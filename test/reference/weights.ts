/**
 * Model weights for the reference, read straight from a GGUF file: metadata
 * and tensor positions through engine/gguf/reader.ts, tensor bytes from the
 * file, F32 tensors widened to float64, BT2 tensors through the reference's
 * own decoder (bt2.ts).
 */
import { readFileSync } from 'node:fs';
import { readGgufSync } from '../../engine/gguf/reader.ts';
import { GgmlType, type GgufFile, type GgufMetadata } from '../../engine/gguf/types.ts';
import { decodeTernary, type TernaryMatrix } from './bt2.ts';

export class GgufWeights {
  readonly metadata: GgufMetadata;
  private readonly file: GgufFile;
  private readonly bytes: Uint8Array;

  constructor(readonly path: string) {
    this.file = readGgufSync(path);
    this.metadata = this.file.metadata;
    this.bytes = readFileSync(path);
  }

  private tensor(name: string, type: number): { dims: number[]; data: Uint8Array } {
    const t = this.file.tensors.find((x) => x.name === name);
    if (t === undefined) throw new Error(`${this.path}: tensor ${name} is missing`);
    if (t.type !== type) throw new Error(`${this.path}: tensor ${name} has type ${t.type}, the reference reads ${type}`);
    if (t.byteSize === null) throw new Error(`${this.path}: tensor ${name} has no size`);
    return { dims: t.dims, data: this.bytes.subarray(t.fileOffset, t.fileOffset + t.byteSize) };
  }

  /** An F32 tensor as float64, with its shape checked ([rows, cols] order as in docs/format.md). */
  f32(name: string, shape: number[]): Float64Array {
    const { dims, data } = this.tensor(name, GgmlType.F32);
    checkShape(name, dims, shape);
    const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
    return Float64Array.from({ length: data.byteLength / 4 }, (_, i) => view.getFloat32(4 * i, true));
  }

  /** A BT2 tensor [rows, cols]. */
  ternary(name: string, rows: number, cols: number): TernaryMatrix {
    const { dims, data } = this.tensor(name, GgmlType.BT2);
    checkShape(name, dims, [rows, cols]);
    return decodeTernary(data, rows, cols);
  }
}

function checkShape(name: string, dims: readonly number[], shape: readonly number[]): void {
  const want = [...shape].reverse(); // GGUF dims are ne0 (columns) first
  if (dims.length !== want.length || dims.some((d, i) => d !== want[i])) {
    throw new Error(`tensor ${name}: GGUF dims [${dims.join(', ')}], expected [${want.join(', ')}]`);
  }
}
