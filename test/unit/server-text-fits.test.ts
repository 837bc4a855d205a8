/**
 * A prompt whose bytes alone prove it cannot fit the context is refused
 * before BPE runs on it (server/text-fits.ts): tokenizing megabytes on the
 * event loop held every other request for over a second. A prompt under the
 * bound is still tokenized and measured exactly.
 */
import { describe, expect, it, vi } from 'vitest';
import { errorOf, setup } from './server-test-helpers.ts';

const MODEL = 'fake-model';
const CONTEXT = 64;

function longestTokenBytes(tok: { vocabSize: number; tokenBytes(id: number): Uint8Array }): number {
  let longest = 1;
  for (let id = 0; id < tok.vocabSize; id++) longest = Math.max(longest, tok.tokenBytes(id).length);
  return longest;
}

describe('text that cannot fit the context', () => {
  const cases = [
    ['chat', '/v1/chat/completions', (t: string) => ({ model: MODEL, messages: [{ role: 'user', content: t }] }), 'messages'],
    ['completions', '/v1/completions', (t: string) => ({ model: MODEL, prompt: [t] }), 'prompt[0]'],
    ['embeddings', '/v1/embeddings', (t: string) => ({ model: MODEL, input: t }), 'input'],
  ] as const;

  it.each(cases)('%s: refused with context_length_exceeded without tokenizing it', async (_, path, body, param) => {
    const { post, engine } = setup({ contextLength: CONTEXT });
    const bound = CONTEXT * longestTokenBytes(engine.tokenizer);
    const encode = vi.spyOn(engine.tokenizer, 'encode');
    const res = await post(path, body('a'.repeat(bound + 1)));
    expect(res.status).toBe(400);
    const { error } = await errorOf(res);
    expect(error).toMatchObject({ param, code: 'context_length_exceeded' });
    expect(error.message).toMatch(/maximum context length is 64 tokens/);
    expect(encode.mock.calls.every(([text]) => text.length <= bound)).toBe(true);
  });

  it('text under the bound is tokenized as before (the exact count decides)', async () => {
    const { post, engine } = setup({ contextLength: CONTEXT });
    const encode = vi.spyOn(engine.tokenizer, 'encode');
    const res = await post('/v1/completions', { model: MODEL, prompt: 'a'.repeat(10), max_tokens: 1 });
    expect(res.status).toBe(200);
    expect(encode).toHaveBeenCalled();
  });
});
