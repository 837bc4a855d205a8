import { gguf } from '@huggingface/gguf';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { GgufFormatError, parseGguf, readGguf, readGgufSync } from '../../engine/gguf/reader.ts';
import { GgmlType, gv, metaNumber, metaString, metaStringArray, type GgufValue } from '../../engine/gguf/types.ts';
import { writeGguf, type GgufTensorSpec } from '../../engine/gguf/writer.ts';

const dir = mkdtempSync(join(tmpdir(), 'braid-gguf-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const metadata: [string, GgufValue][] = [
  ['general.architecture', gv.str('chimera')],
  ['general.name', gv.str('tëst ✓ 模型 🚀')],
  ['t.u8', gv.u8(255)],
  ['t.i8', gv.i8(-128)],
  ['t.u16', gv.u16(65535)],
  ['t.i16', gv.i16(-32768)],
  ['t.u32', gv.u32(4294967295)],
  ['t.i32', gv.i32(-2147483648)],
  ['t.f32', gv.f32(1.5)],
  ['t.f64', gv.f64(Math.PI)],
  ['t.bool.true', gv.bool(true)],
  ['t.bool.false', gv.bool(false)],
  ['t.u64', gv.u64(2n ** 64n - 1n)],
  ['t.i64', gv.i64(-(2n ** 63n))],
  ['t.empty', gv.str('')],
  ['a.u8', gv.numArray('u8', [0, 1, 255])],
  ['a.i8', gv.numArray('i8', [-128, 0, 127])],
  ['a.u16', gv.numArray('u16', [0, 65535])],
  ['a.i16', gv.numArray('i16', [-32768, 32767])],
  ['a.u32', gv.numArray('u32', [0, 4294967295])],
  ['a.i32', gv.numArray('i32', [-1, 3, 2147483647])],
  ['a.f32', gv.numArray('f32', [0.25, -2, 1e-6])],
  ['a.f64', gv.numArray('f64', [Math.E, -0.1])],
  ['a.bool', gv.boolArray([true, false, true])],
  ['a.u64', gv.bigArray('u64', [0n, 2n ** 64n - 1n])],
  ['a.i64', gv.bigArray('i64', [-(2n ** 63n), 2n ** 63n - 1n])],
  ['a.str', gv.strArray(['a', '', 'Ġthe', '<|im_end|>', '👩‍💻', 'e\u0301'])],
  ['a.empty', gv.strArray([])],
];

function bytes(n: number, seed: number): Uint8Array {
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i++) out[i] = (i * 31 + seed * 7) & 0xff;
  return out;
}

// F32 [3, 5] (odd size → padding), F16 [2, 8], BT2 [2, 256] streamed in odd-sized chunks.
const f32Data = bytes(5 * 3 * 4, 1);
const f16Data = bytes(8 * 2 * 2, 2);
const bt2Size = 2 * (256 / 4) + 2 * 2 * 4;
const bt2Data = bytes(bt2Size, 3);
const tensors: GgufTensorSpec[] = [
  { name: 'a.weight', type: GgmlType.F32, dims: [5, 3], data: f32Data },
  { name: 'b.weight', type: GgmlType.F16, dims: [8, 2], data: f16Data },
  {
    name: 'c.weight',
    type: GgmlType.BT2,
    dims: [256, 2],
    data: function* () {
      for (let i = 0; i < bt2Data.length; i += 7) yield bt2Data.subarray(i, i + 7);
    },
  },
  { name: 'norm', type: GgmlType.F32, dims: [3], data: bytes(12, 4) },
];

