/**
 * Training checkpoints: one self-checking file per checkpoint, written
 * atomically, the last two kept.
 *
 * Layout (little-endian):
 *
 *   0      8  magic "BRAIDCKP"
 *   8      4  u32 format version (1)
 *   12     4  u32 H, header JSON bytes
 *   16     8  u64 S, state blob bytes
 *   24     H  header JSON (UTF-8): CheckpointHeader
 *   24+H   S  the C trainer's state (NativeTrainer.saveState: params, AdamW
 *             moments, step; versioned and CRC-checked again by C)
 *   24+H+S 4  u32 CRC-32 (zlib's polynomial) of bytes [0, 24+H+S)
 *
 * The file size must be exactly 28+H+S, so a truncated file is caught before
 * the CRC is even computed. Files are `ckpt-<step, 9 digits>.bin` in the
 * checkpoint directory; temp files (".….tmp") never match that pattern, so a
 * write killed half way can never be taken for the newest checkpoint.
 */
import { readdir, readFile, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import zlib from 'node:zlib';
import { z } from 'zod';
import { writeFileAtomic } from './atomic-file.ts';

const MAGIC = Buffer.from('BRAIDCKP', 'latin1');
export const CHECKPOINT_VERSION = 1;
const FIXED = 24;
const KEEP = 2;
const NAME = /^ckpt-(\d{9})\.bin$/;

const finiteOrNull = z.number().finite().nullable();

/** Everything besides the C state needed to continue a run exactly. */
export const CheckpointHeaderSchema = z.strictObject({
  /** Optimizer steps completed; the next batch is batchAt(step). */
  step: z.int().nonnegative(),
  totalSteps: z.int().positive(),
  /** train-config.ts configHash: a resume under a different hash is refused. */
  configHash: z.string(),
  /**
   * Where the data stream stands. Batches are a pure function of
   * (recipe, seed, step), so the step is the whole position; there is no
   * other random stream in the loop (the trainer itself draws nothing).
   */
  data: z.strictObject({ recipe: z.string(), seed: z.int().nonnegative(), nextStep: z.int().nonnegative() }),
  /** Tokens fed so far (batch · seqLen summed over steps). */
  tokens: z.number().int().nonnegative(),
  /** Training wall time so far, summed over resumes. */
  elapsedMs: z.number().nonnegative(),
  /** Records in the metrics log at this step (a resume checks the log has them). */
  logRecords: z.int().nonnegative(),
  /** The latest values, for a resume's first progress line and `braid train` summaries. */
  metrics: z.strictObject({
    loss: finiteOrNull,
    gradNorm: finiteOrNull,
    lr: finiteOrNull,
    phase: z.string().nullable(),
    evalLoss: finiteOrNull,
    evalBpb: finiteOrNull,
  }),
  /** C thread count of the run: bit-identical resumes need the same one. */
  threads: z.int().nonnegative(),
  createdAt: z.string(),
});

export type CheckpointHeader = z.infer<typeof CheckpointHeaderSchema>;

export interface Checkpoint {
  file: string;
  header: CheckpointHeader;
  state: Uint8Array;
}

export class CheckpointError extends Error {
  override readonly name = 'CheckpointError';
}

// ---- CRC-32 --------------------------------------------------------------------

let table: Uint32Array | undefined;

/** Table CRC-32 for Node versions without zlib.crc32 (added in 20.15). */
function tableCrc32(data: Uint8Array, value = 0): number {
  if (table === undefined) {
    table = new Uint32Array(256);
    for (let n = 0; n < 256; n++) {
      let c = n;
      for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
      table[n] = c >>> 0;
    }
  }
  let crc = ~value >>> 0;
  for (let i = 0; i < data.length; i++) crc = table[(crc ^ data[i]!) & 0xff]! ^ (crc >>> 8);
  return ~crc >>> 0;
}

export const crc32: (data: Uint8Array, value?: number) => number =
  typeof zlib.crc32 === 'function' ? (data, value = 0) => zlib.crc32(data, value) : tableCrc32;

// ---- encode / decode -----------------------------------------------------------

export function checkpointName(step: number): string {
  return `ckpt-${String(step).padStart(9, '0')}.bin`;
}

/** The file's parts in order (header, state, CRC), so a large state is never copied. */
export function encodeCheckpoint(header: CheckpointHeader, state: Uint8Array): Uint8Array[] {
  const json = Buffer.from(JSON.stringify(CheckpointHeaderSchema.parse(header)), 'utf8');
  const fixed = Buffer.alloc(FIXED);
  MAGIC.copy(fixed, 0);
  fixed.writeUInt32LE(CHECKPOINT_VERSION, 8);
  fixed.writeUInt32LE(json.byteLength, 12);
  fixed.writeBigUInt64LE(BigInt(state.byteLength), 16);
  let crc = crc32(fixed);
  crc = crc32(json, crc);
  crc = crc32(state, crc);
  const tail = Buffer.alloc(4);
  tail.writeUInt32LE(crc, 0);
  return [fixed, json, state, tail];
}

/** Parses and verifies a checkpoint image; throws CheckpointError saying what is wrong. */
export function decodeCheckpoint(bytes: Uint8Array, file: string): Checkpoint {
  const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const fail = (what: string): never => {
    throw new CheckpointError(`${file}: ${what}`);
  };
  if (buf.byteLength < FIXED + 4) fail(`truncated: ${buf.byteLength} bytes is shorter than the fixed header`);
  if (!buf.subarray(0, 8).equals(MAGIC)) fail('not a braid checkpoint (bad magic)');
  const version = buf.readUInt32LE(8);
  if (version !== CHECKPOINT_VERSION) fail(`checkpoint format version ${version} is not supported (need ${CHECKPOINT_VERSION})`);
  const h = buf.readUInt32LE(12);
  const s = buf.readBigUInt64LE(16);
  const want = BigInt(FIXED + h + 4) + s;
  if (BigInt(buf.byteLength) !== want) fail(`truncated or padded: ${buf.byteLength} bytes, the header says ${want}`);
  const end = FIXED + h + Number(s);
  const stored = buf.readUInt32LE(end);
  const actual = crc32(buf.subarray(0, end));
  if (stored !== actual) fail(`CRC mismatch (stored ${stored.toString(16)}, computed ${actual.toString(16)}): the file is corrupt`);
  let raw: unknown;
  try {
    raw = JSON.parse(buf.subarray(FIXED, FIXED + h).toString('utf8'));
  } catch (err) {
    return fail(`header is not JSON: ${err instanceof Error ? err.message : String(err)}`);
  }
  const header = CheckpointHeaderSchema.safeParse(raw);
  if (!header.success) return fail(`header: ${header.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`);
  // A plain Uint8Array view: a Buffer's slice() would not copy, which surprises callers.
  return { file, header: header.data, state: new Uint8Array(buf.buffer, buf.byteOffset + FIXED + h, end - FIXED - h) };
}

// ---- the checkpoint directory --------------------------------------------------

export async function listCheckpoints(dir: string): Promise<{ file: string; step: number }[]> {
  let names: string[];
  try {
    names = await readdir(dir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
  return names
    .flatMap((name) => {
      const m = NAME.exec(name);
      return m ? [{ file: join(dir, name), step: Number(m[1]) }] : [];
    })
    .sort((a, b) => b.step - a.step);
}

export async function readCheckpoint(file: string): Promise<Checkpoint> {
  return decodeCheckpoint(await readFile(file), file);
}

/**
 * Writes the checkpoint of `header.step` atomically, then deletes all but the
 * newest KEEP. Returns the file written.
 */
export async function writeCheckpoint(dir: string, header: CheckpointHeader, state: Uint8Array): Promise<string> {
  const file = join(dir, checkpointName(header.step));
  await writeFileAtomic(file, encodeCheckpoint(header, state));
  const all = await listCheckpoints(dir);
  for (const old of all.slice(KEEP)) await rm(old.file, { force: true });
  return file;
}

export interface LatestCheckpoint {
  checkpoint: Checkpoint | null;
  /** Newer files that failed verification, with the reason, newest first. */
  skipped: { file: string; reason: string }[];
}

/**
 * The newest checkpoint that verifies, falling back to older ones. With
 * `quarantine`, each failed file is renamed to "<name>.corrupt" (kept for
 * inspection, out of the listing) so later writes and prunes only ever see
 * valid checkpoints.
 */
export async function loadLatestCheckpoint(dir: string, opts: { quarantine?: boolean } = {}): Promise<LatestCheckpoint> {
  const skipped: { file: string; reason: string }[] = [];
  for (const { file } of await listCheckpoints(dir)) {
    try {
      return { checkpoint: await readCheckpoint(file), skipped };
    } catch (err) {
      if (!(err instanceof CheckpointError)) throw err;
      skipped.push({ file, reason: err.message });
      if (opts.quarantine === true) await rename(file, `${file}.corrupt`);
    }
  }
  return { checkpoint: null, skipped };
}
