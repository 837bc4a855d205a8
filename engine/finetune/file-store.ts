/**
 * Uploaded files (POST /v1/files) in <data>/files/:
 *
 *   <id>.jsonl   the content, exactly as uploaded
 *   <id>.json    its record (record-file.ts): name, size, purpose, examples
 *
 * The content is written first and the record second, each atomically, so
 * the record's presence is what makes a file exist: a crash between the two
 * leaves an orphan content file, which open() deletes. Delete goes the other
 * way round (record, then content). The index lives in memory; this process
 * is the only writer of the directory.
 *
 * Fine-tune files are chat JSONL, validated on upload with line-numbered
 * errors (engine/training/data validateChatJsonl), and stored under a .jsonl
 * name because the training data loader reads chats by that extension.
 */
import { mkdir, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { z } from 'zod';
import { fsyncDir, removeStaleTemps, writeFileAtomic } from '../training/atomic-file.ts';
import { validateChatJsonl, type ChatJsonlError } from '../training/data/index.ts';
import { isId, newId, pathOf, unixSeconds } from './ids.ts';
import { listStoreDir, quarantine, readRecord, RecordError, writeRecord } from './record-file.ts';

const FORMAT = 'braid.file';

export const FILE_PURPOSES = ['fine-tune'] as const;
export type FilePurpose = (typeof FILE_PURPOSES)[number];

export const StoredFileSchema = z.strictObject({
  id: z.string(),
  object: z.literal('file'),
  bytes: z.int().nonnegative(),
  created_at: z.int().nonnegative(),
  filename: z.string(),
  purpose: z.enum(FILE_PURPOSES),
  status: z.literal('processed'),
  /** braid: chat examples in the file. */
  examples: z.int().nonnegative(),
  /** Creation order (ties within a second), for listing. */
  seq: z.int().nonnegative(),
});

export type StoredFile = z.infer<typeof StoredFileSchema>;

/** The upload is not a valid chat JSONL file; `errors` are line-numbered. */
export class FileValidationError extends Error {
  override readonly name = 'FileValidationError';
  constructor(
    message: string,
    readonly errors: readonly ChatJsonlError[],
  ) {
    super(message);
  }
}

export class FileStore {
  readonly dir: string;
  private readonly files = new Map<string, StoredFile>();
  private seq = 0;

  private constructor(dataDir: string) {
    this.dir = join(dataDir, 'files');
  }

  /** Loads the index. Nothing is created until the first upload. */
  static async open(dataDir: string, warn: (line: string) => void = console.warn): Promise<FileStore> {
    const store = new FileStore(dataDir);
    const names = await listStoreDir(store.dir);
    if (names === null) return store;
    await removeStaleTemps(store.dir);
    for (const name of names) {
      const id = name.replace(/\.json$/, '');
      if (!name.endsWith('.json') || !isId('file', id)) continue;
      const path = join(store.dir, name);
      try {
        const f = await readRecord(path, FORMAT, StoredFileSchema);
        if (f.id !== id) throw new RecordError(`${path}: holds the record of ${f.id}`);
        store.files.set(id, f);
        store.seq = Math.max(store.seq, f.seq + 1);
      } catch (err) {
        if (!(err instanceof RecordError)) throw err;
        warn(`[braid] files: ${err.message}; moved aside as .corrupt with its content`);
        await quarantine(path);
        await quarantine(join(store.dir, `${id}.jsonl`));
      }
    }
    // Content without a record: an upload cut between its two writes, or a delete cut after the first.
    for (const name of names) {
      const id = name.replace(/\.jsonl$/, '');
      if (name.endsWith('.jsonl') && isId('file', id) && !store.files.has(id)) await rm(join(store.dir, name), { force: true });
    }
    return store;
  }

  /** Newest first. */
  list(): StoredFile[] {
    return [...this.files.values()].sort((a, b) => b.seq - a.seq);
  }

  get(id: string): StoredFile | undefined {
    return isId('file', id) ? this.files.get(id) : undefined;
  }

  contentPath(id: string): string {
    return pathOf(this.dir, 'file', id, '.jsonl');
  }

  content(id: string): Promise<Buffer> {
    return readFile(this.contentPath(id));
  }

  /** Validates and stores an upload; throws FileValidationError for content that cannot be trained on. */
  async create(filename: string, bytes: Uint8Array, purpose: FilePurpose): Promise<StoredFile> {
    let text: string;
    try {
      text = new TextDecoder('utf-8', { fatal: true }).decode(bytes);
    } catch {
      throw new FileValidationError('The file is not valid UTF-8 text.', [{ line: 0, message: 'not valid UTF-8' }]);
    }
    const checked = validateChatJsonl(text);
    if (!checked.ok) {
      const lines = checked.errors.map((e) => (e.line > 0 ? `line ${e.line}: ${e.message}` : e.message));
      throw new FileValidationError(`Invalid chat JSONL file '${filename}':\n${lines.join('\n')}`, checked.errors);
    }
    const id = newId('file');
    const file: StoredFile = {
      id,
      object: 'file',
      bytes: bytes.byteLength,
      created_at: unixSeconds(),
      filename,
      purpose,
      status: 'processed',
      examples: checked.examples.length,
      seq: this.seq++,
    };
    await mkdir(this.dir, { recursive: true });
    await writeFileAtomic(this.contentPath(id), bytes);
    await writeRecord(pathOf(this.dir, 'file', id, '.json'), FORMAT, file);
    this.files.set(id, file);
    return file;
  }

  /** false: no such file. */
  async delete(id: string): Promise<boolean> {
    if (this.get(id) === undefined) return false;
    this.files.delete(id);
    await rm(pathOf(this.dir, 'file', id, '.json'), { force: true });
    await fsyncDir(this.dir); // the delete is durable before the answer says so
    await rm(this.contentPath(id), { force: true });
    return true;
  }
}
