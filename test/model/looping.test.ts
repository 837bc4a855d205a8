/**
 * Parcae looping through the TS engine (random-init tiny looping model written by
 * writeRandomChimera): loop counts reach C, the entropy valve drives generation exactly as
 * documented (replayed by hand on a NativeContext), usage's mean loops, prefix reuse keyed on
 * loop counts, and models without looping ignoring the mode.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createEngine } from '../../engine/engine.ts';
import { InvalidRequestError } from '../../engine/errors.ts';
import { chimeraTinyConfig, type ChimeraConfig } from '../../engine/model-init/chimera-config.ts';
import { writeRandomChimera } from '../../engine/model-init/init-chimera.ts';
import { NativeModel } from '../../engine/model/native-model.ts';
import { argmax } from '../../engine/sampler/truncate.ts';
import { Slot } from '../../engine/scheduler.ts';
import type { Engine, GenerationEvent, GenerationRequest, LoadedModel } from '../../engine/types.ts';
import { EntropyValve, type ValveMode } from '../../engine/valve/valve.ts';
import { generationRequest, greedySampling } from '../helpers/requests.ts';

const dir = mkdtempSync(path.join(tmpdir(), 'braid-loop-'));
const LOOPING = path.join(dir, 'tiny-looping.gguf');
const PLAIN = fileURLToPath(new URL('../../models/chimera-tiny.gguf', import.meta.url));

const config: ChimeraConfig = {
  ...chimeraTinyConfig(4096),
  name: 'tiny-looping',
  layerTypes: ['GD', 'GD', 'GD', 'GD'],
  looping: { prelude: [0, 0], loop: [1, 2], coda: [3, 3], max: 6, default: 2, backwardTruncation: 'half' },
};

const greedy = greedySampling;

function request(promptTokens: number[], over: Partial<GenerationRequest> = {}): GenerationRequest {
  return generationRequest(promptTokens, { maxTokens: 12, ...over });
}

async function run(model: LoadedModel, req: GenerationRequest): Promise<{ ids: number[]; lps: number[]; done: Extract<GenerationEvent, { kind: 'done' }> }> {
  const ids: number[] = [];
  const lps: number[] = [];
  for await (const ev of model.generate(req)) {
    if (ev.kind === 'delta') {
      ids.push(...ev.logprobs.map((l) => l.id));
      lps.push(...ev.logprobs.map((l) => l.logprob));
    } else return { ids, lps, done: ev };
  }
  throw new Error('no done event');
}

const prompt = Array.from({ length: 20 }, (_, i) => 16 + ((i * 2654435761) % 4000));

beforeAll(async () => {
  // σ 0.5 (not the default 0.02, whose near-uniform logits sit at ~12 bits) spreads the step
  // entropies over ~0–3 bits, around the valve's 2-bit threshold, so every level is exercised
  await writeRandomChimera(LOOPING, config, 11, { initializerRange: 0.5 });
}, 60_000);
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('native context with loop counts', () => {
  it('reports chimera.loop.max, validates counts, and the count changes the logits', async () => {
    const m = await NativeModel.load(LOOPING);
    try {
      expect(m.loopMax).toBe(6);
      expect(m.describe()).toMatchObject({ looping: { prelude: [0, 0], loop: [1, 2], coda: [3, 3], max: 6, default: 2 } });
      const ctx = m.createContext(32);
      expect(ctx.loops).toBe(2);
      expect(() => ctx.eval([1], { loops: 7 })).toThrow(InvalidRequestError);
      expect(() => ctx.eval([1], { loops: 0 })).toThrow(InvalidRequestError);
      const a = await ctx.eval(prompt, { loops: 1 });
      expect(ctx.loops).toBe(1);
      await ctx.reset();
      expect(ctx.loops).toBe(2); // reset restores chimera.loop.default
      const b = await ctx.eval(prompt, { loops: 4 });
      await ctx.reset();
      const c = await ctx.eval(prompt, { loops: 4 });
      expect(Array.from(b)).toEqual(Array.from(c));
      expect(Array.from(a)).not.toEqual(Array.from(b));
      await ctx.dispose();
    } finally {
      await m.dispose();
    }
  });

  it('prefix reuse only with the same loop counts', async () => {
    const m = await NativeModel.load(LOOPING);
    try {
      const slot = new Slot(m.createContext(32));
      const signal = new AbortController().signal;
      await slot.prefill(prompt.slice(0, 10), { allLogits: false, signal, loops: 2 });
      expect(slot.reusableLength(prompt, 2)).toBe(10);
      expect(slot.reusableLength(prompt, 4)).toBe(0);
      const reused = await slot.prefill(prompt, { allLogits: false, signal, loops: 2 });
      expect(reused.reused).toBe(10);
      const fresh = await slot.prefill(prompt, { allLogits: false, signal, loops: 4 });
      expect(fresh.reused).toBe(0);
      const ctx = m.createContext(32);
      expect(Array.from(await ctx.eval(prompt, { loops: 2 }))).toEqual(Array.from(reused.logits));
      await ctx.reset();
      expect(Array.from(await ctx.eval(prompt, { loops: 4 }))).toEqual(Array.from(fresh.logits));
      await ctx.dispose();
      await slot.ctx.dispose();
    } finally {
      await m.dispose();
    }
  });
});

describe('engine with the entropy valve', () => {
  let engine: Engine;
  let model: LoadedModel;
  beforeAll(async () => {
    engine = await createEngine({ models: [LOOPING, PLAIN], slots: 1, maxQueue: 1, maxBatch: 64 });
    model = engine.get('tiny-looping')!;
  });
  afterAll(async () => {
    await engine?.dispose();
  });

  for (const mode of ['fast', 'balanced', 'reasoning'] as const) {
    it(`${mode}: generation is the valve's schedule replayed by hand; usage reports its mean loops`, async () => {
      const r = await run(model, request(prompt, { mode }));
      expect(r.ids).toHaveLength(12);
      // replay: prompt at the mode cap, then each token at the count the valve picks from the previous logits
      const m = await NativeModel.load(LOOPING);
      try {
        const ctx = m.createContext(64);
        const valve = new EntropyValve(mode as ValveMode, m.loopMax);
        let loops = valve.promptLoops;
        let logits = await ctx.eval(prompt, { loops });
        const ids: number[] = [];
        const counts: number[] = [];
        for (let i = 0; i < 12; i++) {
          counts.push(loops);
          const id = argmax(logits);
          ids.push(id);
          loops = valve.next(logits);
          if (i < 11) logits = await ctx.eval([id], { loops });
        }
        expect(r.ids).toEqual(ids);
        const mean = counts.reduce((a, b) => a + b, 0) / counts.length;
        expect(r.done.meanLoops).toBeCloseTo(mean, 12);
        const distinct = new Set(counts);
        if (mode === 'fast') expect([...distinct]).toEqual([1]);
        else expect(distinct.size).toBeGreaterThan(1); // the valve really switched depth mid-generation
        expect(Math.max(...counts)).toBe({ fast: 1, balanced: 2, reasoning: 4 }[mode]);
        await ctx.dispose();
      } finally {
        await m.dispose();
      }
    });
  }

  it('the mode changes a looping model’s output distribution and is ignored without looping', async () => {
    const fast = await run(model, request(prompt, { mode: 'fast' }));
    const deep = await run(model, request(prompt, { mode: 'reasoning' }));
    expect(fast.lps).not.toEqual(deep.lps);
    const plain = engine.get('chimera-tiny')!;
    const p1 = await run(plain, request(prompt, { mode: 'fast' }));
    const p2 = await run(plain, request(prompt, { mode: 'reasoning' }));
    expect(p1.lps).toEqual(p2.lps);
    expect(p1.done.meanLoops).toBeUndefined();
  });
});
