/**
 * Checkpoint files: round trip, fallback past a truncated or bit-flipped
 * newest file, temp files never taken as the newest, only two kept.
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import {
  checkpointName,
  crc32,
  decodeCheckpoint,
  encodeCheckpoint,
  loadLatestCheckpoint,
  readCheckpoint,
  writeCheckpoint,
  type CheckpointHeader,
} from '../../engine/training/checkpoint.ts';

const root = mkdtempSync(path.join(tmpdir(), 'braid-ckpt-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));
let n = 0;
const freshDir = (): string => mkdtempSync(path.join(root, `d${n++}-`));

function header(step: number): CheckpointHeader {
  return {
    step,
    totalSteps: 100,
    configHash: 'abc123',
    data: { recipe: 'default', seed: 7, nextStep: step },
    tokens: step * 512,
    elapsedMs: step * 10.5,
    logRecords: step,
    metrics: { loss: 3.25, gradNorm: 0.5, lr: 1e-3, phase: 'language', evalLoss: null, evalBpb: null },
    threads: 2,
    createdAt: '2025-01-01T00:00:00.000Z',
  };
}

const state = (step: number): Uint8Array => Uint8Array.from({ length: 1000 + step }, (_, i) => (i * 31 + step) & 0xff);

describe('checkpoint files', () => {
  it('CRC-32 matches the standard check value', () => {
    expect(crc32(Buffer.from('123456789'))).toBe(0xcbf43926);
  });

  it('round-trips header and state', async () => {
    const dir = freshDir();
    const file = await writeCheckpoint(dir, header(5), state(5));
    expect(path.basename(file)).toBe(checkpointName(5));
    const ck = await readCheckpoint(file);
    expect(ck.header).toEqual(header(5));
    expect(Buffer.from(ck.state).equals(Buffer.from(state(5)))).toBe(true);
  });

  it('rejects every single-bit flip and every truncation of a small image', () => {
    const image = Buffer.concat(encodeCheckpoint(header(1), state(0).subarray(0, 40)));
    for (let byte = 0; byte < image.length; byte += 3) {
      const bad = Buffer.from(image);
      bad[byte]! ^= 1 << byte % 8;
      expect(() => decodeCheckpoint(bad, 'x')).toThrow();
    }
    for (let len = 0; len < image.length; len += 7) expect(() => decodeCheckpoint(image.subarray(0, len), 'x')).toThrow();
  });

  it('keeps the last two checkpoints', async () => {
    const dir = freshDir();
    for (const step of [10, 20, 30, 40]) await writeCheckpoint(dir, header(step), state(step));
    expect(readdirSync(dir).sort()).toEqual([checkpointName(30), checkpointName(40)]);
  });

  it('falls back to the previous checkpoint when the newest is truncated', async () => {
    const dir = freshDir();
    await writeCheckpoint(dir, header(10), state(10));
    const newest = await writeCheckpoint(dir, header(20), state(20));
    truncateSync(newest, 500);
    const latest = await loadLatestCheckpoint(dir);
    expect(latest.checkpoint?.header.step).toBe(10);
    expect(latest.skipped).toHaveLength(1);
    expect(latest.skipped[0]!.reason).toMatch(/truncated/);
  });

  it('falls back when the newest has a flipped bit, and quarantines it', async () => {
    const dir = freshDir();
    await writeCheckpoint(dir, header(10), state(10));
    const newest = await writeCheckpoint(dir, header(20), state(20));
    const bytes = readFileSync(newest);
    bytes[bytes.length - 300]! ^= 0x10; // inside the state blob
    writeFileSync(newest, bytes);
    const latest = await loadLatestCheckpoint(dir, { quarantine: true });
    expect(latest.checkpoint?.header.step).toBe(10);
    expect(latest.skipped[0]!.reason).toMatch(/CRC mismatch/);
    expect(readdirSync(dir).sort()).toEqual([checkpointName(10), `${checkpointName(20)}.corrupt`]);
    // the next write prunes against valid files only
    await writeCheckpoint(dir, header(15), state(15));
    expect((await loadLatestCheckpoint(dir)).checkpoint?.header.step).toBe(15);
  });

  it('never takes a leftover temp file for the newest checkpoint', async () => {
    const dir = freshDir();
    await writeCheckpoint(dir, header(10), state(10));
    // what a write killed before its rename leaves behind, complete or not
    const image = Buffer.concat(encodeCheckpoint(header(99), state(99)));
    writeFileSync(path.join(dir, `.${checkpointName(99)}.1234.5678.tmp`), image);
    writeFileSync(path.join(dir, `.${checkpointName(98)}.1234.5679.tmp`), image.subarray(0, 100));
    const latest = await loadLatestCheckpoint(dir);
    expect(latest.checkpoint?.header.step).toBe(10);
    expect(latest.skipped).toEqual([]);
  });

  it('returns null in an empty or missing directory', async () => {
    expect((await loadLatestCheckpoint(freshDir())).checkpoint).toBeNull();
    expect((await loadLatestCheckpoint(path.join(root, 'missing'))).checkpoint).toBeNull();
  });

  it('refuses a header that does not match the schema', () => {
    const bad = { ...header(1), step: -1 };
    expect(() => encodeCheckpoint(bad, state(1))).toThrow();
  });
});
