/**
 * Atomic file replacement for everything a training run writes (checkpoints,
 * the loss plot, the resolved config): write a temp file in the same
 * directory, fsync it, rename it over the target, fsync the directory. A crash
 * at any point leaves either the old file or the new one, never a mix.
 *
 * Temp names start with "." and end with ".tmp", so a directory listing that
 * looks for real files (checkpoints) can never mistake one for the newest.
 */
import { open, readdir, rename, rm } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';

export const TEMP_SUFFIX = '.tmp';

export function isTempName(name: string): boolean {
  return name.startsWith('.') && name.endsWith(TEMP_SUFFIX);
}

/** Makes a completed rename durable (the directory entry itself). */
export async function fsyncDir(dir: string): Promise<void> {
  const fh = await open(dir, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/** Replaces `path` with `parts` (concatenated) atomically. */
export async function writeFileAtomic(path: string, parts: Uint8Array | string | readonly (Uint8Array | string)[]): Promise<void> {
  const list = Array.isArray(parts) ? parts : [parts];
  const dir = dirname(path);
  const tmp = join(dir, `.${basename(path)}.${process.pid}.${Date.now()}${TEMP_SUFFIX}`);
  const fh = await open(tmp, 'w');
  let renamed = false;
  try {
    try {
      for (const part of list as readonly (Uint8Array | string)[]) {
        const buf = typeof part === 'string' ? Buffer.from(part, 'utf8') : part;
        let done = 0;
        while (done < buf.byteLength) {
          const { bytesWritten } = await fh.write(buf, done, buf.byteLength - done);
          done += bytesWritten;
        }
      }
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
  await fsyncDir(dir);
}

/** Removes temp files a killed process left behind in `dir` (they are never valid state). */
export async function removeStaleTemps(dir: string): Promise<string[]> {
  const removed: string[] = [];
  for (const name of await readdir(dir)) {
    if (!isTempName(name)) continue;
    await rm(join(dir, name), { force: true });
    removed.push(name);
  }
  return removed;
}
