/**
 * The run's metrics log: JSON Lines in <runDir>/metrics.jsonl, one record per
 * training step and one per held-out evaluation, appended and fsynced one by
 * one (a record costs far less than a training step, and a record that
 * reached the disk before its checkpoint is what makes resume exact).
 *
 * On resume the log is cut back to the checkpoint's step: records past it
 * come from steps the resumed run will redo, so the log ends up equal to the
 * uninterrupted run's (timing fields aside).
 */
import { closeSync, existsSync, fsyncSync, openSync, readFileSync, writeSync } from 'node:fs';
import { z } from 'zod';
import { writeFileAtomic } from './atomic-file.ts';

const finite = z.number().finite();

export const TrainRecordSchema = z.strictObject({
  type: z.literal('train'),
  /** Optimizer steps completed after this update (1-based). */
  step: z.int().positive(),
  /** Tokens fed so far, this step included. */
  tokens: z.number().int().nonnegative(),
  /** Mean cross-entropy per target token of this step's batch, in nats. */
  loss: finite,
  /** Global gradient norm before clipping. */
  grad_norm: finite,
  /** Learning rate of this update. */
  lr: finite,
  /** Tokens per second of this step (data + forward/backward + update). */
  tok_s: finite,
  /** Curriculum phase of the batch. */
  phase: z.string(),
  /** Training wall time so far, seconds. */
  elapsed: finite,
});

export const EvalRecordSchema = z.strictObject({
  type: z.literal('eval'),
  /** Evaluated after this many optimizer steps. */
  step: z.int().nonnegative(),
  tokens: z.number().int().nonnegative(),
  /** Mean held-out cross-entropy per target token, nats. */
  loss: finite,
  /** Held-out bits per UTF-8 byte: lossSum / (ln 2 · bytes). */
  bpb: finite,
  /** Target tokens and text bytes the figures are over. */
  eval_tokens: z.int().nonnegative(),
  eval_bytes: z.int().nonnegative(),
  elapsed: finite,
});

export const MetricsRecordSchema = z.discriminatedUnion('type', [TrainRecordSchema, EvalRecordSchema]);

export type TrainRecord = z.infer<typeof TrainRecordSchema>;
export type EvalRecord = z.infer<typeof EvalRecordSchema>;
export type MetricsRecord = z.infer<typeof MetricsRecordSchema>;

export class MetricsLogError extends Error {
  override readonly name = 'MetricsLogError';
}

/**
 * Parses a log's text. A last line without its newline is a record torn by a
 * crash and is dropped; any other bad line is an error (a log edited by hand
 * or a disk fault should not be silently trained over).
 */
export function parseMetricsLog(text: string, file: string): MetricsRecord[] {
  // split() leaves '' after a final newline, or the torn record when there is none: drop either.
  const complete = text.split('\n').slice(0, -1);
  const records: MetricsRecord[] = [];
  complete.forEach((line, i) => {
    let raw: unknown;
    try {
      raw = JSON.parse(line);
    } catch {
      throw new MetricsLogError(`${file}:${i + 1}: not a JSON record`);
    }
    const r = MetricsRecordSchema.safeParse(raw);
    if (!r.success) throw new MetricsLogError(`${file}:${i + 1}: ${r.error.issues.map((x) => `${x.path.join('.')}: ${x.message}`).join('; ')}`);
    records.push(r.data);
  });
  return records;
}

export class MetricsLog {
  private fd: number | null;

  private constructor(
    readonly file: string,
    private readonly list: MetricsRecord[],
  ) {
    this.fd = openSync(file, 'a');
  }

  /** Starts a new log, replacing any file at `file`. */
  static async create(file: string): Promise<MetricsLog> {
    await writeFileAtomic(file, '');
    return new MetricsLog(file, []);
  }

  /**
   * Opens the log of a run resumed at `step`: keeps the records of steps
   * <= step, atomically rewrites the file if anything was cut, and checks the
   * kept records are the `expected` count the checkpoint saw.
   */
  static async resume(file: string, step: number, expected: number): Promise<MetricsLog> {
    const text = existsSync(file) ? readFileSync(file, 'utf8') : '';
    const all = parseMetricsLog(text, file);
    const kept = all.filter((r) => r.step <= step);
    if (kept.length !== expected) {
      throw new MetricsLogError(
        `${file} has ${kept.length} records up to step ${step} but the checkpoint saw ${expected}; the log does not belong to this checkpoint`,
      );
    }
    if (kept.length !== all.length || !(text === '' || text.endsWith('\n'))) {
      await writeFileAtomic(file, kept.map((r) => `${JSON.stringify(r)}\n`).join(''));
    }
    return new MetricsLog(file, kept);
  }

  get records(): readonly MetricsRecord[] {
    return this.list;
  }

  /** Appends one record and makes it durable before returning. */
  append(record: MetricsRecord): void {
    if (this.fd === null) throw new MetricsLogError(`${this.file} is closed`);
    const line = Buffer.from(`${JSON.stringify(MetricsRecordSchema.parse(record))}\n`, 'utf8');
    let done = 0;
    while (done < line.byteLength) done += writeSync(this.fd, line, done, line.byteLength - done);
    fsyncSync(this.fd);
    this.list.push(record);
  }

  hasEval(step: number): boolean {
    return this.list.some((r) => r.type === 'eval' && r.step === step);
  }

  close(): void {
    if (this.fd !== null) closeSync(this.fd);
    this.fd = null;
  }
}
