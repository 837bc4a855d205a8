/**
 * Acceptance of structured outputs: for every schema of the corpus
 * (test/grammar/schemas.ts), 20 samples at temperature 1.0 from the default
 * model (a 4.7M-parameter model never trained on JSON: only the constraint makes the output valid) must
 * parse and validate with an independent validator (ajv + ajv-formats),
 * including runs cut short by a small max_tokens. Runs go straight through the
 * engine (no HTTP) with short budgets, to keep the suite fast.
 */
import { Ajv2020 } from 'ajv/dist/2020.js';
import addFormatsModule from 'ajv-formats';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createEngine } from '../../engine/engine.ts';
import { jsonSchemaGrammar } from '../../engine/grammar/json-schema.ts';
import { jsonObjectGrammar } from '../../engine/grammar/json-value.ts';
import { compileConstraint } from '../../engine/grammar/matcher.ts';
import type { Engine, GenerationRequest, Grammar, LoadedModel } from '../../engine/types.ts';
import { SCHEMAS } from '../grammar/schemas.ts';

const MODEL = fileURLToPath(new URL('../../models/chimera-tiny.gguf', import.meta.url));
const SAMPLES = 20;
/** Samples per schema run with a budget just above the shortest valid output (cut short). */
const TIGHT = 6;
const ROOMY_MAX_TOKENS = 40;

const addFormats = addFormatsModule as unknown as (ajv: Ajv2020) => Ajv2020;

let engine: Engine;
let model: LoadedModel;
let prompt: number[];

beforeAll(async () => {
  engine = await createEngine({ models: [MODEL], threads: 1 });
  model = engine.models()[0]!;
  const text = model.applyChatTemplate([{ role: 'user', content: 'Reply with JSON.' }], { addGenerationPrompt: true });
  prompt = model.tokenizer.encode(text, { parseSpecial: true });
});

afterAll(async () => {
  await engine?.dispose();
});

/** Tokens in the shortest output the grammar accepts (what the ledger forces when the budget is tight). */
function shortestTokens(grammar: Grammar): number {
  const c = compileConstraint(grammar, model.tokenizer);
  const bytes = c.automaton.shortestCompletion(c.automaton.initial);
  return Math.max(1, model.tokenizer.encode(new TextDecoder().decode(bytes)).length);
}

interface Sample {
  text: string;
  finishReason: string;
  completionTokens: number;
  maxTokens: number;
}

async function sample(grammar: Grammar, seed: number, maxTokens: number): Promise<Sample> {
  const req: GenerationRequest = {
    promptTokens: prompt,
    maxTokens,
    stop: [],
    sampling: { temperature: 1, topP: 1, topK: 0, minP: 0, presencePenalty: 0, frequencyPenalty: 0, repetitionPenalty: 1, logitBias: new Map(), seed },
    topLogprobs: null,
    promptLogprobs: false,
    signal: new AbortController().signal,
    grammar,
  };
  let text = '';
  for await (const ev of model.generate(req)) {
    if (ev.kind === 'delta') text += ev.text;
    else return { text, finishReason: ev.finishReason, completionTokens: ev.completionTokens, maxTokens };
  }
  throw new Error('no done event');
}

describe('structured outputs: json_schema corpus × 20 samples at temperature 1', () => {
  it(`has at least 200 schemas`, () => {
    expect(SCHEMAS.length).toBeGreaterThanOrEqual(200);
  });

  it('every sample of every schema parses and validates (ajv), including runs cut by max_tokens', async () => {
    const ajv = addFormats(new Ajv2020({ strict: false, allErrors: true }));
    const failures: string[] = [];
    let cut = 0;
    let total = 0;
    for (const [si, { name, schema }] of SCHEMAS.entries()) {
      const validate = ajv.compile(schema);
      const grammar = jsonSchemaGrammar(schema);
      const least = shortestTokens(grammar);
      for (let i = 0; i < SAMPLES; i++) {
        const maxTokens = i < TIGHT ? least + i : Math.max(ROOMY_MAX_TOKENS, least + 8);
        const s = await sample(grammar, si * 1000 + i, maxTokens);
        total++;
        if (s.finishReason === 'length') cut++;
        let value: unknown;
        try {
          value = JSON.parse(s.text);
        } catch {
          failures.push(`${name} #${i} (max_tokens ${maxTokens}, ${s.finishReason}): not JSON: ${JSON.stringify(s.text)}`);
          continue;
        }
        if (!validate(value)) failures.push(`${name} #${i}: ${JSON.stringify(s.text)} fails: ${ajv.errorsText(validate.errors)}`);
      }
    }
    expect(failures.slice(0, 20)).toEqual([]);
    expect(total).toBe(SCHEMAS.length * SAMPLES);
    // The tight budgets really cut generations short (the ledger closed them).
    expect(cut).toBeGreaterThan(SCHEMAS.length * 2);
  });

  it('json_object: any JSON object, also when cut at a tiny max_tokens', async () => {
    const grammar = jsonObjectGrammar();
    for (let i = 0; i < 30; i++) {
      const s = await sample(grammar, 7000 + i, 2 + (i % 10) * 3);
      const v: unknown = JSON.parse(s.text);
      expect(typeof v === 'object' && v !== null && !Array.isArray(v), s.text).toBe(true);
    }
  });
});
