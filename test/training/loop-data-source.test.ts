/**
 * The adapter from engine/training/data to the loop, on data files (fast: no
 * built-in corpora): run length from steps or tokens, batch shapes, held-out
 * batches with their byte count, deterministic batches, clear errors.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readGguf } from '../../engine/gguf/reader.ts';
import type { GgufFile } from '../../engine/gguf/types.ts';
import { chimeraTinyConfig } from '../../engine/model-init/chimera-config.ts';
import { writeRandomChimera } from '../../engine/model-init/init-chimera.ts';
import { loadTokenizer } from '../../engine/tokenizer/load.ts';
import { openTrainingData, type TrainingDataOptions } from '../../engine/training/data-source.ts';

const dir = mkdtempSync(path.join(tmpdir(), 'braid-data-source-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
let model: GgufFile;
let opts: TrainingDataOptions;

beforeAll(async () => {
  const file = path.join(dir, 'm.gguf');
  await writeRandomChimera(file, { ...chimeraTinyConfig(4096), embeddingLength: 128, feedForwardLength: 256, layerTypes: ['GD'], headCount: 2 }, 1);
  model = await readGguf(file);
  writeFileSync(path.join(dir, 'a.txt'), 'The quick brown fox jumps over the lazy dog. '.repeat(50));
  writeFileSync(
    path.join(dir, 'b.jsonl'),
    `${JSON.stringify({ messages: [{ role: 'user', content: 'Hi?' }, { role: 'assistant', content: 'Hello there.' }] })}\n`,
  );
  writeFileSync(path.join(dir, 'held.txt'), 'Held-out text, never trained on: the dog sleeps.');
  opts = {
    recipe: 'data-files',
    files: [path.join(dir, 'a.txt'), path.join(dir, 'b.jsonl')],
    evalFiles: [path.join(dir, 'held.txt')],
    seed: 3,
    steps: 6,
    tokens: undefined,
    batch: 2,
    seqLen: 16,
    evalTokens: 1000,
    model,
  };
});

describe('openTrainingData (data files)', () => {
  it('sizes the run, shapes batches, and is deterministic', async () => {
    const data = await openTrainingData(opts);
    expect(data.totalSteps).toBe(6);
    expect(data.recipe).toBe('data-files');
    expect(data.describe()).toBe('recipe data-files (1 phase: data), 32 tokens/step');
    const b = await data.batchAt(5);
    expect([b.batch, b.seqLen, b.tokens.length, b.targets.length, b.phase]).toEqual([2, 16, 32, 32, 'data']);
    expect(b.targets.some((t) => t >= 0)).toBe(true);
    const again = await openTrainingData(opts);
    expect(Array.from((await again.batchAt(5)).tokens)).toEqual(Array.from(b.tokens));
    expect(again.fingerprint).toBe(data.fingerprint);
    expect((await openTrainingData({ ...opts, seed: 4 })).fingerprint).not.toBe(data.fingerprint);
    expect((await openTrainingData({ ...opts, steps: undefined, tokens: 320 })).totalSteps).toBe(10);
  });

  it('builds held-out batches with the bytes their targets stand for', async () => {
    const held = (await openTrainingData(opts)).heldOut();
    expect(held).not.toBeNull();
    const targets = held!.batches.flatMap((b) => Array.from(b.targets)).filter((t) => t >= 0);
    expect(targets.length).toBeGreaterThan(5);
    // stream = BOS, the text, EOS: every text token and the closing EOS are targets
    const tok = loadTokenizer(model.metadata);
    expect(targets).toEqual([...tok.encode('Held-out text, never trained on: the dog sleeps.'), tok.eosId]);
    // bits per byte are per byte of text: the special EOS token stands for none
    expect(held!.bytes).toBe(Buffer.byteLength('Held-out text, never trained on: the dog sleeps.'));
  });

  it('says what is wrong with a recipe or a length', async () => {
    await expect(openTrainingData({ ...opts, recipe: 'nope' })).rejects.toThrow(/unknown recipe "nope" \(built in: default/);
    await expect(openTrainingData({ ...opts, steps: undefined })).rejects.toThrow(/no length of its own: give --steps or --tokens/);
    await expect(openTrainingData({ ...opts, steps: undefined, tokens: 10 })).rejects.toThrow(/less than one step of 32 tokens/);
  });
});
