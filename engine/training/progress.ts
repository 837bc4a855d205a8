/**
 * The live progress display of `braid train`: on a terminal, one line
 * rewritten in place (\r, then erase to end of line); otherwise (a log file,
 * a CI job, a test's pipe) plain lines, at most one per `intervalMs` plus the
 * first and the last step, so a long run's log stays readable.
 *
 * Messages (evaluations, checkpoints) are printed on their own line above the
 * live one.
 */
import type { TrainRecord } from './metrics-log.ts';

export interface ProgressSink {
  write(s: string): void;
  readonly isTTY: boolean;
}

export interface ProgressState {
  record: TrainRecord;
  totalSteps: number;
  /** Seconds per step recently (for the ETA); null until measured. */
  secondsPerStep: number | null;
}

function duration(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return '?';
  const s = Math.round(seconds);
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const r = s % 60;
  return h > 0 ? `${h}h${String(m).padStart(2, '0')}m` : m > 0 ? `${m}m${String(r).padStart(2, '0')}s` : `${r}s`;
}

function count(n: number): string {
  if (n >= 1e9) return `${(n / 1e9).toFixed(2)}G`;
  if (n >= 1e6) return `${(n / 1e6).toFixed(2)}M`;
  if (n >= 1e4) return `${(n / 1e3).toFixed(1)}k`;
  return String(n);
}

/** "step 120/1000 · 245.8k tok · 3012 tok/s · loss 4.1234 · gnorm 0.812 · lr 9.87e-4 · language · ETA 4m12s" */
export function formatProgress(p: ProgressState): string {
  const r = p.record;
  const eta = p.secondsPerStep === null ? '?' : duration((p.totalSteps - r.step) * p.secondsPerStep);
  return [
    `step ${r.step}/${p.totalSteps}`,
    `${count(r.tokens)} tok`,
    `${Math.round(r.tok_s)} tok/s`,
    `loss ${r.loss.toFixed(4)}`,
    `gnorm ${r.grad_norm.toFixed(3)}`,
    `lr ${r.lr.toExponential(2)}`,
    r.phase,
    `ETA ${eta}`,
  ].join(' · ');
}

/** Seconds per step averaged over the last `window` steps. */
class StepClock {
  private readonly times: number[] = [];
  constructor(private readonly window = 20) {}
  tick(now: number): number | null {
    this.times.push(now);
    if (this.times.length > this.window + 1) this.times.shift();
    const n = this.times.length - 1;
    return n < 1 ? null : (this.times[n]! - this.times[0]!) / 1000 / n;
  }
}

export class Progress {
  private live = '';
  private lastPlain = -Infinity;
  private readonly clock = new StepClock();

  constructor(
    private readonly sink: ProgressSink,
    private readonly totalSteps: number,
    private readonly intervalMs = 10_000,
    private readonly now: () => number = () => performance.now(),
  ) {}

  step(record: TrainRecord): void {
    const t = this.now();
    const line = formatProgress({ record, totalSteps: this.totalSteps, secondsPerStep: this.clock.tick(t) });
    if (this.sink.isTTY) {
      this.live = line;
      this.sink.write(`\r${line}\x1b[K`);
      return;
    }
    const last = record.step === this.totalSteps;
    if (last || t - this.lastPlain >= this.intervalMs) {
      this.sink.write(`${line}\n`);
      this.lastPlain = t;
    }
  }

  /** A message on its own line; the live line is redrawn below it. */
  message(text: string): void {
    if (this.sink.isTTY && this.live !== '') this.sink.write(`\r\x1b[K${text}\n${this.live}`);
    else this.sink.write(`${text}\n`);
  }

  /** Ends the live line so later output starts on a fresh one. */
  finish(): void {
    if (this.sink.isTTY && this.live !== '') this.sink.write('\n');
    this.live = '';
  }
}
