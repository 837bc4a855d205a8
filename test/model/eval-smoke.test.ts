/**
 * The model evaluation (engine/eval/run.ts, scripts/eval-model.ts) on the
 * committed default model (trained), at toy size: a tenth of Brown, two questions per
 * set, a few hundred tokens of text. Plus the two things the report's
 * numbers rest on: text scoring lines targets up with logits exactly as the
 * engine's own prompt logprobs do, and carrying the state across windows is
 * one pass over the document. Needs the built library and models/chimera-tiny.gguf
 * (the rest of test/unit needs neither); about 10 s on two cores.
 */
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { createEngine } from '../../engine/engine.ts';
import { modelTextNats } from '../../engine/eval/model-text.ts';
import { chatPromptIds } from '../../engine/eval/qa.ts';
import { evaluateModel } from '../../engine/eval/run.ts';
import { NativeModel } from '../../engine/model/native-model.ts';
import { brownFileIds, loadBuiltinCorpora } from '../../engine/training/data/index.ts';
import { chatPromptTokens } from '../../server/prompt.ts';

const MODEL = join(dirname(fileURLToPath(import.meta.url)), '../../models/chimera-tiny.gguf');
const TEXT = 'The jury said it did find that the city had been run well. '.repeat(12);

describe('model evaluation on the default model', () => {
  it('runs end to end with --limit 2', async () => {
    const corpora = loadBuiltinCorpora({ brownIds: brownFileIds().filter((_, i) => i % 10 === 0) });
    const r = await evaluateModel({
      modelPath: MODEL,
      limit: 2,
      textTokens: 600,
      window: 64,
      carry: true,
      definitionTokens: 6,
      arithmeticTokens: 4,
      seed: 1,
      corpora,
    });
    expect(r.text.tokens).toBe(600);
    expect(r.text.bytes).toBeGreaterThan(600);
    expect(r.text.model.bpb).toBeCloseTo(r.text.model.nats / (Math.LN2 * r.text.bytes), 12);
    // The trained default model is far from uniform over its logits (a random init sits at ln V).
    expect(r.text.model.natsPerToken).toBeLessThan(Math.log(r.model.nVocab) - 2);
    expect(r.text.baselines.map((b) => b.name)).toEqual(['unigram (add-k)', 'bigram (add-k)', 'bigram (Kneser-Ney)', 'trigram (Kneser-Ney)']);
    const [uni, , kn] = r.text.baselines;
    expect(kn!.bpb).toBeLessThan(uni!.bpb);
    expect(r.text.model.bpb).toBeLessThan(uni!.bpb);
    for (const s of [r.definitions.heldOut, r.definitions.trained, r.arithmetic.heldOut, r.arithmetic.trained]) expect(s.n).toBe(2);
    const asked = [...r.definitions.heldOutResults, ...r.definitions.trainedResults].map((d) => d.word);
    expect(asked.filter((w) => corpora.wordnetChats.heldOut.some((c) => c.word === w))).toEqual(asked.slice(0, 2));
    expect(r.arithmetic.trainedResults.every((a) => a.completionTokens <= 4)).toBe(true);
  });

  it('text nats equal the engine prompt logprobs; a carried state is one pass', async () => {
    const engine = await createEngine({ models: [MODEL] });
    const native = await NativeModel.load(MODEL);
    try {
      const model = engine.models()[0]!;
      const tok = model.tokenizer;
      const startId = tok.bosId ?? tok.eosId;
      const doc = tok.encode(TEXT);
      expect(doc.length).toBeGreaterThan(130);

      const carried = await modelTextNats(native, [doc], { window: 64, carry: true, startId });
      const onePass = await modelTextNats(native, [doc], { window: 512, carry: true, startId });
      const fresh = await modelTextNats(native, [doc], { window: 64, carry: false, startId });
      expect(carried.targets).toBe(doc.length);
      expect(carried.nats).toBe(onePass.nats); // batch invariance: bit-identical logits
      expect(fresh.nats).not.toBe(carried.nats);

      // The completions echo path (max_tokens 0 + logprobs) scores the same targets independently.
      const gen = model.generate({
        promptTokens: [startId, ...doc],
        maxTokens: 0,
        stop: [],
        sampling: { temperature: 0, topP: 1, topK: 0, minP: 0, presencePenalty: 0, frequencyPenalty: 0, repetitionPenalty: 1, logitBias: new Map(), seed: 0 },
        topLogprobs: 0,
        promptLogprobs: true,
        signal: new AbortController().signal,
      });
      let echo = 0;
      for await (const ev of gen) if (ev.kind === 'done') for (const lp of ev.promptLogprobs ?? []) echo -= lp?.logprob ?? 0;
      expect(Math.abs(echo - carried.nats) / carried.nats).toBeLessThan(1e-5);

      expect(chatPromptIds(model, 'What does dog mean?')).toEqual(chatPromptTokens(model, [{ role: 'user', content: 'What does dog mean?' }]));
    } finally {
      await native.dispose();
      await engine.dispose();
    }
  });
});
