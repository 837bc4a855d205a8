/**
 * The question-answering half of the model evaluation (engine/eval/qa.ts)
 * against a scripted LoadedModel: the request it builds (chat prompt with BOS,
 * greedy, max tokens, the definition stop) and how answers become summaries.
 * No native model.
 */
import { describe, expect, it } from 'vitest';
import { askArithmetic, askDefinitions, chatPromptIds, summarizeArithmetic, summarizeDefinitions } from '../../engine/eval/qa.ts';
import type { ChatMessage, GenerationEvent, GenerationRequest, LoadedModel, ModelInfo } from '../../engine/types.ts';
import { BOS, FakeTokenizer } from './fake-engine.ts';

/** Answers each question from a table, one byte per token, honouring stop and maxTokens as the engine does. */
class ScriptedModel implements LoadedModel {
  readonly info: ModelInfo = {
    id: 'scripted',
    path: '/dev/null',
    architecture: 'none',
    created: 0,
    provenance: 'test',
    nVocab: 260,
    nEmbd: 1,
    nLayer: 1,
    contextLength: 4096,
    tensorBytes: 0,
  };
  readonly tokenizer = new FakeTokenizer();
  readonly requests: GenerationRequest[] = [];

  constructor(private readonly answers: ReadonlyMap<string, string>) {}

  applyChatTemplate(messages: ChatMessage[], opts: { addGenerationPrompt: boolean }): string {
    const body = messages.map((m) => `<|im_start|>${m.role}\n${m.content}<|im_end|>\n`).join('');
    return opts.addGenerationPrompt ? `${body}<|im_start|>assistant\n` : body;
  }

  async *generate(req: GenerationRequest): AsyncGenerator<GenerationEvent, void, undefined> {
    this.requests.push(req);
    const prompt = this.tokenizer.decode(req.promptTokens, { skipSpecial: true });
    const question = [...this.answers.keys()].find((q) => prompt.includes(q));
    let text = question === undefined ? '' : this.answers.get(question)!;
    let finishReason: 'stop' | 'length' = text.length > req.maxTokens ? 'length' : 'stop';
    text = text.slice(0, req.maxTokens);
    for (const s of req.stop) {
      const at = text.indexOf(s);
      if (at >= 0) [text, finishReason] = [text.slice(0, at), 'stop'];
    }
    yield { kind: 'delta', text, logprobs: [] };
    const timings = { queuedMs: 0, prefillMs: 0, decodeMs: 0 };
    yield { kind: 'done', finishReason, promptTokens: req.promptTokens.length, completionTokens: text.length, timings };
  }

  embed(): Promise<Float32Array> {
    return Promise.reject(new Error('not used'));
  }
}

const signal = new AbortController().signal;

describe('evaluation questions through a LoadedModel', () => {
  it('asks with the server chat prompt (BOS first), greedily', async () => {
    const model = new ScriptedModel(new Map([['What is 2 + 3?', '2 + 3 = 5.']]));
    const ids = chatPromptIds(model, 'What is 2 + 3?');
    expect(ids[0]).toBe(BOS);
    expect(model.tokenizer.decode(ids.slice(1))).toBe('<|im_start|>user\nWhat is 2 + 3?<|im_end|>\n<|im_start|>assistant\n');
    await askArithmetic(model, [{ problem: { op: '+', a: 2, b: 3, result: 5 }, question: 'What is 2 + 3?', reference: '2 + 3 = 5.' }], 16, signal);
    const req = model.requests[0]!;
    expect(req.promptTokens).toEqual(ids);
    expect(req.maxTokens).toBe(16);
    expect(req.sampling.temperature).toBe(0);
    expect(req.stop).toEqual([]);
  });

  it('scores definitions, stopping at the example line', async () => {
    const dogRef = 'The word dog (noun): a member of the genus Canis that has been domesticated by man.\nExample: "The dog barked."';
    const model = new ScriptedModel(
      new Map([
        ['What does dog mean?', `${dogRef} and more`],
        ['What does cat mean?', 'The word cat (verb): to run quickly.'],
      ]),
    );
    const items = [
      { word: 'dog', question: 'What does dog mean?', expected: [{ pos: 'noun' as const, definition: 'a member of the genus Canis that has been domesticated by man' }], reference: dogRef },
      { word: 'cat', question: 'What does cat mean?', expected: [{ pos: 'noun' as const, definition: 'feline mammal usually having thick soft fur' }], reference: 'The word cat (noun): feline mammal usually having thick soft fur.' },
    ];
    const rs = await askDefinitions(model, items, 200, signal);
    expect(model.requests.map((r) => r.stop)).toEqual([['\nExample:'], ['\nExample:']]);
    expect(rs[0]).toMatchObject({ got: dogRef.split('\n')[0], recognised: true, exact: true, posExact: true });
    expect(rs[1]).toMatchObject({ recognised: false, exact: false, posExact: false, overlap: 0 });
    expect(summarizeDefinitions(rs)).toEqual({ n: 2, recognised: 0.5, meanOverlap: 0.5, posExact: 0.5, exact: 0.5 });
  });

  it('a truncated definition is scored on what was generated', async () => {
    const ref = 'The word dog (noun): a member of the genus Canis that has been domesticated by man.';
    const model = new ScriptedModel(new Map([['What does dog mean?', ref]]));
    const item = { word: 'dog', question: 'What does dog mean?', expected: [{ pos: 'noun' as const, definition: 'a member of the genus Canis that has been domesticated by man' }], reference: ref };
    const [r] = await askDefinitions(model, [item], 'The word dog (noun): a member of the genus'.length, signal);
    // got {member, genus} of {member, genus, canis, domesticat, man}: F1 = 4/7
    expect(r!.overlap).toBeCloseTo(4 / 7);
    expect(r!.exact).toBe(false);
  });

  it('scores arithmetic per operator', async () => {
    const model = new ScriptedModel(
      new Map([
        ['What is 2 + 3?', '2 + 3 = 5.'],
        ['What is 4 * 3?', '4 * 3 = 13.'],
        ['What is 9 - 4?', '5'],
      ]),
    );
    const rs = await askArithmetic(
      model,
      [
        { problem: { op: '+', a: 2, b: 3, result: 5 }, question: 'What is 2 + 3?', reference: '2 + 3 = 5.' },
        { problem: { op: '*', a: 4, b: 3, result: 12 }, question: 'What is 4 * 3?', reference: '4 * 3 = 12.' },
        { problem: { op: '-', a: 9, b: 4, result: 5 }, question: 'What is 9 - 4?', reference: '9 - 4 = 5.' },
      ],
      16,
      signal,
    );
    expect(rs.map((r) => [r.got, r.correct, r.exact])).toEqual([
      [5, true, true],
      [13, false, false],
      [5, true, false],
    ]);
    const s = summarizeArithmetic(rs);
    expect(s.correct).toBeCloseTo(2 / 3);
    expect(s.exact).toBeCloseTo(1 / 3);
    expect(s.byOp).toEqual({ '+': { n: 1, correct: 1 }, '-': { n: 1, correct: 1 }, '*': { n: 1, correct: 0 } });
  });
});
