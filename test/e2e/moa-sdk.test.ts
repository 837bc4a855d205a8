/**
 * A MoA model served next to the default Chimera model, driven by the official `openai` SDK:
 * a synthetic HF MoA folder (scripts/reference/make-hf-checkpoint.ts, GPT-2-style byte-level
 * BPE tokenizer) converted with `braid convert`'s engine entry, then every endpoint — models,
 * chat (stream and not), completions (echo + logprobs, perplexity), logprobs, embeddings,
 * structured outputs and tool calls — plus the context limit: a request that cannot fit in
 * max_position_embeddings is a 400 `context_length_exceeded`, and a generation without
 * max_tokens stops with finish_reason "length" exactly when the context is full.
 * The model is random, so the assertions are about structure, determinism and consistency.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import OpenAI, { BadRequestError } from 'openai';
import { zodFunction, zodResponseFormat } from 'openai/helpers/zod';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { convertHfFolder } from '../../engine/convert/convert.ts';
import type { RunningServer } from '../../server/serve.ts';
import { writeMoaHfFolder } from '../../scripts/reference/make-hf-checkpoint.ts';
import { MODEL_PATH, startTestServer } from './harness.ts';

const MODEL = 'moa-synthetic';
const MAX_POS = 1024; // room for the tools system block (~600 byte-level tokens) and a call
let dir: string;
let server: RunningServer;
let client: OpenAI;
let banStops: Record<string, number>;
const messages = [{ role: 'user' as const, content: 'Tell me about the weather.' }];

beforeAll(async () => {
  dir = mkdtempSync(path.join(tmpdir(), 'braid-e2e-moa-'));
  writeMoaHfFolder(path.join(dir, 'hf'), { metric: 'maha_diag', maxPos: MAX_POS, seed: 21 });
  const gguf = path.join(dir, `${MODEL}.gguf`);
  await convertHfFolder({ input: path.join(dir, 'hf'), output: gguf, name: MODEL });
  server = await startTestServer({ models: [MODEL_PATH, gguf] });
  client = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: 'unused', maxRetries: 0, timeout: 60_000 });
  const moa = server.engine.get(MODEL)!;
  banStops = Object.fromEntries([...moa.tokenizer.stopIds].map((id) => [String(id), -100]));
}, 60_000);

afterAll(async () => {
  await server?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('a converted MoA model through the openai SDK', () => {
  it('models.list shows it beside the Chimera model, with its architecture and context length', async () => {
    const page = await client.models.list();
    expect(page.data.map((m) => m.id).sort()).toEqual(['chimera-tiny', MODEL]);
    const m = (await client.models.retrieve(MODEL)) as unknown as { id: string; braid: Record<string, unknown> };
    expect(m.id).toBe(MODEL);
    expect(m.braid).toMatchObject({ architecture: 'moa', context_length: MAX_POS, n_vocab: 288, n_embd: 32, n_layer: 2 });
  });

  it('chat completions: non-stream and stream give the same greedy text', async () => {
    const params = { model: MODEL, messages, max_tokens: 12, temperature: 0, logit_bias: banStops };
    const whole = await client.chat.completions.create(params);
    expect(whole.object).toBe('chat.completion');
    expect(whole.choices[0]!.finish_reason).toBe('length');
    expect(whole.usage?.completion_tokens).toBe(12);
    // the plain transcript template: "User: <content>\n\nAssistant:", one byte-level token or so per char
    expect(whole.usage?.prompt_tokens).toBeGreaterThan(20);
    const stream = await client.chat.completions.create({ ...params, stream: true, stream_options: { include_usage: true } });
    let text = '';
    let finish: string | null = null;
    let usage: OpenAI.CompletionUsage | null | undefined;
    for await (const chunk of stream) {
      text += chunk.choices[0]?.delta?.content ?? '';
      finish = chunk.choices[0]?.finish_reason ?? finish;
      if (chunk.usage) usage = chunk.usage;
    }
    expect(text).toBe(whole.choices[0]!.message.content);
    expect(finish).toBe('length');
    expect(usage).toMatchObject({ completion_tokens: 12, prompt_tokens: whole.usage!.prompt_tokens });
  });

  it('a fixed seed reproduces sampled text', async () => {
    const ask = (seed: number) =>
      client.chat.completions
        .create({ model: MODEL, messages, max_tokens: 16, temperature: 1, seed, logit_bias: banStops })
        .then((r) => r.choices[0]!.message.content);
    const a = await ask(77);
    expect(await ask(77)).toBe(a);
    expect([await ask(1), await ask(2), await ask(3)].some((t) => t !== a)).toBe(true);
  });

  it('logprobs: one entry per token, greedy picks the top alternative', async () => {
    const res = await client.chat.completions.create({
      model: MODEL,
      messages,
      max_tokens: 6,
      temperature: 0,
      logprobs: true,
      top_logprobs: 3,
      logit_bias: banStops,
    });
    const content = res.choices[0]!.logprobs!.content!;
    expect(content).toHaveLength(6);
    for (const t of content) {
      const tops = t.top_logprobs.map((a) => a.logprob);
      expect(tops).toEqual([...tops].sort((x, y) => y - x));
      expect(t.top_logprobs[0]!.token).toBe(t.token);
      expect(t.logprob).toBeCloseTo(tops[0]!, 5);
      expect(t.logprob).toBeLessThanOrEqual(0);
    }
  });

  it('completions: echo + logprobs scores the prompt; max_tokens 0 is perplexity', async () => {
    const prompt = 'The cat sat on the mat.';
    const res = await client.completions.create({ model: MODEL, prompt, max_tokens: 0, echo: true, logprobs: 0 });
    expect(res.choices[0]!.text).toBe(prompt);
    const lp = res.choices[0]!.logprobs!;
    expect(lp.tokens!.join('')).toBe(prompt);
    const scored = lp.token_logprobs!.filter((v): v is number => v !== null);
    expect(scored.length).toBe(lp.tokens!.length - 1);
    expect(scored.every((v) => v <= 0 && Number.isFinite(v))).toBe(true);
    const gen = await client.completions.create({ model: MODEL, prompt, max_tokens: 5, temperature: 0, logit_bias: banStops });
    expect(gen.choices[0]!.finish_reason).toBe('length');
    expect(gen.usage!.completion_tokens).toBe(5);
  });

  it('embeddings: one vector of n_embd per input, deterministic, batch == single', async () => {
    const input = ['The weather is nice today.', 'Metric attention.'];
    const batch = await client.embeddings.create({ model: MODEL, input, encoding_format: 'float' });
    expect(batch.data).toHaveLength(2);
    for (const d of batch.data) {
      expect(d.embedding).toHaveLength(32);
      expect(d.embedding.every(Number.isFinite)).toBe(true);
    }
    expect(batch.data[0]!.embedding).not.toEqual(batch.data[1]!.embedding);
    const single = await client.embeddings.create({ model: MODEL, input: input[1]!, encoding_format: 'float' });
    expect(single.data[0]!.embedding).toEqual(batch.data[1]!.embedding);
  });

  it('structured output: parse with zodResponseFormat returns a valid object', async () => {
    const Event = z.object({ name: z.string().max(12), day: z.enum(['mon', 'tue']), priority: z.number().int().min(1).max(5) });
    for (const seed of [0, 1]) {
      const res = await client.chat.completions.parse({
        model: MODEL,
        messages: [{ role: 'user', content: 'Extract the event.' }],
        response_format: zodResponseFormat(Event, 'event'),
        max_tokens: 120,
        seed,
      });
      expect(Event.safeParse(res.choices[0]!.message.parsed).success).toBe(true);
    }
  });

  it('tool calls: parse with a zodFunction tool gives valid parsed arguments', async () => {
    const Weather = z.object({ city: z.string().max(12), unit: z.enum(['c', 'f']) });
    const res = await client.chat.completions.parse({
      model: MODEL,
      messages: [{ role: 'user', content: 'Weather in Oslo?' }],
      tools: [zodFunction({ name: 'get_weather', parameters: Weather })],
      tool_choice: 'required',
      parallel_tool_calls: false,
      max_tokens: 120,
      seed: 4,
    });
    const choice = res.choices[0]!;
    expect(choice.finish_reason).toBe('tool_calls');
    expect(choice.message.tool_calls).toHaveLength(1);
    expect(choice.message.tool_calls![0]!.function.name).toBe('get_weather');
    expect(Weather.safeParse(choice.message.tool_calls![0]!.function.parsed_arguments).success).toBe(true);
  });

  it('prompt + max_tokens beyond max_position_embeddings is a 400 context_length_exceeded', async () => {
    const long = 'x'.repeat(MAX_POS - 40); // byte-level: about one token per character
    const err = await client.completions.create({ model: MODEL, prompt: long, max_tokens: 100 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(BadRequestError);
    expect((err as BadRequestError).status).toBe(400);
    expect((err as BadRequestError).code).toBe('context_length_exceeded');
    expect((err as BadRequestError).message).toMatch(new RegExp(`maximum context length is ${MAX_POS} tokens`));
    const tooLong = 'x'.repeat(MAX_POS + 10);
    const chatErr = await client.chat.completions.create({ model: MODEL, messages: [{ role: 'user', content: tooLong }] }).catch((e: unknown) => e);
    expect((chatErr as BadRequestError).code).toBe('context_length_exceeded');
    expect((chatErr as BadRequestError).param).toBe('messages'); // the prompt alone fills the context
    const embErr = await client.embeddings.create({ model: MODEL, input: tooLong }).catch((e: unknown) => e);
    expect((embErr as BadRequestError).status).toBe(400);
    expect((embErr as BadRequestError).code).toBe('context_length_exceeded');
  });

  it('chat without max_tokens stops with finish_reason length exactly when the context is full', async () => {
    // (legacy completions default to max_tokens 16, as OpenAI's do; chat defaults to the room left)
    const content = 'y'.repeat(MAX_POS - 60);
    const res = await client.chat.completions.create({ model: MODEL, messages: [{ role: 'user', content }], temperature: 0, logit_bias: banStops });
    expect(res.choices[0]!.finish_reason).toBe('length');
    expect(res.usage!.completion_tokens).toBeGreaterThan(0);
    expect(res.usage!.prompt_tokens + res.usage!.completion_tokens).toBe(MAX_POS);
  });
});
