/**
 * safetensors reader/writer (engine/convert/safetensors.ts) and sharded
 * checkpoints (checkpoint-tensors.ts): round trips in every float dtype, and
 * every malformed-file check with an error that says what is wrong.
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { INDEX_FILE, readCheckpointTensors, shardName, writeCheckpointTensors } from '../../engine/convert/checkpoint-tensors.ts';
import { bf16ToFloat, floatToBf16, halfToFloat } from '../../engine/convert/half.ts';
import { floatToHalf } from '../../engine/model-init/init-chimera.ts';
import {
  encodeSafetensors,
  readSafetensorsHeader,
  readTensorBytes,
  readTensorF32,
  writeSafetensors,
  type SafetensorToWrite,
} from '../../engine/convert/safetensors.ts';

const dir = mkdtempSync(path.join(tmpdir(), 'braid-st-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function values(n: number, seed: number): Float32Array {
  const v = new Float32Array(n);
  let x = seed;
  for (let i = 0; i < n; i++) {
    x = (Math.imul(x, 1103515245) + 12345) >>> 0;
    v[i] = ((x >>> 8) / 2 ** 24 - 0.5) * 8;
  }
  return v;
}

/** A file image with a hand-written header, for the malformed cases. */
function rawFile(header: unknown, dataBytes: number, headerText?: string): Uint8Array {
  const json = Buffer.from(headerText ?? JSON.stringify(header));
  const out = new Uint8Array(8 + json.byteLength + dataBytes);
  new DataView(out.buffer).setBigUint64(0, BigInt(json.byteLength), true);
  out.set(json, 8);
  return out;
}

function errorOf(bytes: Uint8Array): string {
  const file = path.join(dir, `bad-${Math.random().toString(36).slice(2)}.safetensors`);
  writeFileSync(file, bytes);
  try {
    readSafetensorsHeader(file);
  } catch (e) {
    return (e as Error).message;
  }
  return '(no error)';
}

describe('safetensors round trip', () => {
  it('F32 values come back bit for bit; shapes, dtypes, metadata and an 8-byte aligned data start', () => {
    const a = values(6 * 5, 1);
    const b = values(7, 2);
    const file = path.join(dir, 'f32.safetensors');
    writeSafetensors(file, [
      { name: 'a.weight', shape: [6, 5], dtype: 'F32', data: a },
      { name: 'b', shape: [7], dtype: 'F32', data: b },
    ], { format: 'pt' });
    const { tensors, metadata } = readSafetensorsHeader(file);
    expect(metadata).toEqual({ format: 'pt' });
    expect([...tensors.keys()]).toEqual(['a.weight', 'b']);
    expect(tensors.get('a.weight')!.shape).toEqual([6, 5]);
    expect(readTensorF32(tensors.get('a.weight')!)).toEqual(a);
    expect(readTensorF32(tensors.get('b')!)).toEqual(b);
    const headerLen = Number(Buffer.from(readFileSync(file)).readBigUInt64LE(0));
    expect((8 + headerLen) % 8).toBe(0);
  });

  it('F16 and BF16 store the rounded values and read them back exactly', () => {
    const v = values(64, 3);
    v[0] = 0;
    v[1] = -0;
    v[2] = 65504;
    v[3] = 1e-7; // a half subnormal
    const file = path.join(dir, 'half.safetensors');
    writeSafetensors(file, [
      { name: 'h', shape: [8, 8], dtype: 'F16', data: v },
      { name: 'bf', shape: [64], dtype: 'BF16', data: v },
    ]);
    const { tensors } = readSafetensorsHeader(file);
    expect(tensors.get('h')!.bytes).toBe(128);
    expect(readTensorF32(tensors.get('h')!)).toEqual(v.map((x) => halfToFloat(floatToHalf(x))));
    expect(readTensorF32(tensors.get('bf')!)).toEqual(v.map((x) => bf16ToFloat(floatToBf16(x))));
    // The rounding is to nearest: the error is within half a unit in the last place.
    const h = readTensorF32(tensors.get('h')!);
    for (let i = 4; i < 64; i++) expect(Math.abs(h[i]! - v[i]!)).toBeLessThanOrEqual(Math.abs(v[i]!) * 2 ** -11);
    const bf = readTensorF32(tensors.get('bf')!);
    for (let i = 0; i < 64; i++) expect(Math.abs(bf[i]! - v[i]!)).toBeLessThanOrEqual(Math.abs(v[i]!) * 2 ** -8);
  });

  it('raw bytes of integer dtypes round trip, and reading them as floats is refused by name', () => {
    const raw = new Uint8Array(new Int32Array([1, -2, 3]).buffer);
    const file = path.join(dir, 'int.safetensors');
    writeSafetensors(file, [{ name: 'ids', shape: [3], dtype: 'I32', data: raw }]);
    const t = readSafetensorsHeader(file).tensors.get('ids')!;
    expect(new Uint8Array(readTensorBytes(t))).toEqual(raw);
    expect(() => readTensorF32(t)).toThrow(/tensor "ids" has dtype I32, expected a float dtype/);
  });

  it('the writer refuses a tensor whose data does not match its shape, and duplicate names', () => {
    expect(() => encodeSafetensors([{ name: 'x', shape: [2, 2], dtype: 'F32', data: new Float32Array(3) }])).toThrow(/"x": 3 values for shape \[2, 2\]/);
    const t: SafetensorToWrite = { name: 'x', shape: [1], dtype: 'F32', data: new Float32Array(1) };
    expect(() => encodeSafetensors([t, t])).toThrow(/"x" given twice/);
  });
});

