import { describe, expect, it } from 'vitest';
import { float32Base64, unitLength } from '../../server/routes/embeddings.ts';
import { BOS } from './fake-engine.ts';
import { errorOf, setup } from './server-test-helpers.ts';

const MODEL = 'fake-model';
const DIM = 8; // the fake engine's nEmbd

interface EmbeddingList {
  object: string;
  data: { object: string; index: number; embedding: number[] | string }[];
  model: string;
  usage: { prompt_tokens: number; total_tokens: number };
}

async function embeddings(post: ReturnType<typeof setup>['post'], body: Record<string, unknown>): Promise<EmbeddingList> {
  const res = await post('/v1/embeddings', { model: MODEL, ...body });
  if (res.status !== 200) throw new Error(`status ${res.status}: ${await res.text()}`);
  return (await res.json()) as EmbeddingList;
}

function decodeBase64(s: string): Float32Array {
  const bytes = Buffer.from(s, 'base64');
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  return Float32Array.from({ length: bytes.byteLength / 4 }, (_, i) => view.getFloat32(i * 4, true));
}

describe('POST /v1/embeddings', () => {
  it('returns the OpenAI list shape for a string; text gets BOS, usage counts tokens', async () => {
    const { post, engine } = setup();
    const body = await embeddings(post, { input: 'hello' });
    expect(body).toMatchObject({ object: 'list', model: MODEL, usage: { prompt_tokens: 6, total_tokens: 6 } });
    expect(body.data).toHaveLength(1);
    expect(body.data[0]).toMatchObject({ object: 'embedding', index: 0 });
    const v = body.data[0]!.embedding as number[];
    expect(v).toHaveLength(DIM);
    expect(v.every((x) => Number.isFinite(x))).toBe(true);
    expect(engine.embedRequests).toEqual([[BOS, ...Buffer.from('hello')]]);
  });

  it('accepts string[], token ids and token-id arrays, in order', async () => {
    const { post, engine } = setup();
    const many = await embeddings(post, { input: ['a', 'bc', 'a'] });
    expect(many.data.map((d) => d.index)).toEqual([0, 1, 2]);
    expect(many.usage.prompt_tokens).toBe(2 + 3 + 2);
    expect(many.data[0]!.embedding).toEqual(many.data[2]!.embedding); // same text, same vector
    expect(many.data[0]!.embedding).not.toEqual(many.data[1]!.embedding);

    engine.embedRequests.length = 0;
    const ids = await embeddings(post, { input: [104, 105] });
    expect(ids.data).toHaveLength(1);
    expect(engine.embedRequests).toEqual([[104, 105]]); // token input is used as given
    const lists = await embeddings(post, { input: [[104], [105, 106, 107]] });
    expect(lists.data).toHaveLength(2);
    expect(lists.usage).toEqual({ prompt_tokens: 4, total_tokens: 4 });
    expect(engine.embedRequests.slice(1)).toEqual([[104], [105, 106, 107]]);
  });

  it('base64 is the little-endian float32 bytes of the float vector', async () => {
    const { post } = setup();
    const asFloat = await embeddings(post, { input: ['x y z', 'q'], encoding_format: 'float' });
    const asB64 = await embeddings(post, { input: ['x y z', 'q'], encoding_format: 'base64' });
    for (const i of [0, 1]) {
      const s = asB64.data[i]!.embedding;
      expect(typeof s).toBe('string');
      expect(Array.from(decodeBase64(s as string))).toEqual(asFloat.data[i]!.embedding);
    }
    expect(float32Base64(Float32Array.of(1, -2.5))).toBe(Buffer.from([0, 0, 0x80, 0x3f, 0, 0, 0x20, 0xc0]).toString('base64'));
  });

  it('vectors are L2-normalised (norm 1 within 1e-5) in both encodings; a zero vector stays zero', async () => {
    const { post } = setup();
    const norm = (v: ArrayLike<number>): number => Math.sqrt(Array.from(v).reduce((s, x) => s + x * x, 0));
    const inputs = ['hello', 'a much longer input with many words in it', 'q'];
    const asFloat = await embeddings(post, { input: inputs });
    const asB64 = await embeddings(post, { input: inputs, encoding_format: 'base64' });
    for (const i of inputs.keys()) {
      expect(Math.abs(norm(asFloat.data[i]!.embedding as number[]) - 1)).toBeLessThan(1e-5);
      expect(Math.abs(norm(decodeBase64(asB64.data[i]!.embedding as string)) - 1)).toBeLessThan(1e-5);
    }
    expect(Array.from(unitLength(new Float32Array(3)))).toEqual([0, 0, 0]);
    expect(Array.from(unitLength(Float32Array.of(3, 4)))).toEqual([Math.fround(0.6), Math.fround(0.8)]);
  });

  it('dimensions equal to the model size is accepted, any other value is a 400', async () => {
    const { post } = setup();
    expect((await embeddings(post, { input: 'a', dimensions: DIM })).data[0]!.embedding).toHaveLength(DIM);
    const res = await post('/v1/embeddings', { model: MODEL, input: 'a', dimensions: 4 });
    expect(res.status).toBe(400);
    const err = await errorOf(res);
    expect(err.error).toMatchObject({ type: 'invalid_request_error', param: 'dimensions', code: 'unsupported_parameter' });
    expect(err.error.message).toContain(`${DIM} dimensions`);
  });

  it('user is accepted and ignored', async () => {
    const { post } = setup();
    const a = await embeddings(post, { input: 'abc' });
    const b = await embeddings(post, { input: 'abc', user: 'someone' });
    expect(b.data).toEqual(a.data);
  });

  it('rejects empty input, bad token ids, too-long input and bad fields with the OpenAI envelope', async () => {
    const { post, engine } = setup({ contextLength: 16 });
    const cases: [Record<string, unknown>, string | null, string | null][] = [
      [{ input: '' }, 'input', 'invalid_value'],
      [{ input: ['ok', ''] }, 'input[1]', 'invalid_value'],
      [{ input: [] }, 'input', null],
      [{ input: [[1], []] }, 'input[1]', 'invalid_value'],
      [{ input: [1, 999] }, 'input', 'invalid_token_id'],
      [{ input: [[1], [2, 300000]] }, 'input[1]', 'invalid_token_id'],
      [{ input: [-1] }, 'input[0]', null],
      [{ input: 'x'.repeat(40) }, 'input', 'context_length_exceeded'],
      [{ input: ['ok', 'y'.repeat(40)] }, 'input[1]', 'context_length_exceeded'],
      [{ input: 'a', encoding_format: 'int8' }, 'encoding_format', 'invalid_value'],
      [{ input: 42 }, 'input', null],
    ];
    for (const [body, param, code] of cases) {
      const res = await post('/v1/embeddings', { model: MODEL, ...body });
      expect(res.status, JSON.stringify(body)).toBe(400);
      const err = await errorOf(res);
      expect(err.error.type).toBe('invalid_request_error');
      if (param !== null) expect(err.error.param, JSON.stringify(body)).toBe(param);
      else expect(err.error.param ?? '', JSON.stringify(body)).toMatch(/^input/);
      if (code !== null) expect(err.error.code, JSON.stringify(body)).toBe(code);
      expect(err.error.message.length).toBeGreaterThan(10);
    }
    expect(engine.embedRequests).toEqual([]); // every check happens before any compute

    const missing = await post('/v1/embeddings', { model: MODEL });
    expect(missing.status).toBe(400);
    expect((await errorOf(missing)).error).toMatchObject({ param: 'input', code: 'missing_required_parameter' });
    const unknown = await post('/v1/embeddings', { model: 'nope', input: 'a' });
    expect(unknown.status).toBe(404);
    expect((await errorOf(unknown)).error.code).toBe('model_not_found');
  });

  it('GET is a 405 with Allow: POST', async () => {
    const { get } = setup();
    const res = await get('/v1/embeddings');
    expect(res.status).toBe(405);
    expect(res.headers.get('allow')).toBe('POST');
  });
});
