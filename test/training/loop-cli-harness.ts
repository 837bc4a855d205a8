/**
 * Shared by the `braid train` child-process tests: a scratch directory with a
 * small model config and text files, a runner for `node bin/braid.js` that
 * can send one signal when stdout shows a condition, and the metrics log
 * without its timing fields.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { parseMetricsLog, type EvalRecord, type TrainRecord } from '../../engine/training/metrics-log.ts';
import { PACKAGE_ROOT } from '../../server/config.ts';

export const STEPS = 12;

export interface Child {
  code: number | null;
  signal: NodeJS.Signals | null;
  out: string;
  err: string;
}

export type Comparable = Omit<TrainRecord, 'tok_s' | 'elapsed'> | Omit<EvalRecord, 'elapsed'>;

export class TrainCliScratch {
  readonly dir = mkdtempSync(path.join(tmpdir(), 'braid-train-cli-'));

  constructor() {
    const text = 'The jury said that the city had been run well. The mayor thanked the people who had helped. It was a quiet morning in the old town. ';
    writeFileSync(path.join(this.dir, 'small.json'), JSON.stringify({ embeddingLength: 128, feedForwardLength: 256, layerTypes: ['GD', 'GD'], headCount: 2 }));
    writeFileSync(path.join(this.dir, 'train.txt'), text.repeat(40));
    writeFileSync(path.join(this.dir, 'held.txt'), 'The children walked to school and the shops opened one by one. '.repeat(6));
  }

  remove(): void {
    rmSync(this.dir, { recursive: true, force: true });
  }

  /** `braid train` flags of a small run named `name` (runs/<name>, <name>.gguf). */
  args(name: string): string[] {
    return [
      'train',
      '--init', 'tiny',
      '--init-config', 'small.json',
      '--data', 'train.txt',
      '--eval-data', 'held.txt',
      '--steps', String(STEPS),
      '--batch', '2',
      '--seq-len', '32',
      '--lr', '3e-3',
      '--eval-interval', '5',
      '--checkpoint-interval', '2',
      '--out', `${name}.gguf`,
      '--run-dir', `runs/${name}`,
    ];
  }

  /** Runs `braid <argv>` in the scratch dir; `until` sees stdout as it grows and may send one signal. */
  braid(argv: string[], until?: (out: string) => NodeJS.Signals | null): Promise<Child> {
    return new Promise((resolve, reject) => {
      const child = spawn(process.execPath, [path.join(PACKAGE_ROOT, 'bin/braid.js'), ...argv], {
        cwd: this.dir,
        env: { ...process.env, BRAID_THREADS: '2' },
      });
      let out = '';
      let err = '';
      let sent = false; // one signal only: a second Ctrl-C means "exit now, no checkpoint"
      child.stdout.on('data', (d: Buffer) => {
        out += d.toString();
        const signal = sent ? null : (until?.(out) ?? null);
        if (signal !== null) {
          sent = true;
          child.kill(signal);
        }
      });
      child.stderr.on('data', (d: Buffer) => (err += d.toString()));
      child.on('error', reject);
      child.on('exit', (code, signal) => resolve({ code, signal, out, err }));
    });
  }

  /** The run's metrics log without tok_s and elapsed, which differ between runs by nature. */
  comparable(name: string): Comparable[] {
    const file = path.join(this.dir, 'runs', name, 'metrics.jsonl');
    return parseMetricsLog(readFileSync(file, 'utf8'), file).map((r): Comparable => {
      if (r.type === 'eval') {
        const { elapsed: _e, ...rest } = r;
        return rest;
      }
      const { elapsed: _e, tok_s: _t, ...rest } = r;
      return rest;
    });
  }

  file(...parts: string[]): string {
    return path.join(this.dir, ...parts);
  }
}

/** Checkpoint lines printed so far. */
export const checkpointsIn = (out: string): number => out.match(/^checkpoint /gm)?.length ?? 0;
