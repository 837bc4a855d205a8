/** The progress display: the line's fields, in-place updates on a TTY, throttled plain lines otherwise. */
import { describe, expect, it } from 'vitest';
import type { TrainRecord } from '../../engine/training/metrics-log.ts';
import { formatProgress, Progress } from '../../engine/training/progress.ts';

const rec = (step: number): TrainRecord => ({
  type: 'train',
  step,
  tokens: step * 1024,
  loss: 4.123456,
  grad_norm: 0.8123,
  lr: 9.87e-4,
  tok_s: 3012.4,
  phase: 'language',
  elapsed: step,
});

describe('progress', () => {
  it('formats step, tokens, speed, loss, grad norm, lr, phase and ETA', () => {
    expect(formatProgress({ record: rec(120), totalSteps: 1000, secondsPerStep: 0.3 })).toBe(
      'step 120/1000 · 122.9k tok · 3012 tok/s · loss 4.1235 · gnorm 0.812 · lr 9.87e-4 · language · ETA 4m24s',
    );
    expect(formatProgress({ record: rec(1), totalSteps: 10, secondsPerStep: null })).toMatch(/ETA \?$/);
    expect(formatProgress({ record: rec(1), totalSteps: 40001, secondsPerStep: 1 })).toMatch(/ETA 11h06m40s$|ETA 11h06m$/);
  });

  it('rewrites one line on a TTY and keeps messages above it', () => {
    let out = '';
    let t = 0;
    const p = new Progress({ write: (s) => void (out += s), isTTY: true }, 10, 10_000, () => (t += 100));
    p.step(rec(1));
    p.step(rec(2));
    p.message('checkpoint x');
    p.finish();
    const line2 = formatProgress({ record: rec(2), totalSteps: 10, secondsPerStep: 0.1 });
    expect(out).toBe(
      `\r${formatProgress({ record: rec(1), totalSteps: 10, secondsPerStep: null })}\x1b[K` +
        `\r${line2}\x1b[K` +
        `\r\x1b[Kcheckpoint x\n${line2}` +
        '\n',
    );
  });

  it('prints plain lines at most once per interval, plus the last step, when not a TTY', () => {
    const lines: string[] = [];
    let t = 0;
    const p = new Progress({ write: (s) => void lines.push(s), isTTY: false }, 10, 1000, () => (t += 400));
    for (let s = 1; s <= 10; s++) p.step(rec(s));
    p.message('done');
    expect(lines.every((l) => l.endsWith('\n') && !l.includes('\r'))).toBe(true);
    expect(lines.map((l) => /^step (\d+)/.exec(l)?.[1] ?? l.trim())).toEqual(['1', '4', '7', '10', 'done']);
  });
});
