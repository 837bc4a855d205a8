/**
 * The official `openai` SDK against a real braid server (real engine, the
 * default model): if these pass, OpenAI clients work unchanged.
 * The model's text is noise, so tests assert structure, determinism and
 * consistency between requests — never particular words.
 */
import OpenAI, { AuthenticationError, BadRequestError, NotFoundError } from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunningServer } from '../../server/serve.ts';
import { banStops, startTestServer } from './harness.ts';

let server: RunningServer;
let client: OpenAI;
let modelId: string;
const messages = [{ role: 'user' as const, content: 'Tell me about the weather.' }];

beforeAll(async () => {
  server = await startTestServer();
  client = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: 'unused', maxRetries: 0, timeout: 60_000 });
  modelId = server.engine.models()[0]!.info.id;
});

afterAll(async () => {
  await server?.close();
});

describe('openai SDK against braid', () => {
  it('models.list and models.retrieve', async () => {
    const page = await client.models.list();
    const ids = page.data.map((m) => m.id);
    expect(ids).toContain('chimera-tiny');
    const model = await client.models.retrieve(modelId);
    expect(model).toMatchObject({ id: modelId, object: 'model', owned_by: 'braid' });
    expect((model as unknown as { braid: { provenance: string } }).braid.provenance).toMatch(/^trained by braid train: default/);
  });

  it('chat.completions.create non-stream', async () => {
    const res = await client.chat.completions.create({ model: modelId, messages, max_tokens: 8, temperature: 0, logit_bias: banStops(server) });
    expect(res.object).toBe('chat.completion');
    expect(res.id).toMatch(/^chatcmpl-/);
    expect(res.choices).toHaveLength(1);
    expect(res.choices[0]!.finish_reason).toBe('length');
    expect(typeof res.choices[0]!.message.content).toBe('string');
    expect(res.usage?.completion_tokens).toBe(8);
    expect(res.usage?.prompt_tokens).toBeGreaterThan(0);
  });

  it('streaming yields the same greedy text as non-streaming', async () => {
    const params = { model: modelId, messages, max_tokens: 12, temperature: 0, logit_bias: banStops(server) };
    const whole = await client.chat.completions.create(params);
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

  it('n=2 returns two indexed choices', async () => {
    const res = await client.chat.completions.create({ model: modelId, messages, max_tokens: 6, n: 2, seed: 3, logit_bias: banStops(server) });
    expect(res.choices.map((c) => c.index)).toEqual([0, 1]);
    expect(res.usage!.completion_tokens).toBe(12);
  });

  it('a fixed seed reproduces the sampled text; other seeds change it', async () => {
    const ask = (seed: number) =>
      client.chat.completions
        .create({ model: modelId, messages, max_tokens: 16, temperature: 1, seed, logit_bias: banStops(server) })
        .then((r) => r.choices[0]!.message.content);
    const a = await ask(1234);
    expect(await ask(1234)).toBe(a);
    const others = [await ask(1), await ask(2), await ask(3)];
    expect(others.some((t) => t !== a)).toBe(true);
  });

  it('stop cuts the greedy text before the first occurrence of the stop string', async () => {
    const params = { model: modelId, messages, max_tokens: 24, temperature: 0, logit_bias: banStops(server) };
    const full = (await client.chat.completions.create(params)).choices[0]!.message.content ?? '';
    expect(full.length).toBeGreaterThanOrEqual(6);
    const stop = full.slice(Math.floor(full.length / 2), Math.floor(full.length / 2) + 2);
    const res = await client.chat.completions.create({ ...params, stop: [stop] });
    expect(res.choices[0]!.message.content).toBe(full.slice(0, full.indexOf(stop)));
    expect(res.choices[0]!.finish_reason).toBe('stop');
  });

  it('logprobs: one entry per token; greedy picks the top alternative', async () => {
    const res = await client.chat.completions.create({
      model: modelId,
      messages,
      max_tokens: 6,
      temperature: 0,
      logprobs: true,
      top_logprobs: 3,
      logit_bias: banStops(server),
    });
    const content = res.choices[0]!.logprobs!.content!;
    expect(content).toHaveLength(6);
    for (const t of content) {
      expect(t.logprob).toBeLessThanOrEqual(0);
      expect(t.top_logprobs).toHaveLength(3);
      const tops = t.top_logprobs.map((a) => a.logprob);
      expect(tops).toEqual([...tops].sort((x, y) => y - x));
      expect(t.top_logprobs[0]!.token).toBe(t.token);
      expect(t.logprob).toBeCloseTo(tops[0]!, 5);
    }
  });

  it('completions with echo + logprobs scores the prompt', async () => {
    const prompt = 'The cat sat on the mat.';
    const res = await client.completions.create({ model: modelId, prompt, max_tokens: 1, echo: true, logprobs: 1, logit_bias: banStops(server) });
    const lp = res.choices[0]!.logprobs!;
    expect(res.choices[0]!.text.startsWith(prompt)).toBe(true);
    const promptCount = lp.tokens!.length - 1; // the last entry is the generated token
    expect(lp.tokens!.slice(0, promptCount).join('')).toBe(prompt);
    expect(lp.text_offset![promptCount]).toBe(prompt.length);
    const scored = lp.token_logprobs!.filter((v): v is number => v !== null);
    expect(scored.length).toBeGreaterThanOrEqual(lp.tokens!.length - 1); // at most the first prompt token is unscored
    expect(scored.every((v) => v <= 0 && Number.isFinite(v))).toBe(true);
    expect(res.usage!.prompt_tokens).toBeGreaterThanOrEqual(promptCount);
  });

  it('max_tokens 0 with echo + logprobs scores the prompt without generating (perplexity)', async () => {
    const prompt = 'The cat sat on the mat.';
    const res = await client.completions.create({ model: modelId, prompt, max_tokens: 0, echo: true, logprobs: 0 });
    const lp = res.choices[0]!.logprobs!;
    expect(res.choices[0]!.text).toBe(prompt);
    expect(res.usage!.completion_tokens).toBe(0);
    expect(lp.tokens!.join('')).toBe(prompt);
    const scored = lp.token_logprobs!.filter((v): v is number => v !== null);
    expect(scored.length).toBeGreaterThanOrEqual(lp.tokens!.length - 1);
    const nll = -scored.reduce((a, b) => a + b, 0) / scored.length;
    expect(Number.isFinite(nll) && nll > 0).toBe(true);
    // Without echo + logprobs, max_tokens 0 asks for nothing and is refused.
    await expect(client.completions.create({ model: modelId, prompt, max_tokens: 0 })).rejects.toBeInstanceOf(BadRequestError);
  });

  it('errors surface as APIError subclasses with the right status', async () => {
    await expect(client.chat.completions.create({ model: 'no-such-model', messages })).rejects.toBeInstanceOf(NotFoundError);
    const bad = await client.chat.completions.create({ model: modelId, messages, n: 99 }).catch((e: unknown) => e);
    expect(bad).toBeInstanceOf(BadRequestError);
    expect((bad as BadRequestError).param).toBe('n');
  });

  it('an API key is enforced (AuthenticationError) and accepted', async () => {
    const keyed = await startTestServer({ apiKey: 'sk-e2e' });
    try {
      const wrong = new OpenAI({ baseURL: `${keyed.url}/v1`, apiKey: 'sk-wrong', maxRetries: 0 });
      await expect(wrong.models.list()).rejects.toBeInstanceOf(AuthenticationError);
      const right = new OpenAI({ baseURL: `${keyed.url}/v1`, apiKey: 'sk-e2e', maxRetries: 0 });
      expect((await right.models.list()).data.length).toBe(1);
    } finally {
      await keyed.close();
    }
  });
});
