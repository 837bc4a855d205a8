/**
 * POST /v1/embeddings in OpenAI's shape. Each input (a string, or a token-id
 * array) becomes one vector: the mean over positions of the model's
 * final-norm hidden state (LoadedModel.embed), scaled to unit L2 length as
 * OpenAI's are (vector stores take dot product for cosine similarity). Text
 * gets BOS like a completion prompt; token arrays are used as given. `encoding_format:
 * "base64"` is the little-endian float32 bytes, base64-encoded, as OpenAI
 * sends them (the official SDKs ask for it by default and decode it).
 */
import { Hono } from 'hono';
import { z } from 'zod';
import type { LoadedModel } from '../../engine/types.ts';
import { invalidRequest } from '../errors.ts';
import { requestAbort } from '../generation.ts';
import { checkTokenIds, textPromptTokens } from '../prompt.ts';
import { checkTextCanFit } from '../text-fits.ts';
import type { AppEnv, Deps } from '../types.ts';
import { readJson, resolveModel } from '../validate.ts';

/** OpenAI's cap on inputs per request. */
const MAX_INPUTS = 2048;

const tokenId = z.int().min(0);

export const embeddingRequestSchema = z.object({
  model: z.string().min(1),
  input: z.union(
    [
      z.string(),
      z.array(z.string()).min(1).max(MAX_INPUTS),
      z.array(tokenId).min(1),
      z.array(z.array(tokenId)).min(1).max(MAX_INPUTS),
    ],
    { error: 'expected a string, an array of strings, an array of token ids or an array of token-id arrays' },
  )
  // Optional only so that a missing input is reported as missing (below), not as a failed union.
  .optional(),
  encoding_format: z.enum(['float', 'base64']).nullish(),
  dimensions: z.int().min(1).nullish(),
  user: z.string().nullish(),
});

export type EmbeddingRequest = z.output<typeof embeddingRequestSchema>;
type EmbeddingInputField = NonNullable<EmbeddingRequest['input']>;

/** One input as token ids, with the param that names it in errors. */
interface EmbeddingInput {
  tokens: number[];
  param: string;
}

function normalizeInputs(model: LoadedModel, input: EmbeddingInputField): EmbeddingInput[] {
  const tok = model.tokenizer;
  const fromText = (text: string, param: string): EmbeddingInput => {
    if (text === '') throw invalidRequest(`Invalid '${param}': the input must not be an empty string.`, param, 'invalid_value');
    checkTextCanFit(tok, [text], model.info.contextLength, param);
    return { tokens: textPromptTokens(tok, text), param };
  };
  const fromIds = (ids: number[], param: string): EmbeddingInput => {
    if (ids.length === 0) throw invalidRequest(`Invalid '${param}': the token array must not be empty.`, param, 'invalid_value');
    checkTokenIds(tok, ids, param);
    return { tokens: ids, param };
  };
  let inputs: EmbeddingInput[];
  if (typeof input === 'string') inputs = [fromText(input, 'input')];
  else if (input.every((p): p is string => typeof p === 'string')) inputs = input.map((s, i) => fromText(s, `input[${i}]`));
  else if (input.every((p): p is number => typeof p === 'number')) inputs = [fromIds(input, 'input')];
  else inputs = (input as number[][]).map((ids, i) => fromIds(ids, `input[${i}]`));

  const limit = model.info.contextLength;
  for (const inp of inputs) {
    if (inp.tokens.length > limit) {
      throw invalidRequest(
        `This model's maximum context length is ${limit} tokens, however you requested ${inp.tokens.length} tokens in '${inp.param}'. Please reduce the input.`,
        inp.param,
        'context_length_exceeded',
      );
    }
  }
  return inputs;
}

/** v scaled to L2 norm 1 (summed in float64); a zero vector has no direction and is returned as is. */
export function unitLength(v: Float32Array): Float32Array {
  let sumSquares = 0;
  for (const x of v) sumSquares += x * x;
  if (sumSquares === 0) return v;
  const norm = Math.sqrt(sumSquares);
  return Float32Array.from(v, (x) => x / norm);
}

/** Little-endian float32 bytes in base64, whatever the host's byte order. */
export function float32Base64(v: Float32Array): string {
  const bytes = new Uint8Array(v.length * 4);
  const view = new DataView(bytes.buffer);
  for (let i = 0; i < v.length; i++) view.setFloat32(i * 4, v[i]!, true);
  return Buffer.from(bytes).toString('base64');
}

export function embeddingRoutes({ engine }: Deps): Hono<AppEnv> {
  return new Hono<AppEnv>().post('/v1/embeddings', async (c) => {
    const body = await readJson(c, embeddingRequestSchema);
    if (body.input === undefined) throw invalidRequest("Missing required parameter: 'input'.", 'input', 'missing_required_parameter');
    const model = resolveModel(engine, body.model);
    const size = model.info.nEmbd;
    if (body.dimensions !== null && body.dimensions !== undefined && body.dimensions !== size) {
      throw invalidRequest(
        `Invalid 'dimensions': ${body.dimensions}. This model's embeddings have ${size} dimensions and cannot be shortened; omit 'dimensions' or send ${size}.`,
        'dimensions',
        'unsupported_parameter',
      );
    }
    const inputs = normalizeInputs(model, body.input);
    const base64 = body.encoding_format === 'base64';
    const abort = requestAbort(c);
    const data: { object: 'embedding'; index: number; embedding: number[] | string }[] = [];
    let promptTokens = 0;
    // One input at a time: each takes a slot like a generation does, so a
    // large batch queues fairly behind (and ahead of) chat requests. Inputs
    // after the first are continuations: admitted with the request, they are
    // never refused as queue_full halfway through the batch.
    for (const [index, inp] of inputs.entries()) {
      const vector = unitLength(await model.embed(inp.tokens, abort.signal, index > 0));
      promptTokens += inp.tokens.length;
      data.push({ object: 'embedding', index, embedding: base64 ? float32Base64(vector) : Array.from(vector) });
    }
    return c.json({
      object: 'list',
      data,
      model: model.info.id,
      usage: { prompt_tokens: promptTokens, total_tokens: promptTokens },
    });
  });
}
