/**
 * The server's side of the training worker (train-worker.ts): a JobExecutor
 * that runs each job in a worker thread, answers its gate requests with the
 * server's InferenceGate, applies its reports in order, and settles only
 * after every report has been applied, so a job's events are all written
 * before its status changes.
 */
import { Worker } from 'node:worker_threads';
import type { JobReporter } from './job-train.ts';
import type { JobExecutor } from './job-runner.ts';
import { deserializeError, type FromWorker, type Report, type ToWorker, type WorkerInput } from './train-worker.ts';

const ENTRY = new URL('./train-worker.mjs', import.meta.url);

function apply(r: JobReporter, m: Report): Promise<void> {
  switch (m.kind) {
    case 'plan':
      return r.plan(m.plan);
    case 'step':
      return r.step(m.record, m.total);
    case 'eval':
      return r.eval(m.step, m.loss, m.total);
    case 'message':
      return r.message(m.level, m.text);
  }
}

export const workerExecutor: JobExecutor = (ctx) =>
  new Promise((resolve, reject) => {
    const input: WorkerInput = { job: ctx.job, runDir: ctx.runDir, trainingPath: ctx.trainingPath, validationPath: ctx.validationPath, outPath: ctx.outPath };
    const worker = new Worker(ENTRY, { workerData: input });
    const send = (m: ToWorker): void => worker.postMessage(m);
    const onAbort = (): void => send({ type: 'abort' });
    ctx.signal.addEventListener('abort', onAbort, { once: true });
    if (ctx.signal.aborted) onAbort();
    let reports: Promise<void> = Promise.resolve();
    let settled = false;
    const settle = (fn: () => void): void => {
      if (settled) return;
      settled = true;
      ctx.signal.removeEventListener('abort', onAbort);
      fn();
    };
    worker.on('message', (m: FromWorker) => {
      switch (m.type) {
        case 'gate':
          void ctx.gate.wait(ctx.signal).then(() => send({ type: 'gate-open', id: m.id }));
          break;
        case 'report':
          reports = reports.then(() => apply(ctx.report, m.report));
          break;
        case 'done':
          reports.then(() => settle(() => resolve(m.outcome)), (err: unknown) => settle(() => reject(err)));
          break;
        case 'failed':
          reports.then(() => settle(() => reject(deserializeError(m.error))), (err: unknown) => settle(() => reject(err)));
          break;
      }
    });
    worker.on('error', (err) => settle(() => reject(err)));
    worker.on('exit', (code) => {
      // After done/failed the exit is expected; before, the worker died without a word.
      if (settled) return;
      const died = (): void => settle(() => reject(new Error(`the training worker exited (code ${code}) before finishing the job`)));
      reports.then(died, died);
    });
  });
