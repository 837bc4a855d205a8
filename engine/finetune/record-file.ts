/**
 * The two on-disk forms of the fine-tuning state (docs/api.md, "Data dir"):
 *
 *  - a record: one JSON object per file, `{"format", "version", "sha256", "data"}`,
 *    replaced atomically (engine/training/atomic-file.ts: temp, fsync, rename,
 *    fsync dir). The sha256 covers the exact text of `data`, so a file damaged
 *    on disk is refused instead of being half believed;
 *  - a log: JSON Lines, appended and fsynced one line at a time. A last line
 *    without its newline is a write cut by a crash and is dropped.
 *
 * Writes to one path are serialized here (a promise chain per path), because
 * two overlapping writeFileAtomic calls in the same millisecond would share a
 * temp name.
 */
import { createHash } from 'node:crypto';
import { open, readdir, readFile, rename } from 'node:fs/promises';
import type { z } from 'zod';
import { writeFileAtomic } from '../training/atomic-file.ts';

export const RECORD_VERSION = 1;

/** The names in a store's folder, or null if the folder does not exist yet (nothing stored). */
export async function listStoreDir(dir: string): Promise<string[] | null> {
  try {
    return await readdir(dir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw err;
  }
}

export class RecordError extends Error {
  override readonly name = 'RecordError';
}

const chains = new Map<string, Promise<void>>();

/** Runs `fn` after every earlier serialized write to `path` has settled. */
function serialized(path: string, fn: () => Promise<void>): Promise<void> {
  const prev = chains.get(path) ?? Promise.resolve();
  const next = prev.then(fn, fn);
  const tail = next.catch(() => undefined);
  chains.set(path, tail);
  void tail.then(() => {
    if (chains.get(path) === tail) chains.delete(path);
  });
  return next;
}

const sha256 = (text: string): string => createHash('sha256').update(text).digest('hex');

export function writeRecord(path: string, format: string, data: unknown): Promise<void> {
  const json = JSON.stringify(data);
  const text = `{"format":${JSON.stringify(format)},"version":${RECORD_VERSION},"sha256":"${sha256(json)}","data":${json}}\n`;
  return serialized(path, () => writeFileAtomic(path, text));
}

/** Reads and verifies a record; throws RecordError saying what is wrong. */
export async function readRecord<S extends z.ZodType>(path: string, format: string, schema: S): Promise<z.output<S>> {
  const text = await readFile(path, 'utf8');
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    throw new RecordError(`${path}: not JSON (a torn or foreign file)`);
  }
  if (typeof raw !== 'object' || raw === null) throw new RecordError(`${path}: not a record`);
  const r = raw as Record<string, unknown>;
  if (r.format !== format) throw new RecordError(`${path}: format ${JSON.stringify(r.format)}, expected "${format}"`);
  if (r.version !== RECORD_VERSION) throw new RecordError(`${path}: record version ${String(r.version)} is not supported (need ${RECORD_VERSION})`);
  // JSON.stringify(JSON.parse(x)) reproduces x for text JSON.stringify wrote (key order, number forms).
  if (r.sha256 !== sha256(JSON.stringify(r.data))) throw new RecordError(`${path}: checksum mismatch, the file is corrupt`);
  const parsed = schema.safeParse(r.data);
  if (!parsed.success) throw new RecordError(`${path}: ${parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`);
  return parsed.data;
}

/** Moves a file that failed verification aside ("<name>.corrupt"), kept for inspection. */
export async function quarantine(path: string): Promise<void> {
  await rename(path, `${path}.corrupt`).catch(() => undefined);
}

/** Parses a log's complete lines; bad lines are returned as errors, not thrown (one bad event must not hide a job). */
export function parseLog<S extends z.ZodType>(text: string, schema: S): { items: z.output<S>[]; bad: number } {
  const items: z.output<S>[] = [];
  let bad = 0;
  // The last element is '' after a final newline, or a torn line: dropped either way.
  for (const line of text.split('\n').slice(0, -1)) {
    try {
      const r = schema.safeParse(JSON.parse(line));
      if (r.success) items.push(r.data);
      else bad++;
    } catch {
      bad++;
    }
  }
  return { items, bad };
}

export async function readLog<S extends z.ZodType>(path: string, schema: S): Promise<{ items: z.output<S>[]; bad: number }> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { items: [], bad: 0 };
    throw err;
  }
  return parseLog(text, schema);
}

/** Appends one line and makes it durable before resolving. */
export function appendLog(path: string, item: unknown): Promise<void> {
  const line = `${JSON.stringify(item)}\n`;
  return serialized(path, async () => {
    const fh = await open(path, 'a');
    try {
      await fh.appendFile(line, 'utf8');
      await fh.sync();
    } finally {
      await fh.close();
    }
  });
}

/** Replaces the whole log atomically (pruning lines a resumed run will redo). */
export function rewriteLog(path: string, items: readonly unknown[]): Promise<void> {
  return serialized(path, () => writeFileAtomic(path, items.map((i) => `${JSON.stringify(i)}\n`).join('')));
}
