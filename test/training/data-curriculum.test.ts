import { describe, expect, it } from 'vitest';
import { Curriculum, effectiveMix } from '../../engine/training/data/curriculum.ts';
import { defaultRecipe } from '../../engine/training/data/default-recipe.ts';
import type { TrainingDocument } from '../../engine/training/data/encode.ts';
import { planRecipe, RecipeError, recipeFingerprint, withFixedShape, type Recipe } from '../../engine/training/data/recipe.ts';
import type { DocumentSource, SourceSet } from '../../engine/training/data/source.ts';

const EOS = 0;
const IDS = { eosId: EOS, bosId: EOS };

/**
 * A source of documents whose ids are unique across all sources (base + a
 * running count), so a target id names the one stream position it came from.
 * Every third token of a "chat" source is context only.
 */
function uniqueSource(name: string, base: number, docs: number, chat = false): DocumentSource {
  const lengths = Array.from({ length: docs }, (_, i) => 3 + ((i * 7) % 23));
  const starts = lengths.map((_, i) => lengths.slice(0, i).reduce((a, b) => a + b, 0));
  return {
    name,
    size: docs,
    document(i: number): TrainingDocument {
      const tokens = Int32Array.from({ length: lengths[i]! }, (_, k) => base + starts[i]! + k);
      const lossMask = Uint8Array.from(tokens, (_, k) => (chat && k % 3 === 0 ? 0 : 1));
      return { tokens, lossMask };
    },
  };
}

function sources(): SourceSet {
  const list = [uniqueSource('prose', 1_000_000, 4000), uniqueSource('math', 2_000_000, 4000, true), uniqueSource('words', 3_000_000, 4000, true)];
  return new Map(list.map((s) => [s.name, s]));
}

/** The seed's four phases at 256 tokens/step, GrowLength in the first. */
function recipe(totalTokens = 256 * 120): Recipe {
  return {
    name: 'test',
    totalTokens,
    tokensPerStep: 256,
    phases: [
      { name: 'language', share: 0.4, window: 32, overlap: 0, mix: { prose: 1 }, replay: 0, grow: [{ windowFraction: 0.5, stepFraction: 0.5 }, { windowFraction: 1, stepFraction: 0.5 }] },
      { name: 'logic', share: 0.2, window: 64, overlap: 8, mix: { math: 1 }, replay: 0.25 },
      { name: 'transfer', share: 0.2, window: 128, overlap: 16, mix: { words: 3, math: 1 }, replay: 0.2 },
      { name: 'depth', share: 0.2, window: 256, overlap: 32, mix: { prose: 1, math: 1, words: 1 }, replay: 0 },
    ],
  };
}

describe('recipe plan', () => {
  it('keeps tokens per step constant while windows grow and batches shrink', () => {
    const plan = planRecipe(recipe());
    expect(plan.totalSteps).toBe(120);
    expect(plan.segments.map((s) => `${s.phase}:${s.batch}x${s.window}:${s.steps}`)).toEqual([
      'language:16x16:24',
      'language:8x32:24',
      'logic:4x64:24',
      'transfer:2x128:24',
      'depth:1x256:24',
    ]);
    for (const s of plan.segments) expect(s.batch * s.window).toBe(256);
  });

  it('the default recipe: 8×T/8 … 1×T at constant tokens per step, the whole budget', () => {
    const r = defaultRecipe({ totalTokens: 3_000_000 });
    const plan = planRecipe(r);
    expect(plan.totalSteps).toBe(Math.round(3_000_000 / 1024));
    const shapes = new Map(plan.segments.map((s) => [s.phase, `${s.batch}x${s.window}`]));
    expect([...shapes]).toEqual([['language', '8x128'], ['logic', '4x256'], ['transfer', '2x512'], ['depth', '1x1024']]);
    expect(plan.segments[0]).toMatchObject({ batch: 32, window: 32 }); // GrowLength starts short
    for (const s of plan.segments) expect(s.batch * s.window).toBe(1024);
    expect(plan.segments.reduce((n, s) => n + s.steps, 0)).toBe(plan.totalSteps);
    expect(planRecipe(defaultRecipe({ totalTokens: 500_000, tokensPerStep: 2048 })).segments.at(-1)).toMatchObject({ batch: 1, window: 2048 });
  });

  it('rejects shapes that break constant tokens per step, bad overlaps and replay with nothing to replay', () => {
    const bad: Recipe = {
      ...recipe(),
      phases: [
        { name: 'a', share: 1, window: 48, overlap: 0, mix: { prose: 1 }, replay: 0.1 },
        { name: 'b', share: 1, window: 64, overlap: 64, mix: {}, replay: 0 },
      ],
    };
    expect(() => planRecipe(bad)).toThrow(RecipeError);
    const message = (() => {
      try {
        planRecipe(bad);
        return '';
      } catch (e) {
        return (e as Error).message;
      }
    })();
    expect(message).toContain('window 48 does not divide tokensPerStep 256');
    expect(message).toContain('replay 0.1 but there is no earlier phase');
    expect(message).toContain('overlap 64 must be an integer in [0, 64)');
    expect(message).toContain('the mix names no source');
  });

  it('fixed shapes and fingerprints', () => {
    const fixed = withFixedShape(recipe(), 2, 64);
    expect(planRecipe(fixed).segments.every((s) => s.batch === 2 && s.window === 64 && s.overlap <= 4)).toBe(true);
    expect(recipeFingerprint(recipe(), 1)).toBe(recipeFingerprint(recipe(), 1));
    expect(recipeFingerprint(recipe(), 1)).not.toBe(recipeFingerprint(recipe(), 2));
    expect(recipeFingerprint(recipe(), 1)).not.toBe(recipeFingerprint(recipe(256 * 121), 1));
  });
});

