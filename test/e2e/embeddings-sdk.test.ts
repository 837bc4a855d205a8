/**
 * POST /v1/embeddings through the official `openai` SDK against a real braid
 * server (real engine, the default untrained model). The SDK asks for base64
 * unless told otherwise and decodes it to numbers, so both encodings are
 * exercised end to end and must agree exactly.
 */
import OpenAI, { BadRequestError } from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunningServer } from '../../server/serve.ts';
import { startTestServer } from './harness.ts';

let server: RunningServer;
let client: OpenAI;
let modelId: string;
let dim: number;

beforeAll(async () => {
  server = await startTestServer();
  client = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: 'unused', maxRetries: 0, timeout: 60_000 });
  const info = server.engine.models()[0]!.info;
  modelId = info.id;
  dim = info.nEmbd;
});

afterAll(async () => {
  await server?.close();
});

const cosine = (a: number[], b: number[]): number => {
  let ab = 0;
  let aa = 0;
  let bb = 0;
  for (let i = 0; i < a.length; i++) {
    ab += a[i]! * b[i]!;
    aa += a[i]! * a[i]!;
    bb += b[i]! * b[i]!;
  }
  return ab / Math.sqrt(aa * bb);
};

describe('embeddings via the openai SDK', () => {
  it('float and base64 (the SDK default, decoded by it) give the same vectors', async () => {
    const input = ['The weather is nice today.', 'Ternary weights and recurrent state.'];
    const asFloat = await client.embeddings.create({ model: modelId, input, encoding_format: 'float' });
    const asDefault = await client.embeddings.create({ model: modelId, input });
    expect(asFloat.object).toBe('list');
    expect(asFloat.model).toBe(modelId);
    expect(asFloat.data.map((d) => d.index)).toEqual([0, 1]);
    expect(asFloat.usage.prompt_tokens).toBeGreaterThan(4);
    expect(asFloat.usage.total_tokens).toBe(asFloat.usage.prompt_tokens);
    for (const [i, d] of asFloat.data.entries()) {
      expect(d.object).toBe('embedding');
      expect(d.embedding).toHaveLength(dim);
      expect(d.embedding.every((x) => Number.isFinite(x))).toBe(true);
      expect(asDefault.data[i]!.embedding).toEqual(d.embedding);
    }
    // Asked for explicitly, base64 reaches the caller as a string of little-endian float32s.
    const asBase64 = await client.embeddings.create({ model: modelId, input, encoding_format: 'base64' });
    for (const [i, d] of asBase64.data.entries()) {
      const bytes = Buffer.from(d.embedding as unknown as string, 'base64');
      expect(bytes.byteLength).toBe(4 * dim);
      const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
      const decoded = Array.from({ length: dim }, (_, j) => view.getFloat32(4 * j, true));
      expect(decoded).toEqual(asFloat.data[i]!.embedding);
    }
    // Two different texts: different vectors.
    const [a, b] = [asFloat.data[0]!.embedding, asFloat.data[1]!.embedding];
    expect(a).not.toEqual(b);
    expect(cosine(a, b)).toBeLessThan(1 - 1e-6);
  });

  it('the same text gives the same vector, alone or in a batch; tokens give what text gives', async () => {
    const text = 'Hello braid';
    const alone = await client.embeddings.create({ model: modelId, input: text, encoding_format: 'float' });
    const batched = await client.embeddings.create({ model: modelId, input: ['other words', text], encoding_format: 'float' });
    expect(batched.data[1]!.embedding).toEqual(alone.data[0]!.embedding);

    const tokenize = await fetch(`${server.url}/v1/tokenize`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: modelId, text }),
    });
    const { tokens } = (await tokenize.json()) as { tokens: number[] };
    const fromIds = await client.embeddings.create({ model: modelId, input: tokens, encoding_format: 'float' });
    expect(fromIds.data[0]!.embedding).toEqual(alone.data[0]!.embedding);
    expect(fromIds.usage.prompt_tokens).toBe(tokens.length);
  });

  it('a wrong dimensions value is a 400 BadRequestError', async () => {
    const err = await client.embeddings.create({ model: modelId, input: 'x', dimensions: dim + 1 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(BadRequestError);
    expect((err as BadRequestError).param).toBe('dimensions');
    const ok = await client.embeddings.create({ model: modelId, input: 'x', dimensions: dim, encoding_format: 'float' });
    expect(ok.data[0]!.embedding).toHaveLength(dim);
  });
});
