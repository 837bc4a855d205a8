import { describe, expect, it } from 'vitest';
import { BOS } from './fake-engine.ts';
import { errorOf, setup, sseChunks } from './server-test-helpers.ts';

const MODEL = 'fake-model';

describe('POST /v1/completions', () => {
  it('returns the text_completion shape with the default of 16 tokens', async () => {
    const { post, engine } = setup();
    const res = await post('/v1/completions', { model: MODEL, prompt: 'Once upon' });
    expect(res.status).toBe(200);
    const body = await res.json();
    expect(body).toMatchObject({ object: 'text_completion', model: MODEL, choices: [{ index: 0, logprobs: null, finish_reason: 'length' }] });
    expect(body.id).toMatch(/^cmpl-/);
    expect(body.choices[0].text).toHaveLength(16);
    expect(engine.requests[0]!.promptTokens).toEqual([BOS, ...Buffer.from('Once upon')]);
    expect(body.usage).toEqual({ prompt_tokens: 10, completion_tokens: 16, total_tokens: 26 });
  });

  it('accepts string, string[], token ids and token-id arrays; indexes choices prompt * n + i', async () => {
    const { post, engine } = setup({ script: (req) => `p${req.promptTokens.length}s${req.sampling.seed}` });
    const many = await (await post('/v1/completions', { model: MODEL, prompt: ['ab', 'abcd'], n: 2, seed: 5 })).json();
    expect(many.choices.map((c: { index: number; text: string }) => [c.index, c.text])).toEqual([
      [0, 'p3s5'],
      [1, 'p3s6'],
      [2, 'p5s5'],
      [3, 'p5s6'],
    ]);
    expect(many.usage.prompt_tokens).toBe(3 + 5);

    engine.requests.length = 0;
    const ids = await (await post('/v1/completions', { model: MODEL, prompt: [104, 105] })).json();
    expect(ids.choices).toHaveLength(1);
    expect(engine.requests[0]!.promptTokens).toEqual([104, 105]); // token prompts are used as given

    const idLists = await (await post('/v1/completions', { model: MODEL, prompt: [[104], [105, 106, 107]] })).json();
    expect(idLists.choices.map((c: { text: string }) => c.text)).toEqual(['p1sundefined', 'p3sundefined']);
  });

  it('echo prepends the prompt text', async () => {
    const { post } = setup({ script: () => ' world' });
    const body = await (await post('/v1/completions', { model: MODEL, prompt: 'hello', echo: true })).json();
    expect(body.choices[0].text).toBe('hello world');
  });

  it('legacy logprobs: parallel arrays, offsets after the prompt without echo', async () => {
    const { post } = setup({ script: () => 'xyz' });
    const body = await (await post('/v1/completions', { model: MODEL, prompt: 'abcd', logprobs: 2 })).json();
    const lp = body.choices[0].logprobs;
    expect(lp.tokens).toEqual(['x', 'y', 'z']);
    expect(lp.token_logprobs).toHaveLength(3);
    expect(lp.token_logprobs.every((v: number) => v <= 0)).toBe(true);
    expect(lp.text_offset).toEqual([4, 5, 6]);
    expect(lp.top_logprobs).toHaveLength(3);
    expect(Object.keys(lp.top_logprobs[0])).toHaveLength(2);
  });

  it('echo + logprobs scores the prompt: first token null for a token prompt, offsets from 0', async () => {
    const { post, engine } = setup({ script: () => 'Z' });
    const body = await (await post('/v1/completions', { model: MODEL, prompt: [97, 98, 99], echo: true, logprobs: 0, max_tokens: 1 })).json();
    expect(engine.requests[0]!.promptLogprobs).toBe(true);
    const lp = body.choices[0].logprobs;
    expect(body.choices[0].text).toBe('abcZ');
    expect(lp.tokens).toEqual(['a', 'b', 'c', 'Z']);
    expect(lp.token_logprobs[0]).toBeNull();
    expect(lp.top_logprobs[0]).toBeNull();
    expect(lp.token_logprobs.slice(1).every((v: number) => typeof v === 'number')).toBe(true);
    expect(lp.text_offset).toEqual([0, 1, 2, 3]);
  });

  it('echo + logprobs on a text prompt does not echo the BOS the server added', async () => {
    const { post } = setup({ script: () => '' });
    const body = await (await post('/v1/completions', { model: MODEL, prompt: 'hi', echo: true, logprobs: 1, max_tokens: 0 })).json();
    const lp = body.choices[0].logprobs;
    expect(body.choices[0].text).toBe('hi');
    expect(lp.tokens).toEqual(['h', 'i']);
    // "h" is scored given BOS, so it has a real logprob.
    expect(typeof lp.token_logprobs[0]).toBe('number');
    expect(body.usage.completion_tokens).toBe(0);
  });

  it.each([
    [{ suffix: 'tail' }, 'suffix', /not supported/],
    [{ best_of: 3, n: 2 }, 'best_of', /equal to 'n'/],
    [{ logprobs: 6 }, 'logprobs', /at most 5/],
    [{ prompt: [] }, 'prompt', /at least 1 item\b/],
    [{ prompt: [1, 'a'] }, 'prompt[0]', /expected string, received number/], // mixed arrays match no form
    [{ prompt: [300] }, 'prompt', /outside the vocabulary/],
    [{ prompt: [[1], [2, 999]] }, 'prompt[1]', /outside the vocabulary/],
    [{ max_tokens: -1 }, 'max_tokens', /at least 0/],
    [{ stream: true, echo: true, logprobs: 1 }, 'echo', /not supported when streaming/],
  ])('rejects %j with param %s', async (patch, param, message) => {
    const { post } = setup();
    const res = await post('/v1/completions', { model: MODEL, prompt: 'x', ...patch });
    expect(res.status).toBe(400);
    const { error } = await errorOf(res);
    expect(error.param).toBe(param);
    expect(error.message).toMatch(message);
  });

  it('accepts best_of equal to n and an empty suffix', async () => {
    const { post } = setup({ script: () => 'k' });
    const res = await post('/v1/completions', { model: MODEL, prompt: 'x', best_of: 2, n: 2, suffix: '' });
    expect(res.status).toBe(200);
    expect((await res.json()).choices).toHaveLength(2);
  });

  it('streams text_completion chunks with echo first, finish chunk, include_usage, [DONE]', async () => {
    const { post } = setup({ script: () => 'abc' });
    const res = await post('/v1/completions', {
      model: MODEL,
      prompt: 'P:',
      echo: true,
      stream: true,
      stream_options: { include_usage: true },
    });
    const chunks = await sseChunks(res);
    expect(chunks.every((c) => c['object'] === 'text_completion')).toBe(true);
    const choices = chunks.flatMap((c) => c['choices'] as { text: string; index: number; finish_reason: string | null }[]);
    expect(choices[0]!.text).toBe('P:');
    expect(choices.map((c) => c.text).join('')).toBe('P:abc');
    expect(choices.at(-1)!.finish_reason).toBe('stop');
    const last = chunks.at(-1)!;
    expect(last['choices']).toEqual([]);
    expect(last['usage']).toEqual({ prompt_tokens: 3, completion_tokens: 3, total_tokens: 6 });
  });

  it('streams legacy logprobs per chunk with running offsets', async () => {
    const { post } = setup({ script: () => 'xy' });
    const chunks = await sseChunks(await post('/v1/completions', { model: MODEL, prompt: 'ab', logprobs: 1, stream: true }));
    const withLp = chunks
      .flatMap((c) => c['choices'] as { logprobs: { tokens: string[]; text_offset: number[] } | null }[])
      .filter((c) => c.logprobs !== null);
    expect(withLp.flatMap((c) => c.logprobs!.tokens)).toEqual(['x', 'y']);
    expect(withLp.flatMap((c) => c.logprobs!.text_offset)).toEqual([2, 3]);
  });
});

