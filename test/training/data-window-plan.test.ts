/**
 * Window placement (engine/training/data/window-plan.ts): a window that would
 * hold only context moves forward to end at the next reply, every target is
 * still owned by exactly one window, plain text keeps the belt's grid; and
 * through the curriculum and a fine-tuning job's data, chats whose prompts
 * are longer than the window give batches in which every row has targets
 * (they used to give batches with none, which failed the job).
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { openJobData } from '../../engine/finetune/job-data.ts';
import { Curriculum } from '../../engine/training/data/curriculum.ts';
import type { TrainingDocument } from '../../engine/training/data/encode.ts';
import type { PackedStream } from '../../engine/training/data/pack.ts';
import type { Recipe } from '../../engine/training/data/recipe.ts';
import type { SourceSet } from '../../engine/training/data/source.ts';
import { placeWindows, type PlacedWindow } from '../../engine/training/data/window-plan.ts';
import { writeTinyBase } from '../e2e/finetune-helpers.ts';

const dir = mkdtempSync(path.join(tmpdir(), 'braid-window-plan-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** A stream from [context, targets] run lengths. */
function maskOf(runs: readonly [number, number][]): Uint8Array {
  const bits: number[] = [];
  for (const [context, targets] of runs) bits.push(...Array<number>(context).fill(0), ...Array<number>(targets).fill(1));
  return Uint8Array.from(bits);
}

function windowsOf(mask: Uint8Array, T: number, o = 0, move = true): PlacedWindow[] {
  return [...placeWindows({ lossMask: mask, grow: () => false }, { window: T, overlap: o }, 0, move)];
}

/** Stream positions a window trains on: start+skip+1 … start+T with mask 1. */
function owned(mask: Uint8Array, w: PlacedWindow, T: number): number[] {
  const out: number[] = [];
  for (let q = w.start + w.skip + 1; q <= w.start + T; q++) if (mask[q] === 1) out.push(q);
  return out;
}

describe('placeWindows', () => {
  it('moves a context-only window to end at the reply, owning every target once', () => {
    const T = 16;
    // Three "chats": prompts of 40, 5 and 70 context tokens, replies of 5, 3 and 4, a 2-token tail each.
    const mask = maskOf([[40, 5], [2 + 5, 3], [2 + 70, 4], [2, 0]]);
    const ws = windowsOf(mask, T);
    const targets = [...mask.keys()].filter((q) => q > 0 && mask[q] === 1);
    const seen = ws.flatMap((w) => owned(mask, w, T));
    expect(seen).toEqual(targets.filter((q) => q <= ws.at(-1)!.start + T));
    for (const w of ws) expect(owned(mask, w, T).length).toBeGreaterThan(0);
    // The first window ends on the first reply's last token (position 44), with 11 tokens of its prompt before it.
    expect(ws[0]).toEqual({ start: 44 - T, skip: 0, passed: 44 - T });
    expect(ws.reduce((n, w) => n + w.passed, 0)).toBeGreaterThan(0);
    // The grid would have had context-only windows here.
    const grid = windowsOf(mask, T, 0, false);
    expect(grid.map((w) => w.start)).toEqual(grid.map((_, i) => i * T));
    expect(grid.some((w) => owned(mask, w, T).length === 0)).toBe(true);
  });

  it('gives a long reply the second half of the window', () => {
    const T = 16;
    const mask = maskOf([[50, 30]]);
    const [first, second] = windowsOf(mask, T);
    expect(first).toEqual({ start: 50 - 1 - 8, skip: 0, passed: 50 - 1 - 8 });
    expect(owned(mask, first!, T)).toEqual([50, 51, 52, 53, 54, 55, 56, 57]);
    expect(second!.start).toBe(first!.start + T);
  });

  it('keeps the grid for plain text (all targets), overlap included', () => {
    const mask = new Uint8Array(200).fill(1);
    const ws = windowsOf(mask, 16, 2);
    expect(ws.map((w) => w.start)).toEqual(ws.map((_, i) => i * 14));
    expect(ws.map((w) => w.skip)).toEqual(ws.map((_, i) => (i === 0 ? 0 : 2)));
    expect(ws.every((w) => w.passed === 0)).toBe(true);
  });
});

