/**
 * A fine-tuning job (job-train.ts, in process, native trainer) on chats whose
 * system prompts are far longer than the training window: the file passes
 * upload validation, so the job must train. It used to fail at its first
 * batch, whose windows held prompt text only ("the batch has no target
 * tokens"); windows now move to end at each reply (window-plan.ts).
 */
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { trainJob } from '../../engine/finetune/job-train.ts';
import { jobRecord } from '../helpers/finetune-records.ts';
import { validateChatJsonl } from '../../engine/training/data/index.ts';
import { BASE_ID, writeTinyBase } from '../e2e/finetune-helpers.ts';

const dir = mkdtempSync(path.join(tmpdir(), 'braid-ft-long-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('fine-tuning on chats with long prompts', () => {
  it('trains every step and exports the model', async () => {
    const base = await writeTinyBase(dir);
    const system = Array.from({ length: 300 }, (_, i) => `word${i % 17} is fine`).join(' ');
    const text = [0, 1, 2]
      .map((i) => JSON.stringify({ messages: [{ role: 'system', content: system }, { role: 'user', content: `Question ${i}?` }, { role: 'assistant', content: `Answer ${i}.` }] }))
      .join('\n');
    expect(validateChatJsonl(text).ok).toBe(true); // what the upload accepts
    const trainingPath = path.join(dir, 'long.jsonl');
    writeFileSync(trainingPath, `${text}\n`);
    const job = jobRecord({ id: 'ftjob-000000000000000000000001', model: BASE_ID, base_path: base, hyperparameters: { n_epochs: 3, batch_size: 4, learning_rate_multiplier: 1 }, sequence_length: 128 });
    const steps: number[] = [];
    const warnings: string[] = [];
    const outPath = path.join(dir, 'out.gguf');
    const outcome = await trainJob({
      job,
      runDir: path.join(dir, 'run'),
      trainingPath,
      validationPath: null,
      outPath,
      gate: { wait: async () => undefined },
      signal: new AbortController().signal,
      report: {
        plan: async () => undefined,
        step: async (r) => void steps.push(r.step),
        eval: async () => undefined,
        message: async (level, t) => void (level === 'warn' && warnings.push(t)),
      },
    });
    expect(outcome.status).toBe('completed');
    if (outcome.status !== 'completed') return;
    expect(outcome.step).toBeGreaterThan(0);
    expect(steps).toEqual(Array.from({ length: outcome.step }, (_, i) => i + 1)); // no step skipped
    expect(warnings).toEqual([]);
    expect(outcome.tokens).toBe(outcome.step * 4 * 128);
    expect(existsSync(outPath)).toBe(true);
  }, 60_000);
});
