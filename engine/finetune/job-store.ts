/**
 * Fine-tuning jobs in <data>/fine_tuning/<job id>/:
 *
 *   job.json          the job record (record-file.ts), replaced atomically on every change
 *   events.jsonl      its events, appended and fsynced one by one
 *   run/              the training run dir of engine/training/train-loop.ts
 *                     (checkpoints/, metrics.jsonl, loss.svg)
 *   checkpoints.json  once the job is finished: its checkpoints' listing, for
 *                     the checkpoint files (the weights, optimizer moments;
 *                     tens of MB each) are deleted then: a finished job never
 *                     resumes, and only the exported model is served
 *
 * Records and events are held in memory and written through, so reads never
 * touch the disk and a write that fails leaves the last good file in place.
 * Status changes go through transition(), which refuses to move a job that is
 * no longer in an expected status: a cancel racing the end of a run cannot be
 * overwritten by "succeeded", nor the other way round.
 */
import { existsSync } from 'node:fs';
import { mkdir, open, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { z } from 'zod';
import { CheckpointHeaderSchema, listCheckpoints } from '../training/checkpoint.ts';
import { removeStaleTemps } from '../training/atomic-file.ts';
import { isId, newId, pathOf, unixSeconds } from './ids.ts';
import { appendLog, listStoreDir, parseLog, quarantine, readRecord, RecordError, rewriteLog, writeRecord } from './record-file.ts';
import {
  JobCheckpointSchema,
  JobEventSchema,
  JobRecordSchema,
  type EventLevel,
  type JobCheckpoint,
  type JobEvent,
  type JobRecord,
  type JobStatus,
} from './job-types.ts';

const FORMAT = 'braid.fine_tuning.job';
const CHECKPOINTS_FORMAT = 'braid.fine_tuning.checkpoints';
const CheckpointListSchema = z.array(JobCheckpointSchema);

export class JobStore {
  readonly dir: string;
  private readonly jobs = new Map<string, JobRecord>();
  private readonly eventLists = new Map<string, JobEvent[]>();
  private seq = 0;

  private constructor(dataDir: string) {
    this.dir = join(dataDir, 'fine_tuning');
  }

  static async open(dataDir: string, warn: (line: string) => void = console.warn): Promise<JobStore> {
    const store = new JobStore(dataDir);
    const names = await listStoreDir(store.dir);
    if (names === null) return store;
    for (const id of names) {
      if (!isId('ftjob', id)) continue;
      const dir = join(store.dir, id);
      await removeStaleTemps(dir);
      const recordPath = join(dir, 'job.json');
      try {
        const job = await readRecord(recordPath, FORMAT, JobRecordSchema);
        if (job.id !== id) throw new RecordError(`${recordPath}: holds the record of ${job.id}`);
        store.jobs.set(id, job);
        store.seq = Math.max(store.seq, job.seq + 1);
      } catch (err) {
        // A directory without its record is a creation cut short: nothing was promised to anyone.
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
          await rm(dir, { recursive: true, force: true });
          continue;
        }
        if (!(err instanceof RecordError)) throw err;
        warn(`[braid] fine-tuning: ${err.message}; moved aside as .corrupt`);
        await quarantine(recordPath);
        continue;
      }
      const eventsPath = join(dir, 'events.jsonl');
      const text = await readFile(eventsPath, 'utf8').catch(() => '');
      const { items, bad } = parseLog(text, JobEventSchema);
      if (bad > 0) warn(`[braid] fine-tuning: ${bad} unreadable event line(s) in ${eventsPath} dropped`);
      // A torn last line would glue itself to the next append: rewrite the good lines first.
      if (bad > 0 || (text !== '' && !text.endsWith('\n'))) await rewriteLog(eventsPath, items);
      store.eventLists.set(id, items);
    }
    return store;
  }

  /** Newest first. */
  list(): JobRecord[] {
    return [...this.jobs.values()].sort((a, b) => b.seq - a.seq);
  }

  get(id: string): JobRecord | undefined {
    return isId('ftjob', id) ? this.jobs.get(id) : undefined;
  }

  jobDir(id: string): string {
    return pathOf(this.dir, 'ftjob', id);
  }

  runDir(id: string): string {
    return join(this.jobDir(id), 'run');
  }

  private eventsPath(id: string): string {
    return join(this.jobDir(id), 'events.jsonl');
  }

  private checkpointListPath(id: string): string {
    return join(this.jobDir(id), 'checkpoints.json');
  }

  private checkpointDir(id: string): string {
    return join(this.runDir(id), 'checkpoints');
  }

  nextSeq(): number {
    return this.seq++;
  }

  async create(job: JobRecord): Promise<JobRecord> {
    await mkdir(this.jobDir(job.id), { recursive: true });
    await writeRecord(join(this.jobDir(job.id), 'job.json'), FORMAT, job);
    this.jobs.set(job.id, job);
    this.eventLists.set(job.id, []);
    return job;
  }

  /** Applies a patch in memory at once (readers see it) and persists it. */
  async update(id: string, patch: Partial<JobRecord>): Promise<JobRecord> {
    const job = this.jobs.get(id);
    if (job === undefined) throw new Error(`unknown job ${id}`);
    const next = JobRecordSchema.parse({ ...job, ...patch });
    this.jobs.set(id, next);
    await writeRecord(join(this.jobDir(id), 'job.json'), FORMAT, next);
    return next;
  }

  /**
   * Progress fields (step, trained tokens) changed in memory only: they are
   * written with the next update, so a training step costs one event append
   * rather than a record rewrite too. After a crash the record shows the
   * step of its last write, and the events the rest.
   */
  note(id: string, patch: Pick<Partial<JobRecord>, 'step' | 'trained_tokens'>): void {
    const job = this.jobs.get(id);
    if (job !== undefined) this.jobs.set(id, { ...job, ...patch });
  }

  /** Moves a job to `to` only if it is in one of `from`; false (and nothing written) otherwise. */
  async transition(id: string, from: readonly JobStatus[], to: JobStatus, patch: Partial<JobRecord> = {}): Promise<boolean> {
    const job = this.jobs.get(id);
    if (job === undefined || !from.includes(job.status)) return false;
    await this.update(id, { ...patch, status: to });
    return true;
  }

  /** Oldest first. */
  events(id: string): readonly JobEvent[] {
    return this.eventLists.get(id) ?? [];
  }

  async addEvent(id: string, level: EventLevel, message: string, data: JobEvent['data'] = null): Promise<JobEvent> {
    const event: JobEvent = {
      id: newId('ftevent'),
      created_at: unixSeconds(),
      level,
      message,
      type: data === null ? 'message' : 'metrics',
      data,
    };
    const list = this.eventLists.get(id);
    if (list === undefined) throw new Error(`unknown job ${id}`);
    list.push(event);
    await appendLog(this.eventsPath(id), event);
    return event;
  }

  /** Drops the metrics events of steps > `step` (a resumed run redoes those steps and reports them again). */
  async pruneMetricsAfter(id: string, step: number): Promise<void> {
    const list = this.eventLists.get(id);
    if (list === undefined) return;
    const kept = list.filter((e) => e.type !== 'metrics' || !(typeof e.data?.step === 'number' && e.data.step > step));
    if (kept.length === list.length) return;
    this.eventLists.set(id, kept);
    await rewriteLog(this.eventsPath(id), kept);
  }

  /**
   * The run's checkpoints, newest first: the listing kept when the files were
   * deleted, else the files' headers (the weights are not read). A file that
   * vanishes while it is listed (a job finishing) is left out.
   */
  async checkpoints(id: string): Promise<JobCheckpoint[]> {
    const kept = await this.keptCheckpoints(id);
    if (kept !== null) return kept;
    const out: JobCheckpoint[] = [];
    for (const { file } of await listCheckpoints(this.checkpointDir(id))) {
      const header = await readCheckpointHeader(file);
      if (header === null) continue;
      out.push({
        step: header.step,
        createdAt: unixSeconds(Date.parse(header.createdAt)),
        trainLoss: header.metrics.loss,
        validLoss: header.metrics.evalLoss,
        tokens: header.tokens,
      });
    }
    return out;
  }

  /** checkpoints.json, or null if there is none (or it cannot be read: the headers are listed then). */
  private async keptCheckpoints(id: string): Promise<JobCheckpoint[] | null> {
    try {
      return await readRecord(this.checkpointListPath(id), CHECKPOINTS_FORMAT, CheckpointListSchema);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT' || err instanceof RecordError) return null;
      throw err;
    }
  }

  /**
   * For a finished job: keeps the checkpoints' listing in checkpoints.json,
   * then deletes the checkpoint files (.corrupt ones too). Safe to repeat,
   * and after a crash half way (the listing is written first).
   */
  async releaseCheckpoints(id: string): Promise<void> {
    const dir = this.checkpointDir(id);
    if ((await this.keptCheckpoints(id)) === null) {
      if (!existsSync(dir)) return;
      await writeRecord(this.checkpointListPath(id), CHECKPOINTS_FORMAT, await this.checkpoints(id));
    }
    await rm(dir, { recursive: true, force: true });
  }
}

/**
 * The JSON header of a checkpoint file (engine/training/checkpoint.ts layout:
 * magic, version, header length, state length, header), or null if it cannot
 * be read. Only for listing: resuming verifies the whole file and its CRC.
 */
async function readCheckpointHeader(file: string): Promise<ReturnType<typeof CheckpointHeaderSchema.parse> | null> {
  const fh = await open(file, 'r').catch(() => null);
  if (fh === null) return null;
  try {
    const fixed = Buffer.alloc(24);
    if ((await fh.read(fixed, 0, 24, 0)).bytesRead !== 24 || fixed.toString('latin1', 0, 8) !== 'BRAIDCKP') return null;
    const h = fixed.readUInt32LE(12);
    if (h > 1 << 20) return null;
    const json = Buffer.alloc(h);
    if ((await fh.read(json, 0, h, 24)).bytesRead !== h) return null;
    const parsed = CheckpointHeaderSchema.safeParse(JSON.parse(json.toString('utf8')));
    return parsed.success ? parsed.data : null;
  } catch {
    return null;
  } finally {
    await fh.close();
  }
}