describe('curriculum with moveContextOnlyWindows', () => {
  const EOS = 0;
  const IDS = { eosId: EOS, bosId: EOS };
  /** Chats with ids unique across the source: a 60-token prompt, then a 4-token reply. */
  const chats: SourceSet = new Map([
    [
      'chats',
      {
        name: 'chats',
        size: 200, // more than the run reads, so no chat repeats and every target id is unique
        document(i: number): TrainingDocument {
          const tokens = Int32Array.from({ length: 64 }, (_, k) => 1 + i * 64 + k);
          return { tokens, lossMask: Uint8Array.from(tokens, (_, k) => (k >= 60 ? 1 : 0)) };
        },
      },
    ],
  ]);
  const recipe: Recipe = { name: 'chats', totalTokens: 16 * 4 * 30, tokensPerStep: 16 * 4, phases: [{ name: 'data', share: 1, window: 16, overlap: 0, mix: { chats: 1 }, replay: 0 }] };

  const emptyRows = (c: Curriculum): number => {
    let n = 0;
    for (let s = 0; s < c.totalSteps; s++) {
      const b = c.batchAt(s);
      for (let r = 0; r < b.batch; r++) if (b.targets.subarray(r * b.seqLen, (r + 1) * b.seqLen).every((t) => t === -1)) n++;
    }
    return n;
  };

  it('every row has targets, each target of the stream once; off, the grid has empty rows', () => {
    const moved = new Curriculum(recipe, chats, IDS, 1, { moveContextOnlyWindows: true });
    expect(emptyRows(moved)).toBe(0);
    const stream: PackedStream = moved.phaseStream(0);
    const seen: number[] = [];
    for (let s = 0; s < moved.totalSteps; s++) for (const t of moved.batchAt(s).targets) if (t !== -1) seen.push(t);
    const expected = [...stream.tokens].filter((_, q) => q > 0 && stream.lossMask[q] === 1);
    expect(seen.sort((a, b) => a - b)).toEqual(expected.sort((a, b) => a - b));
    const ids = seen.filter((t) => t !== EOS); // EOS ends every chat (its reply's last token is a target)
    expect(new Set(ids).size).toBe(ids.length);
    expect(emptyRows(new Curriculum(recipe, chats, IDS, 1))).toBeGreaterThan(0);
  });
});

describe('a fine-tuning job on chats with long prompts', () => {
  it('has target tokens in every row of every batch, and counts an epoch by what windows hold', async () => {
    const base = await writeTinyBase(dir);
    const system = Array.from({ length: 300 }, (_, i) => `word${i % 17} is fine`).join(' ');
    const lines = [0, 1, 2].map((i) =>
      JSON.stringify({ messages: [{ role: 'system', content: system }, { role: 'user', content: `Question ${i}?` }, { role: 'assistant', content: `Answer ${i}.` }] }),
    );
    const file = path.join(dir, 'long.jsonl');
    writeFileSync(file, `${lines.join('\n')}\n`);
    const jd = await openJobData({ basePath: base, trainingPath: file, validationPath: null, seed: 1, batch: 4, window: 128, nEpochs: 3 });
    // Each chat is over 1000 tokens, nearly all prompt: a pass is about one window per chat.
    expect(jd.epochTokens).toBeLessThan(4 * 128);
    expect(jd.totalSteps).toBe(Math.ceil((3 * jd.epochTokens) / (4 * 128)));
    for (let s = 0; s < jd.totalSteps; s++) {
      const b = await jd.data.batchAt(s);
      for (let r = 0; r < b.batch; r++) {
        const row = b.targets.subarray(r * b.seqLen, (r + 1) * b.seqLen);
        expect(row.some((t) => t !== -1), `step ${s + 1} row ${r}`).toBe(true);
        // The window ends with the reply: its last position is a target.
        expect(row[b.seqLen - 1]).not.toBe(-1);
      }
    }
  });
});
