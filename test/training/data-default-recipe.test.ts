/**
 * The default recipe end to end on a slice of the real corpora (12 Brown
 * files, the 300 commonest words): sources, batches, held-out sets.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { arithmeticProblem, isArithmeticHeldOut } from '../../engine/training/data/arithmetic.ts';
import { brownDocumentText, isBrownHeldOut } from '../../engine/training/data/brown.ts';
import { loadBuiltinCorpora, type BuiltinCorpora } from '../../engine/training/data/corpora.ts';
import { Curriculum } from '../../engine/training/data/curriculum.ts';
import { defaultRecipe, defaultSources, SOURCE } from '../../engine/training/data/default-recipe.ts';
import { defaultEncoder } from '../../engine/training/data/default-tokenizer.ts';
import { evalBatches } from '../../engine/training/data/eval-batches.ts';
import { heldOutEvalSets, type EvalSets } from '../../engine/training/data/eval-sets.ts';
import { packDocuments } from '../../engine/training/data/pack.ts';
import type { SourceSet } from '../../engine/training/data/source.ts';
import { isWordHeldOut } from '../../engine/training/data/wordnet-chats.ts';

// ca02, cb04 and cc04 are held out.
const BROWN_IDS = ['ca01', 'ca02', 'ca03', 'cb01', 'cb04', 'cc01', 'cc04', 'cf01', 'cg01', 'ck01', 'cn01', 'cr01'];

describe('default recipe on real data', () => {
  const encoder = defaultEncoder();
  let corpora: BuiltinCorpora;
  let sources: SourceSet;
  let evalSets: EvalSets;
  beforeAll(() => {
    corpora = loadBuiltinCorpora({ brownIds: BROWN_IDS, maxWords: 300, minCount: 1 });
    sources = defaultSources(encoder, corpora);
    evalSets = heldOutEvalSets(corpora);
  });

  it('builds every source the recipe mixes, over the train splits only', () => {
    expect([...sources.keys()].sort()).toEqual(Object.values(SOURCE).sort());
    expect(corpora.brown.heldOut.map((f) => f.id)).toEqual(['ca02', 'cb04', 'cc04']);
    expect(sources.get(SOURCE.brown)!.size).toBe(BROWN_IDS.length - 3);
    const trainWords = new Set(corpora.wordnetChats.train.map((c) => c.word));
    for (const w of trainWords) expect(isWordHeldOut(w)).toBe(false);
    expect(sources.get(SOURCE.definitions)!.size).toBeGreaterThan(100);
  });

  it('gives batches whose targets are the next tokens and the phases of the curriculum', () => {
    const c = new Curriculum(defaultRecipe({ totalTokens: 64 * 1024 }), sources, encoder.tokenizer, 5);
    const phases = new Set<string>();
    for (const seg of c.plan.segments) {
      const b = c.batchAt(seg.firstStep + 1);
      phases.add(b.phase);
      expect(b.tokens.length).toBe(1024);
      for (let r = 0; r < b.batch; r++) {
        for (let i = 0; i + 1 < b.seqLen; i++) {
          const t = b.targets[r * b.seqLen + i]!;
          if (t !== -1) expect(t).toBe(b.tokens[r * b.seqLen + i + 1]);
        }
      }
    }
    expect([...phases]).toEqual(['language', 'logic', 'transfer', 'depth']);
    const logic = c.plan.segments.find((s) => s.phase === 'logic')!;
    const text = encoder.tokenizer.decode([...c.batchAt(logic.firstStep).tokens]);
    expect(text).toMatch(/<\|im_start\|>assistant\n\d+ [-+*] \d+ = \d+\.<\|im_end\|>/);
    expect(c.phaseStats(0).bySource[SOURCE.brown]).toBeGreaterThan(0);
  });

  it('exports held-out evaluation sets that training never sees', () => {
    expect(evalSets.brown.map((t) => t.id)).toEqual(['ca02', 'cb04', 'cc04']);
    expect(evalSets.brown.every((t) => isBrownHeldOut(t.id) && t.text.length > 1000)).toBe(true);
    const trainText = new Set(corpora.brown.train.map(brownDocumentText));
    expect(evalSets.brown.some((t) => trainText.has(t.text))).toBe(false);

    expect(evalSets.definitions.length).toBeGreaterThan(3);
    for (const d of evalSets.definitions) {
      expect(isWordHeldOut(d.word)).toBe(true);
      expect(d.question).toBe(`What does ${d.word} mean?`);
      expect(d.answer).toContain(`${d.word} (${d.expected[0]!.pos}): ${d.expected[0]!.definition}`);
    }
    const trained = new Set(corpora.wordnetChats.train.map((c) => c.example.messages.at(-1)!.content));
    expect(evalSets.definitions.some((d) => trained.has(d.answer))).toBe(false);

    expect(evalSets.arithmetic.length).toBeGreaterThan(500);
    const first = evalSets.arithmetic[0]!;
    expect(first.answer).toBe(`${first.problem.a} ${first.problem.op} ${first.problem.b} = ${first.problem.result}.`);
    expect(evalSets.arithmetic.every((a) => isArithmeticHeldOut(a.problem))).toBe(true);
    expect(isArithmeticHeldOut(arithmeticProblem(1, 0))).toBe(false);
  });

  it('cuts held-out text into evaluation batches with the bytes their targets cover', () => {
    const text = evalSets.brown[0]!.text;
    const stream = packDocuments([encoder.text(text)], encoder.tokenizer);
    const ev = evalBatches(stream, { batch: 4, window: 128 }, encoder.tokenizer);
    // Every token of the text plus the closing EOS is a target once; the bytes are the text's.
    expect(ev.targets).toBe(stream.tokens.length - 1);
    expect(ev.bytes).toBe(Buffer.byteLength(text));
    expect(ev.batches.every((b) => b.tokens.length === 4 * 128 && b.phase === 'eval')).toBe(true);
  });
});
