/**
 * POST /v1/tokenize and /v1/detokenize (vLLM / llama.cpp style extensions).
 * Messages are tokenized exactly as a chat completion would tokenize them,
 * so `count` equals that request's prompt_tokens.
 */
import { Hono } from 'hono';
import { invalidRequest } from '../errors.ts';
import { chatPromptTokens, checkTokenIds, textPromptTokens } from '../prompt.ts';
import { detokenizeRequestSchema, tokenizeRequestSchema } from '../schemas.ts';
import type { AppEnv, Deps } from '../types.ts';
import { readJson, resolveModel } from '../validate.ts';

export function tokenizeRoutes({ engine }: Deps): Hono<AppEnv> {
  return new Hono<AppEnv>()
    .post('/v1/tokenize', async (c) => {
      const body = await readJson(c, tokenizeRequestSchema);
      const model = resolveModel(engine, body.model);
      const hasText = body.text !== null && body.text !== undefined;
      const hasMessages = body.messages !== null && body.messages !== undefined;
      if (hasText === hasMessages) throw invalidRequest("Provide exactly one of 'text' or 'messages'.", hasText ? 'messages' : 'text');
      const tokens = hasMessages
        ? chatPromptTokens(model, body.messages ?? [], body.add_generation_prompt ?? true)
        : textPromptTokens(model.tokenizer, body.text ?? '', body.add_special ?? true);
      return c.json({ tokens, count: tokens.length });
    })
    .post('/v1/detokenize', async (c) => {
      const body = await readJson(c, detokenizeRequestSchema);
      const model = resolveModel(engine, body.model);
      checkTokenIds(model.tokenizer, body.tokens, 'tokens');
      return c.json({ text: model.tokenizer.decode(body.tokens) });
    });
}
