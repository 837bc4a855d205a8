/**
 * The engine serving a MoA model (converted from a synthetic HF folder): the context length is
 * moa.max_position_embeddings, a prompt that shares only a prefix with a slot's history rewinds
 * the KV cache to the fork instead of starting over (bit-identical to a fresh evaluation), the
 * cancelled prefill keeps what it evaluated, the GPT-2-style vocabulary without ChatML markers
 * gets the plain transcript chat template, and embeddings are the mean of the final hidden states.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { convertHfFolder } from '../../engine/convert/convert.ts';
import { createEngine, type ServingEngine } from '../../engine/engine.ts';
import { AbortedError, InvalidRequestError } from '../../engine/errors.ts';
import { NativeModel } from '../../engine/model/native-model.ts';
import { Slot } from '../../engine/scheduler.ts';
import type { GenerationRequest, LoadedModel } from '../../engine/types.ts';
import { writeMoaHfFolder } from '../../scripts/reference/make-hf-checkpoint.ts';
import { generationRequest, greedySampling } from '../helpers/requests.ts';

const MAX_POS = 96;
let dir: string;
let gguf: string;
let engine: ServingEngine;
let model: LoadedModel;
let native: NativeModel;

/** Deterministic ids below the tokenizer's 263. */
function tokens(n: number, seed = 1): number[] {
  let s = seed >>> 0;
  return Array.from({ length: n }, () => (s = (Math.imul(s, 1103515245) + 12345) >>> 0) % 256);
}

function request(promptTokens: number[], maxTokens: number, over: Partial<GenerationRequest> = {}): GenerationRequest {
  return generationRequest(promptTokens, { maxTokens, ...over });
}

beforeAll(async () => {
  dir = mkdtempSync(path.join(tmpdir(), 'braid-moa-serving-'));
  writeMoaHfFolder(path.join(dir, 'hf'), { metric: 'l2', maxPos: MAX_POS, seed: 3 });
  gguf = path.join(dir, 'moa.gguf');
  await convertHfFolder({ input: path.join(dir, 'hf'), output: gguf, name: 'moa-test' });
  engine = await createEngine({ models: [gguf], threads: 1, slots: 1, maxBatch: 16 });
  model = engine.get('moa-test')!;
  native = await NativeModel.load(gguf);
}, 60_000);

