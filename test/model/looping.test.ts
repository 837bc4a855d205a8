/**
 * Parcae looping through the TS engine (random-init tiny looping model written by
 * writeRandomChimera): loop counts reach C, the entropy valve drives generation exactly as
 * documented (replayed by hand on a NativeContext), usage's mean loops, prefix reuse keyed on
 * loop counts, and models without looping ignoring the mode; the valve's grammar / ledger / queue
 * signals in generation, and Parcae adaptive exit through NativeContext.
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
import { jsonSchemaGrammar } from '../../engine/grammar/json-schema.ts';
import { compileConstraint, Matcher } from '../../engine/grammar/matcher.ts';
import { DebtLedger } from '../../engine/ledger/ledger.ts';
import { gatherSignals } from '../../engine/valve/signals.ts';
import { EntropyValve, entropyBits, type ValveMode } from '../../engine/valve/valve.ts';
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

describe('Parcae adaptive exit through NativeContext', () => {
  it('threshold 0 is exit off; a threshold every token passes stops each at minLoops; counts are reported', async () => {
    const m = await NativeModel.load(LOOPING);
    try {
      const ctx = m.createContext(8); // 20 prompt tokens: three eval pieces
      const base = await ctx.eval(prompt, { loops: 4 });
      expect(ctx.lastEval).toEqual({ last: 4, sum: 80 });
      await ctx.reset();
      expect(Array.from(await ctx.eval(prompt, { loops: 4, exit: { threshold: 0, minLoops: 1 } }))).toEqual(Array.from(base));
      await ctx.reset();
      const atMin = await ctx.eval(prompt, { loops: 4, exit: { threshold: 1e30, minLoops: 3 } });
      expect(ctx.lastEval).toEqual({ last: 3, sum: 60 });
      await ctx.reset();
      expect(Array.from(atMin)).toEqual(Array.from(await ctx.eval(prompt, { loops: 3 })));
      // exit is per eval: the next eval without it runs every token to its count
      await ctx.eval([5], { loops: 4 });
      expect(ctx.lastEval).toEqual({ last: 4, sum: 4 });
      expect(() => ctx.eval([1], { loops: 4, exit: { threshold: -1, minLoops: 1 } })).toThrow(InvalidRequestError);
      expect(() => ctx.eval([1], { loops: 4, exit: { threshold: 0.01, minLoops: 7 } })).toThrow(InvalidRequestError);
      await ctx.dispose();
    } finally {
      await m.dispose();
    }
  });

  it('per-token exit: prefill in pieces == token by token, and == exit off with the counts it chose', async () => {
    const m = await NativeModel.load(LOOPING);
    try {
      const ctx = m.createContext(8);
      // find a threshold where some tokens stop early and some run to the cap: bisect on
      // log(threshold) by the share that stops early (random weights: the iterates move by ~10²)
      let exit = { threshold: 0, minLoops: 2 };
      let counts: number[] = [];
      let lo = 1e-3;
      let hi = 1e6;
      for (let i = 0; i < 40 && exit.threshold === 0; i++) {
        const th = Math.sqrt(lo * hi);
        await ctx.reset();
        const c: number[] = [];
        for (const id of prompt) {
          await ctx.eval([id], { loops: 4, exit: { threshold: th, minLoops: 2 } });
          c.push(ctx.lastEval.last);
        }
        const early = c.filter((n) => n < 4).length;
        if (early >= 3 && c.length - early >= 3) {
          exit = { threshold: th, minLoops: 2 };
          counts = c;
        } else if (early < c.length / 2) lo = th;
        else hi = th;
      }
      expect(exit.threshold).toBeGreaterThan(0);
      expect(Math.min(...counts)).toBeGreaterThanOrEqual(2);
      await ctx.reset();
      const prefill = await ctx.eval(prompt, { loops: 4, exit, allLogits: true });
      expect(ctx.lastEval.sum).toBe(counts.reduce((a, b) => a + b, 0));
      await ctx.reset();
      const replay = new Float32Array(prefill.length);
      for (let t = 0; t < prompt.length; t++) {
        replay.set(await ctx.eval([prompt[t]!], { loops: counts[t]! }), t * ctx.nVocab);
      }
      expect(Array.from(replay)).toEqual(Array.from(prefill));
      await ctx.dispose();
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

  it('with a grammar, the loop counts follow the branching and debt signals (replayed with a ledger)', async () => {
    const grammar = jsonSchemaGrammar({
      type: 'object',
      properties: { answer: { type: 'boolean' }, why: { type: 'string', maxLength: 6 } },
      required: ['answer', 'why'],
    });
    const maxTokens = 40;
    const r = await run(model, request(prompt, { mode: 'reasoning', grammar, maxTokens }));
    const m = await NativeModel.load(LOOPING);
    try {
      const tok = model.tokenizer;
      const ledger = new DebtLedger(new Matcher(compileConstraint(grammar, tok)), tok, maxTokens);
      const ctx = m.createContext(64);
      const valve = new EntropyValve('reasoning', m.loopMax);
      let loops = valve.promptLoops;
      let logits = await ctx.eval(prompt, { loops });
      const ids: number[] = [];
      const counts: number[] = [];
      let forcedSteps = 0;
      for (let i = 0; i < maxTokens; i++) {
        counts.push(loops);
        const bits = entropyBits(logits);
        const masked = logits.slice();
        ledger.constrain(masked, maxTokens - i);
        const id = argmax(masked);
        if (tok.stopIds.has(id)) break;
        ledger.accept(id);
        ids.push(id);
        if (i + 1 >= maxTokens) break;
        const sig = gatherSignals(bits, { ledger, remaining: maxTokens - i - 1, queueDepth: 0 });
        loops = valve.decide(sig);
        if (sig.branchingBits === 0) {
          forcedSteps++;
          expect(loops).toBe(1); // a forced token needs no thought
        }
        logits = await ctx.eval([id], { loops });
      }
      expect(r.ids).toEqual(ids);
      expect(forcedSteps).toBeGreaterThan(0); // the key names are forced: the signal was exercised
      expect(r.done.meanLoops).toBeCloseTo(counts.reduce((a, b) => a + b, 0) / counts.length, 12);
      await ctx.dispose();
    } finally {
      await m.dispose();
    }
  });

  it('a queued request halves the depth of the running one (queue-depth signal)', async () => {
    const a = model.generate(request(prompt, { mode: 'reasoning' }));
    const first = a.next(); // takes the only slot and starts its prefill
    const b = model.generate(request(prompt.slice(0, 5), { mode: 'fast', maxTokens: 1 }));
    const waiting = b.next(); // queues behind it (maxQueue 1)
    const ids: number[] = [];
    let done: Extract<GenerationEvent, { kind: 'done' }> | undefined;
    for (let ev = await first; !ev.done; ev = await a.next()) {
      if (ev.value.kind === 'delta') ids.push(...ev.value.logprobs.map((l) => l.id));
      else done = ev.value;
    }
    await waiting;
    for (let ev = await b.next(); !ev.done; ev = await b.next());
    // replay: prompt at the mode cap 4, then every step with one request waiting → at most 2
    const m = await NativeModel.load(LOOPING);
    try {
      const ctx = m.createContext(64);
      const valve = new EntropyValve('reasoning', m.loopMax);
      let loops = valve.promptLoops;
      let logits = await ctx.eval(prompt, { loops });
      const want: number[] = [];
      const counts: number[] = [];
      for (let i = 0; i < 12; i++) {
        counts.push(loops);
        const id = argmax(logits);
        want.push(id);
        loops = valve.decide({ entropyBits: entropyBits(logits), queueDepth: 1 });
        expect(loops).toBeLessThanOrEqual(2);
        if (i < 11) logits = await ctx.eval([id], { loops });
      }
      expect(ids).toEqual(want);
      expect(done?.meanLoops).toBeCloseTo(counts.reduce((x, y) => x + y, 0) / counts.length, 12);
      await ctx.dispose();
    } finally {
      await m.dispose();
    }
  });

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