describe('curriculum batches', () => {
  it('batchAt(step) is a pure function: two instances, any access order, resume mid-run', () => {
    const a = new Curriculum(recipe(), sources(), IDS, 7);
    const b = new Curriculum(recipe(), sources(), IDS, 7);
    const forward = Array.from({ length: a.totalSteps }, (_, s) => a.batchAt(s));
    const backward = Array.from({ length: b.totalSteps }, (_, s) => b.totalSteps - 1 - s).map((s) => b.batchAt(s)).reverse();
    expect(backward).toEqual(forward);
    // A resumed run: a fresh instance asked for step 77 onward.
    const resumed = new Curriculum(recipe(), sources(), IDS, 7);
    for (let s = 77; s < resumed.totalSteps; s++) expect(resumed.batchAt(s)).toEqual(forward[s]);
    const other = new Curriculum(recipe(), sources(), IDS, 8);
    expect(other.batchAt(0).tokens).not.toEqual(forward[0]!.tokens);
    expect(() => a.batchAt(a.totalSteps)).toThrow(RangeError);
  });

  it('every batch has tokensPerStep tokens, row-major [batch, seqLen], and its phase', () => {
    const c = new Curriculum(recipe(), sources(), IDS, 1);
    const phases: string[] = [];
    for (let s = 0; s < c.totalSteps; s++) {
      const b = c.batchAt(s);
      expect(b.tokens.length).toBe(256);
      expect(b.targets.length).toBe(b.batch * b.seqLen);
      expect(b.batch * b.seqLen).toBe(256);
      if (phases.at(-1) !== b.phase) phases.push(b.phase);
    }
    expect(phases).toEqual(['language', 'logic', 'transfer', 'depth']);
  });

  it("each phase's stream is trained on exactly once, and each row continues its lane", () => {
    const c = new Curriculum(recipe(), sources(), IDS, 3);
    for (let p = 0; p < 4; p++) {
      const stream = c.phaseStream(p);
      const seen = new Map<number, number>();
      const segs = c.plan.segments.filter((s) => s.phaseIndex === p);
      for (const seg of segs) {
        for (let j = 0; j < seg.steps; j++) {
          const b = c.batchAt(seg.firstStep + j);
          expect(b.continuesPrevious).toBe(j > 0);
          for (const t of b.targets) if (t !== -1 && t !== EOS) seen.set(t, (seen.get(t) ?? 0) + 1);
          const T = seg.window;
          const step = T - seg.overlap;
          for (let r = 0; r < seg.batch; r++) {
            // Row r is lane r: window r·steps + j of the segment, which starts T − o after the row's previous one.
            const start = seg.streamStart + (r * seg.steps + j) * step;
            expect(b.tokens.subarray(r * T, (r + 1) * T)).toEqual(stream.tokens.subarray(start, start + T));
            if (j > 0) {
              const prev = c.batchAt(seg.firstStep + j - 1);
              expect(b.tokens.subarray(r * T, r * T + seg.overlap)).toEqual(prev.tokens.subarray(r * T + step, (r + 1) * T));
            }
          }
        }
      }
      // Every loss position of the stream (past the first token), once; nothing else.
      const expected = new Map<number, number>();
      for (let i = 1; i < stream.tokens.length; i++) if (stream.lossMask[i] === 1 && stream.tokens[i] !== EOS) expected.set(stream.tokens[i]!, 1);
      expect(seen).toEqual(expected);
      expect(seen.size).toBeGreaterThan(0);
    }
  });

  it('mixes sources by token share and replays earlier phases', () => {
    const r = recipe(256 * 400);
    const mix = effectiveMix(r, 2);
    expect([...mix.keys()].sort()).toEqual(['math', 'prose', 'words']);
    expect(mix.get('words')).toBeCloseTo(0.6, 12);
    expect(mix.get('math')).toBeCloseTo(0.2 + 0.2 / 3, 12); // own 0.2, plus logic's third of the replay
    expect(mix.get('prose')).toBeCloseTo(0.4 / 3, 12); // language: two thirds of the replay
    const c = new Curriculum(r, sources(), IDS, 1);
    const logic = c.phaseStats(1);
    expect(logic.bySource.prose! / logic.tokens).toBeCloseTo(0.25, 1);
    expect(logic.bySource.math! / logic.tokens).toBeCloseTo(0.75, 1);
    const transfer = c.phaseStats(2);
    expect(transfer.bySource.words! / transfer.tokens).toBeCloseTo(0.6, 1);
  });

  it('names missing sources', () => {
    const few: SourceSet = new Map([['prose', uniqueSource('prose', 1, 10)]]);
    expect(() => new Curriculum(recipe(), few, IDS, 1)).toThrow(/not provided: math, words/);
  });
});