afterAll(async () => {
  await native?.dispose();
  await engine?.dispose();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('serving a MoA model', () => {
  it('reports the architecture and max_position_embeddings as the context length', () => {
    expect(model.info.architecture).toBe('moa');
    expect(model.info.contextLength).toBe(MAX_POS);
    expect(native.canRewind).toBe(true);
  });

  it('a prompt that forks from the history rewinds to the fork: bit-identical to a fresh evaluation', async () => {
    const signal = new AbortController().signal;
    const slot = new Slot(native.createContext(16));
    const fresh = native.createContext(16);
    const freshLogits = async (prompt: number[]) => {
      await fresh.reset();
      return Array.from(await fresh.eval(prompt));
    };
    try {
      const a = tokens(40, 1);
      expect((await slot.prefill(a, { allLogits: false, signal })).reused).toBe(0);
      // an edited turn: shares 25 tokens, then differs
      const b = [...a.slice(0, 25), ...tokens(12, 9)];
      const pb = await slot.prefill(b, { allLogits: false, signal });
      expect(pb.reused).toBe(25);
      expect(slot.ctx.nPast).toBe(b.length);
      expect(Array.from(pb.logits)).toEqual(await freshLogits(b));
      // a prompt that is a strict prefix of the history: keep all but its last token
      const c = b.slice(0, 30);
      const pc = await slot.prefill(c, { allLogits: false, signal });
      expect(pc.reused).toBe(29);
      expect(Array.from(pc.logits)).toEqual(await freshLogits(c));
      // the identical prompt again: nothing is evaluated, the cached logits come back
      const again = await slot.prefill(c, { allLogits: false, signal });
      expect(again.reused).toBe(c.length);
      expect(Array.from(again.logits)).toEqual(await freshLogits(c));
      // nothing in common: from scratch
      const d = [200, ...tokens(5, 4)];
      expect((await slot.prefill(d, { allLogits: false, signal })).reused).toBe(0);
    } finally {
      await slot.ctx.dispose();
      await fresh.dispose();
    }
  });

  it('a cancelled prefill keeps the pieces that completed; the retry continues from there', async () => {
    const slot = new Slot(native.createContext(4)); // 4 tokens per eval call
    const fresh = native.createContext(16);
    try {
      const prompt = tokens(30, 12);
      // An AbortSignal that reads as aborted from its 4th look: NativeContext looks once before
      // each piece, so exactly 3 pieces (12 tokens) are evaluated, deterministically.
      let looks = 0;
      const cancelAfter3 = {
        get aborted() {
          return ++looks > 3;
        },
        addEventListener() {},
        removeEventListener() {},
      } as unknown as AbortSignal;
      await expect(slot.prefill(prompt, { allLogits: false, signal: cancelAfter3 })).rejects.toBeInstanceOf(AbortedError);
      expect(slot.ctx.usable).toBe(true);
      expect(slot.ctx.nPast).toBe(12);
      const retry = await slot.prefill(prompt, { allLogits: false, signal: new AbortController().signal });
      expect(retry.reused).toBe(12);
      const want = Array.from(await fresh.eval(prompt));
      expect(Array.from(retry.logits)).toEqual(want);
      // A real abort while the append runs: inside C (BRAID_ABORTED between layers) or, usually
      // on this tiny model whose 4-token piece is done before the abort lands, between pieces.
      // Either way the cache holds whole pieces, the history follows, and the retry is exact.
      const more = tokens(30, 13);
      const ac = new AbortController();
      const appended = slot.append(more, ac.signal); // the first piece is in C now
      ac.abort();
      const outcome = await appended.then(
        () => 'finished',
        (e: unknown) => e,
      );
      if (outcome !== 'finished') expect(outcome).toBeInstanceOf(AbortedError);
      expect(slot.ctx.usable).toBe(true);
      const kept = slot.ctx.nPast - prompt.length;
      expect(kept % 4 === 0 || kept === more.length).toBe(true);
      const whole = [...prompt, ...more];
      const again = await slot.prefill(whole, { allLogits: false, signal: new AbortController().signal });
      expect(again.reused).toBe(kept === more.length ? whole.length - 1 : prompt.length + kept);
      await fresh.reset();
      expect(Array.from(again.logits)).toEqual(Array.from(await fresh.eval(whole)));
    } finally {
      await slot.ctx.dispose();
      await fresh.dispose();
    }
  });

  it('greedy generation after a fork equals greedy generation on a fresh engine slot', async () => {
    const run = async (prompt: number[]) => {
      let text = '';
      let finish = '';
      for await (const ev of model.generate(request(prompt, 10))) {
        if (ev.kind === 'delta') text += ev.text;
        else finish = ev.finishReason;
      }
      return { text, finish };
    };
    const b = [...tokens(30, 2).slice(0, 20), ...tokens(8, 5)];
    const first = await run(b); // whatever the slot held before
    await run(tokens(30, 2)); // shares 20 tokens with b
    expect(await run(b)).toEqual(first); // rewinds to 20 and continues
  });

  it('prompt + max_tokens beyond max_position_embeddings is a context_length_exceeded error', async () => {
    const gen = model.generate(request(tokens(MAX_POS - 4), 5));
    const err = await gen.next().then(
      () => null,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(InvalidRequestError);
    expect((err as InvalidRequestError).code).toBe('context_length_exceeded');
    expect((err as Error).message).toMatch(new RegExp(`context length is ${MAX_POS} tokens`));
  });

  it('generation that fills the context exactly ends with finish_reason length', async () => {
    let done: { finishReason: string; completionTokens: number; promptTokens: number } | null = null;
    const prompt = tokens(MAX_POS - 6, 8);
    const banStops = new Map([...model.tokenizer.stopIds].map((id) => [id, -100]));
    const req = request(prompt, 6, { sampling: { ...greedySampling, logitBias: banStops } });
    for await (const ev of model.generate(req)) if (ev.kind === 'done') done = ev;
    expect(done).toMatchObject({ finishReason: 'length', completionTokens: 6, promptTokens: MAX_POS - 6 });
  });

  it('chat uses the plain transcript template (the vocabulary has no ChatML markers)', () => {
    const text = model.applyChatTemplate(
      [
        { role: 'system', content: 'Be brief.' },
        { role: 'user', content: 'Hi' },
      ],
      { addGenerationPrompt: true },
    );
    expect(text).toBe('System: Be brief.\n\nUser: Hi\n\nAssistant:');
  });

  it('embeddings: the mean of the final hidden states; over the context length is refused', async () => {
    const ids = tokens(12, 6);
    const signal = new AbortController().signal;
    const v = await model.embed(ids, signal);
    expect(v.length).toBe(native.nEmbd);
    const ctx = native.createContext(16);
    try {
      const hidden = await ctx.evalHidden(ids);
      const D = native.nEmbd;
      for (let c = 0; c < D; c++) {
        let s = 0;
        for (let r = 0; r < ids.length; r++) s += hidden[r * D + c]!;
        expect(v[c]).toBeCloseTo(s / ids.length, 5);
      }
    } finally {
      await ctx.dispose();
    }
    expect(v.some((x) => x !== 0)).toBe(true);
    await expect(model.embed(tokens(MAX_POS + 1), signal)).rejects.toMatchObject({ code: 'context_length_exceeded' });
  });
});
