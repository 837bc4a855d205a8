/**
 * The one validation wrapper: read the body as JSON, check it with a zod
 * schema, and hand the handler a plain typed value. Unknown fields are
 * dropped silently (zod's default strip), as the OpenAI API ignores them.
 */
import type { Context } from 'hono';
import type { z } from 'zod';
import type { Engine, LoadedModel } from '../engine/types.ts';
import { fromZodError, invalidJson, modelNotFound } from './errors.ts';

export async function readJson<S extends z.ZodType>(c: Context, schema: S): Promise<z.output<S>> {
  const text = await c.req.text();
  if (text.trim() === '') throw invalidJson('the body is empty (expected a JSON object).');
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    throw invalidJson(err instanceof Error ? err.message : 'malformed JSON.');
  }
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
    throw invalidJson('the body must be a JSON object.');
  }
  const parsed = schema.safeParse(raw, { reportInput: true }); // input lets errors tell missing from invalid
  if (!parsed.success) throw fromZodError(parsed.error);
  return parsed.data;
}

export function resolveModel(engine: Engine, id: string): LoadedModel {
  const model = engine.get(id);
  if (model === undefined) throw modelNotFound(id);
  return model;
}