describe('GGUF writer → reader', () => {
  const path = join(dir, 'all.gguf');

  it('round-trips every metadata value type', async () => {
    await writeGguf(path, { metadata, tensors });
    const file = await readGguf(path);
    expect(file.version).toBe(3);
    expect(file.alignment).toBe(32);
    expect([...file.metadata.keys()]).toEqual(metadata.map(([k]) => k));
    for (const [key, value] of metadata) {
      const got = file.metadata.get(key)!;
      if (value.type === 'f32') expect(got).toEqual({ type: 'f32', value: Math.fround(value.value) });
      else if (value.type === 'array' && value.itemType === 'f32') {
        expect(got).toEqual({ ...value, value: value.value.map(Math.fround) });
      } else expect(got).toEqual(value);
    }
    expect(metaString(file.metadata, 'general.name')).toBe('tëst ✓ 模型 🚀');
    expect(metaNumber(file.metadata, 't.u32')).toBe(4294967295);
    expect(() => metaNumber(file.metadata, 't.u64')).toThrow(/does not fit/);
    expect(() => metaStringArray(file.metadata, 't.u8')).toThrow(/t\.u8.*expected array\[string\]/);
    expect(() => metaString(file.metadata, 'no.such.key')).toThrow(/"no\.such\.key" is missing/);
  });

  it('lays tensors out aligned, in order, with their bytes intact', async () => {
    const file = readGgufSync(path);
    const raw = readFileSync(path);
    expect(file.dataOffset % 32).toBe(0);
    expect(file.tensors.map((t) => [t.name, t.type, t.dims])).toEqual(tensors.map((t) => [t.name, t.type, t.dims]));
    const expected = [f32Data, f16Data, bt2Data, bytes(12, 4)];
    file.tensors.forEach((t, i) => {
      expect(t.offset % 32).toBe(0);
      expect(t.fileOffset).toBe(file.dataOffset + t.offset);
      expect(t.byteSize).toBe(expected[i]!.length);
      expect(new Uint8Array(raw.subarray(t.fileOffset, t.fileOffset + t.byteSize!))).toEqual(expected[i]);
    });
  });

  it('writes files that the independent @huggingface/gguf parser reads identically', async () => {
    const ours = await readGguf(path);
    const hf = await gguf(path, { allowLocalFile: true });
    const meta = hf.metadata as unknown as Record<string, unknown>;
    expect(meta['general.name']).toBe('tëst ✓ 模型 🚀');
    expect(meta['t.i32']).toBe(-2147483648);
    expect(meta['t.u64']).toBe(2n ** 64n - 1n);
    expect(meta['t.i64']).toBe(-(2n ** 63n));
    expect(meta['t.bool.true']).toBe(true);
    expect(meta['a.str']).toEqual(['a', '', 'Ġthe', '<|im_end|>', '👩‍💻', 'e\u0301']);
    expect(meta['a.i8']).toEqual([-128, 0, 127]);
    expect(hf.metadata.kv_count).toBe(BigInt(metadata.length));
    expect(Number(hf.tensorDataOffset)).toBe(ours.dataOffset);
    expect(
      hf.tensorInfos.map((t) => ({ name: t.name, dims: t.shape.map(Number), type: t.dtype as number, offset: Number(t.offset) })),
    ).toEqual(ours.tensors.map((t) => ({ name: t.name, dims: t.dims, type: t.type, offset: t.offset })));
  });

  it('rejects data of the wrong length and leaves neither the target nor a temp file', async () => {
    const bad = join(dir, 'bad.gguf');
    const short: GgufTensorSpec = { name: 'x', type: GgmlType.F32, dims: [4], data: new Uint8Array(12) };
    await expect(writeGguf(bad, { metadata: [], tensors: [short] })).rejects.toThrow(/got 12 bytes of data, expected 16/);
    const long: GgufTensorSpec = { name: 'x', type: GgmlType.F32, dims: [4], data: new Uint8Array(20) };
    await expect(writeGguf(bad, { metadata: [], tensors: [long] })).rejects.toThrow(/longer than its 16 bytes/);
    expect(readdirSync(dir).filter((f) => f.includes('bad'))).toEqual([]);
  });

  it('keeps the previous file when a write fails part-way', async () => {
    const target = join(dir, 'keep.gguf');
    await writeGguf(target, { metadata: [['k', gv.u32(1)]], tensors: [] });
    const before = readFileSync(target);
    const failing: GgufTensorSpec = {
      name: 'x',
      type: GgmlType.F32,
      dims: [1 << 20],
      data: function* () {
        yield new Uint8Array(1 << 20);
        throw new Error('producer died');
      },
    };
    await expect(writeGguf(target, { metadata: [['k', gv.u32(2)]], tensors: [failing] })).rejects.toThrow(/producer died/);
    expect(readFileSync(target)).toEqual(before);
  });

  it('reads metadata larger than its first read (1 MB) from disk', async () => {
    const big = join(dir, 'big-meta.gguf');
    const words = Array.from({ length: 150_000 }, (_, i) => `token-${i}-${'x'.repeat(i % 17)}`);
    await writeGguf(big, { metadata: [['tokenizer.ggml.tokens', gv.strArray(words)]], tensors: [tensors[0]!] });
    const file = await readGguf(big);
    expect(metaStringArray(file.metadata, 'tokenizer.ggml.tokens')).toEqual(words);
    expect(file.tensors[0]!.byteSize).toBe(60);
    expect(readGgufSync(big).dataOffset).toBe(file.dataOffset);
  });

  it('refuses bad input up front', async () => {
    const p = join(dir, 'never.gguf');
    await expect(writeGguf(p, { metadata: [['k', gv.u8(256)]], tensors: [] })).rejects.toThrow(/256 is not a valid u8/);
    await expect(writeGguf(p, { metadata: [['k', gv.u8(1)], ['k', gv.u8(2)]], tensors: [] })).rejects.toThrow(/given twice/);
    const bt2 = { name: 'w', type: GgmlType.BT2, dims: [100, 2], data: new Uint8Array(0) };
    await expect(writeGguf(p, { metadata: [], tensors: [bt2] })).rejects.toThrow(/multiple of 128/);
  });
});

