/**
 * The training worker: one worker thread per running job executes
 * job-train.ts trainJob, so nothing a job does can stall the server's event
 * loop. Its heavy native calls are async already, but opening the trainer
 * (FP32 copies of every weight), a checkpoint's state copy, the export, and
 * tokenizing and packing the training file are synchronous, and take from
 * milliseconds on the test model to seconds on a large model or file.
 *
 * The worker shares the process: the same libbraid, the same C thread pool
 * (sized by the server), the same files. What it cannot share is the engine,
 * so the gate and the job's reports cross over as messages:
 *
 *   worker → main   gate {id}            may I make the next native call?
 *                   report {report}      plan / step / eval / message, in order
 *                   done {outcome} | failed {error}
 *   main → worker   gate-open {id}       yes (the InferenceGate let it through)
 *                   abort                stop after the current step (cancel, shutdown)
 *
 * This file is the worker's side; worker-executor.ts is the server's.
 * train-worker.mjs registers the TypeScript loader and calls runTrainWorker().
 */
import { parentPort, workerData } from 'node:worker_threads';
import { NativeError } from '../errors.ts';
import { DataFileError, type ChatJsonlError } from '../training/data/index.ts';
import type { TrainRecord } from '../training/metrics-log.ts';
import type { Gate } from './gate.ts';
import { trainJob, type JobReporter, type TrainContext, type TrainOutcome } from './job-train.ts';
import type { JobPlan } from './job-types.ts';

/** What the worker is started with (workerData): the context minus what lives in the server. */
export type WorkerInput = Omit<TrainContext, 'gate' | 'signal' | 'report'>;

export type Report =
  | { kind: 'plan'; plan: JobPlan }
  | { kind: 'step'; record: TrainRecord; total: number }
  | { kind: 'eval'; step: number; loss: number; total: number }
  | { kind: 'message'; level: 'info' | 'warn'; text: string };

export type ToWorker = { type: 'abort' } | { type: 'gate-open'; id: number };

export type FromWorker =
  | { type: 'gate'; id: number }
  | { type: 'report'; report: Report }
  | { type: 'done'; outcome: TrainOutcome }
  | { type: 'failed'; error: SerializedError };

/** An error as it crosses threads: enough to rebuild the types the job's error codes depend on. */
export interface SerializedError {
  name: string;
  message: string;
  status?: number;
  path?: string;
  errors?: ChatJsonlError[];
}

export function serializeError(err: unknown): SerializedError {
  if (err instanceof DataFileError) return { name: err.name, message: err.message, path: err.path, errors: [...err.errors] };
  if (err instanceof NativeError) return { name: err.name, message: err.message, status: err.status };
  if (err instanceof Error) return { name: err.name, message: err.message };
  return { name: 'Error', message: String(err) };
}

export function deserializeError(e: SerializedError): Error {
  if (e.name === 'DataFileError' && e.path !== undefined && e.errors !== undefined) return new DataFileError(e.path, e.errors);
  if (e.name === 'NativeError' && e.status !== undefined) return new NativeError(e.message, e.status);
  const err = new Error(e.message);
  err.name = e.name;
  return err;
}

/** The worker's main: runs the job and reports its end; the thread exits when this returns. */
export async function runTrainWorker(): Promise<void> {
  const port = parentPort;
  if (port === null) throw new Error('runTrainWorker runs in a worker thread');
  const input = workerData as WorkerInput;
  const controller = new AbortController();
  const waiting = new Map<number, () => void>();
  let nextId = 0;
  const send = (m: FromWorker): void => port.postMessage(m);
  port.on('message', (m: ToWorker) => {
    if (m.type === 'abort') {
      controller.abort();
      // An aborted job makes at most its current step's calls; nobody needs to wait for them.
      for (const open of waiting.values()) open();
      waiting.clear();
    } else {
      waiting.get(m.id)?.();
      waiting.delete(m.id);
    }
  });
  const gate: Gate = {
    wait: (signal) =>
      signal?.aborted === true
        ? Promise.resolve()
        : new Promise<void>((resolve) => {
            const id = nextId++;
            waiting.set(id, resolve);
            send({ type: 'gate', id });
          }),
  };
  const post = (report: Report): Promise<void> => {
    send({ type: 'report', report });
    return Promise.resolve();
  };
  const report: JobReporter = {
    plan: (plan) => post({ kind: 'plan', plan }),
    step: (record, total) => post({ kind: 'step', record, total }),
    eval: (step, loss, total) => post({ kind: 'eval', step, loss, total }),
    message: (level, text) => post({ kind: 'message', level, text }),
  };
  try {
    send({ type: 'done', outcome: await trainJob({ ...input, gate, signal: controller.signal, report }) });
  } catch (err) {
    send({ type: 'failed', error: serializeError(err) });
  } finally {
    port.close();
  }
}
