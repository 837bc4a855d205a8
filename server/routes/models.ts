/**
 * GET /v1/models and /v1/models/:id in OpenAI's shape, plus a `braid` field
 * saying where the weights come from (an untrained model says so) and how
 * big the model is.
 */
import { Hono } from 'hono';
import path from 'node:path';
import type { LoadedModel } from '../../engine/types.ts';
import type { AppEnv, Deps } from '../types.ts';
import { resolveModel } from '../validate.ts';

function modelObject(model: LoadedModel) {
  const info = model.info;
  return {
    id: info.id,
    object: 'model' as const,
    created: info.created,
    owned_by: 'braid',
    braid: {
      provenance: info.provenance,
      architecture: info.architecture,
      file: path.basename(info.path),
      context_length: info.contextLength,
      n_vocab: info.nVocab,
      n_embd: info.nEmbd,
      n_layer: info.nLayer,
      tensor_bytes: info.tensorBytes,
    },
  };
}

export function modelRoutes({ engine }: Deps): Hono<AppEnv> {
  return new Hono<AppEnv>()
    .get('/v1/models', (c) => c.json({ object: 'list', data: engine.models().map(modelObject) }))
    .get('/v1/models/:id', (c) => c.json(modelObject(resolveModel(engine, c.req.param('id')))));
}
