/** The metrics log: durable appends, resume truncation, torn last lines, mismatch detection. */
import { appendFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { MetricsLog, parseMetricsLog, type MetricsRecord, type TrainRecord } from '../../engine/training/metrics-log.ts';

const root = mkdtempSync(path.join(tmpdir(), 'braid-mlog-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

function train(step: number): TrainRecord {
  return { type: 'train', step, tokens: step * 64, loss: 5 - step / 10, grad_norm: 1, lr: 1e-3, tok_s: 1000, phase: 'p', elapsed: step };
}
function evalRec(step: number): MetricsRecord {
  return { type: 'eval', step, tokens: step * 64, loss: 4, bpb: 1.5, eval_tokens: 100, eval_bytes: 400, elapsed: step };
}

describe('metrics log', () => {
  it('appends records as JSON lines and reads them back', async () => {
    const file = path.join(root, 'a.jsonl');
    const log = await MetricsLog.create(file);
    log.append(train(1));
    log.append(evalRec(1));
    log.close();
    const text = readFileSync(file, 'utf8');
    expect(text.split('\n')).toHaveLength(3);
    expect(parseMetricsLog(text, file)).toEqual([train(1), evalRec(1)]);
  });

  it('on resume keeps exactly the records up to the checkpoint step, then continues', async () => {
    const file = path.join(root, 'b.jsonl');
    const log = await MetricsLog.create(file);
    for (let s = 1; s <= 6; s++) {
      log.append(train(s));
      if (s % 2 === 0) log.append(evalRec(s));
    }
    log.close();
    // checkpoint at step 4 saw 4 train + 2 eval records
    const resumed = await MetricsLog.resume(file, 4, 6);
    expect(resumed.records.map((r) => `${r.type}${r.step}`)).toEqual(['train1', 'train2', 'eval2', 'train3', 'train4', 'eval4']);
    expect(resumed.hasEval(4)).toBe(true);
    expect(resumed.hasEval(6)).toBe(false);
    resumed.append(train(5));
    resumed.close();
    expect(parseMetricsLog(readFileSync(file, 'utf8'), file).map((r) => r.step)).toEqual([1, 2, 2, 3, 4, 4, 5]);
  });

  it('drops a torn last line (a crash mid-append) on resume', async () => {
    const file = path.join(root, 'c.jsonl');
    writeFileSync(file, `${JSON.stringify(train(1))}\n${JSON.stringify(train(2))}\n`);
    appendFileSync(file, JSON.stringify(train(3)).slice(0, 25));
    const log = await MetricsLog.resume(file, 2, 2);
    log.close();
    expect(readFileSync(file, 'utf8')).toBe(`${JSON.stringify(train(1))}\n${JSON.stringify(train(2))}\n`);
  });

  it('refuses a log that lacks records the checkpoint saw', async () => {
    const file = path.join(root, 'd.jsonl');
    writeFileSync(file, `${JSON.stringify(train(1))}\n`);
    await expect(MetricsLog.resume(file, 3, 3)).rejects.toThrow(/has 1 records up to step 3 but the checkpoint saw 3/);
  });

  it('names the line of a corrupt record', () => {
    expect(() => parseMetricsLog(`${JSON.stringify(train(1))}\n{"type":"train","step":"x"}\n`, 'm.jsonl')).toThrow(/m\.jsonl:2/);
    expect(() => parseMetricsLog('nope\n', 'm.jsonl')).toThrow(/m\.jsonl:1: not a JSON record/);
  });
});