describe('malformed safetensors files', () => {
  const ok = { a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] } };
  it('each check names the problem (and the tensor)', () => {
    expect(errorOf(new Uint8Array(4))).toMatch(/too short for a safetensors file/);
    const huge = rawFile(ok, 8);
    new DataView(huge.buffer).setBigUint64(0, 1n << 40n, true);
    expect(errorOf(huge)).toMatch(/header length \d+ is over the/);
    const past = rawFile(ok, 8);
    new DataView(past.buffer).setBigUint64(0, BigInt(past.byteLength), true);
    expect(errorOf(past)).toMatch(/runs past the end of the/);
    expect(errorOf(rawFile(null, 0, '{"a": [1, '))).toMatch(/header is not valid JSON/);
    expect(errorOf(rawFile([1, 2], 0))).toMatch(/header is not a JSON object/);
    expect(errorOf(rawFile({ a: { dtype: 'F8', shape: [2], data_offsets: [0, 2] } }, 2))).toMatch(/tensor "a": dtype "F8" is not one of/);
    expect(errorOf(rawFile({ a: { dtype: 'F32', shape: [2, -1], data_offsets: [0, 8] } }, 8))).toMatch(/tensor "a": shape \[2,-1\] is not a list/);
    expect(errorOf(rawFile({ a: { dtype: 'F32', shape: [2], data_offsets: [8, 0] } }, 8))).toMatch(/tensor "a": data_offsets \[8,0\] is not \[begin, end\]/);
    expect(errorOf(rawFile({ a: { dtype: 'F32', shape: [3], data_offsets: [0, 8] } }, 8))).toMatch(/tensor "a": 8 bytes for F32 \[3\], expected 12/);
    expect(errorOf(rawFile({ a: { dtype: 'F32', shape: [4], data_offsets: [0, 16] } }, 8))).toMatch(/tensor "a": bytes 0\.\.16 run past the 8-byte data section/);
    expect(
      errorOf(rawFile({ a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] }, b: { dtype: 'F32', shape: [2], data_offsets: [4, 12] } }, 12)),
    ).toMatch(/tensor "b" overlaps tensor "a"/);
    expect(errorOf(rawFile({ a: { dtype: 'F32', shape: [2], data_offsets: [4, 12] } }, 12))).toMatch(/4 bytes before tensor "a" belong to no tensor/);
    expect(errorOf(rawFile(ok, 12))).toMatch(/4 bytes after the last tensor belong to no tensor/);
    expect(errorOf(rawFile({ __metadata__: { n: 1 }, ...ok }, 8))).toMatch(/"__metadata__.n" must be a string/);
    // And the well-formed one of the same shape passes.
    expect(errorOf(rawFile(ok, 8))).toBe('(no error)');
  });
});

describe('sharded checkpoints', () => {
  const tensors: SafetensorToWrite[] = Array.from({ length: 5 }, (_, i) => ({
    name: `layers.${i}.w`,
    shape: [3, 4],
    dtype: 'F32' as const,
    data: values(12, 10 + i),
  }));

  it('shards + index read back as one tensor map, equal to the single-file checkpoint', () => {
    const one = path.join(dir, 'one');
    const three = path.join(dir, 'three');
    for (const [d, n] of [[one, 1], [three, 3]] as const) {
      mkdirSync(d);
      writeCheckpointTensors(d, tensors, n);
    }
    const a = readCheckpointTensors(one);
    const b = readCheckpointTensors(three);
    expect([...b.keys()].sort()).toEqual([...a.keys()].sort());
    const files = new Set([...b.values()].map((t) => path.basename(t.file)));
    expect(files).toEqual(new Set([shardName(1, 3), shardName(2, 3), shardName(3, 3)]));
    for (const [name, t] of a) expect(readTensorF32(b.get(name)!)).toEqual(readTensorF32(t));
  });

  it('index problems name the tensor and the shard', () => {
    const d = path.join(dir, 'broken');
    mkdirSync(d);
    writeCheckpointTensors(d, tensors, 2);
    const index = JSON.parse(readFileSync(path.join(d, INDEX_FILE), 'utf8')) as { weight_map: Record<string, string> };
    const save = (m: Record<string, string>) => writeFileSync(path.join(d, INDEX_FILE), JSON.stringify({ weight_map: m }));
    save({ ...index.weight_map, 'layers.0.w': shardName(2, 2) });
    expect(() => readCheckpointTensors(d)).toThrow(/tensor "layers.0.w" is mapped to model-00002-of-00002.safetensors, which does not hold it/);
    const { ['layers.4.w']: _dropped, ...rest } = index.weight_map;
    save(rest);
    expect(() => readCheckpointTensors(d)).toThrow(/tensor "layers.4.w" is not listed in model.safetensors.index.json/);
    save(index.weight_map);
    unlinkSync(path.join(d, shardName(2, 2)));
    expect(() => readCheckpointTensors(d)).toThrow(/shard model-00002-of-00002.safetensors .* is missing/);
    rmSync(path.join(d, INDEX_FILE));
    expect(() => readCheckpointTensors(d)).toThrow(/no model.safetensors and no model.safetensors.index.json/);
  });
});