describe('entropy-valve mode (Parcae looping models)', () => {
  it('passes mode to the engine on both endpoints and rejects unknown modes with 400', async () => {
    const { post, engine } = setup();
    expect((await post('/v1/completions', { model: MODEL, prompt: 'a', max_tokens: 2, mode: 'reasoning' })).status).toBe(200);
    expect(engine.requests[0]!.mode).toBe('reasoning');
    const chat = await post('/v1/chat/completions', { model: MODEL, messages: [{ role: 'user', content: 'hi' }], max_tokens: 2, mode: 'fast' });
    expect(chat.status).toBe(200);
    expect(engine.requests[1]!.mode).toBe('fast');
    expect((await post('/v1/completions', { model: MODEL, prompt: 'a', max_tokens: 2 })).status).toBe(200);
    expect(engine.requests[2]!.mode).toBeUndefined(); // the engine applies the default (balanced)
    for (const path of ['/v1/completions', '/v1/chat/completions']) {
      const res = await post(path, { model: MODEL, prompt: 'a', messages: [{ role: 'user', content: 'hi' }], mode: 'turbo' });
      expect(res.status).toBe(400);
      const { error } = await errorOf(res);
      expect(error.param).toBe('mode');
      expect(error.type).toBe('invalid_request_error');
    }
  });

  it('usage.braid_mean_loops only for looping models: completion-weighted over choices, streamed too', async () => {
    const plain = setup();
    const u0 = (await (await plain.post('/v1/completions', { model: MODEL, prompt: 'a', max_tokens: 3 })).json()).usage;
    expect(u0).not.toHaveProperty('braid_mean_loops');

    const { post } = setup({
      script: (req) => (req.sampling.seed === 1 ? 'x' : 'xyz'),
      meanLoops: (req) => (req.sampling.seed === 1 ? 4 : 2),
    });
    const body = await (await post('/v1/completions', { model: MODEL, prompt: 'a', n: 2, seed: 1, max_tokens: 8, mode: 'reasoning' })).json();
    // choice 0: 'x' = 1 token at 4 loops, choice 1: 'xyz' = 3 tokens at 2 loops → (4 + 6) / 4
    expect(body.usage.completion_tokens).toBe(4);
    expect(body.usage.braid_mean_loops).toBeCloseTo(2.5, 12);
    const chat = await post('/v1/chat/completions', {
      model: MODEL,
      messages: [{ role: 'user', content: 'hi' }],
      seed: 1,
      stream: true,
      stream_options: { include_usage: true },
    });
    const chunks = await sseChunks(chat);
    const last = chunks.at(-1) as { usage: { braid_mean_loops?: number } };
    expect(last.usage.braid_mean_loops).toBe(4);
  });
});