describe('GGUF reader on corrupt files', () => {
  const good = join(dir, 'good.gguf');
  let image: Uint8Array;

  it('gives a format error for every truncation', async () => {
    await writeGguf(good, { metadata, tensors });
    image = new Uint8Array(readFileSync(good));
    const file = parseGguf(image);
    const last = file.tensors.at(-1)!;
    const end = last.fileOffset + last.byteSize!;
    for (let n = 0; n < end; n++) {
      let err: unknown;
      try {
        parseGguf(image.subarray(0, n), 'cut');
      } catch (e) {
        err = e;
      }
      expect(err, `prefix of ${n} bytes`).toBeInstanceOf(GgufFormatError);
      expect((err as Error).message).toMatch(/truncated|not a GGUF/);
    }
  });

  it('reads truncated files from disk with a clear message', async () => {
    const cut = join(dir, 'cut.gguf');
    writeFileSync(cut, image.subarray(0, 200));
    await expect(readGguf(cut)).rejects.toThrow(/cut\.gguf: truncated/);
  });

  it('names the problem: magic, version, absurd lengths, unknown types', () => {
    const patched = (at: number, write: (v: DataView) => void) => {
      const copy = image.slice();
      write(new DataView(copy.buffer, at));
      return copy;
    };
    expect(() => parseGguf(patched(0, (v) => v.setUint32(0, 0x12345678, true)))).toThrow(/bad magic/);
    expect(() => parseGguf(patched(4, (v) => v.setUint32(0, 1, true)))).toThrow(/unsupported GGUF version 1/);
    expect(() => parseGguf(patched(16, (v) => v.setBigUint64(0, 10n ** 12n, true)))).toThrow(/cannot fit/);
    // First key's length (offset 24) → huge: must not allocate, must say what is wrong.
    expect(() => parseGguf(patched(24, (v) => v.setBigUint64(0, 10n ** 9n, true)))).toThrow(/truncated.*metadata key #0/);
    const key0 = 8 + 'general.architecture'.length;
    expect(() => parseGguf(patched(24 + key0, (v) => v.setUint32(0, 77, true)))).toThrow(/unknown value type id 77/);
  });

  it('never fails with anything but a format error on random corruption', () => {
    let state = 12345;
    const rand = () => (state = (Math.imul(state, 1103515245) + 12345) >>> 0);
    for (let trial = 0; trial < 300; trial++) {
      const copy = image.slice();
      for (let k = 0; k < 4; k++) copy[rand() % 600] = rand() & 0xff;
      try {
        parseGguf(copy);
      } catch (e) {
        expect(e).toBeInstanceOf(GgufFormatError);
      }
    }
  });
});
