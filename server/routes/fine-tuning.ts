/**
 * /v1/fine_tuning/jobs in OpenAI's shape: create, list, retrieve, events,
 * cancel, checkpoints. braid extensions (docs/api.md): method type "mezo"
 * (forward-only zeroth-order training) and a `braid` object (sequence_length,
 * eval_interval, checkpoint_interval, weights); job objects carry a `braid`
 * field with the run's progress.
 */
import { Hono } from 'hono';
import { z } from 'zod';
import { pageAfter } from '../../engine/finetune/page.ts';
import type { CreateJobInput, FineTuning } from '../../engine/finetune/service.ts';
import type { JobCheckpoint, JobEvent, JobRecord } from '../../engine/finetune/job-types.ts';
import { ApiError, invalidRequest } from '../errors.ts';
import type { AppEnv } from '../types.ts';
import { readJson } from '../validate.ts';
import { readQuery } from './files.ts';

const auto = <T extends z.ZodType>(t: T) => z.union([z.literal('auto'), t]);

const hyperparameters = z.object({
  n_epochs: auto(z.int().min(1).max(100)).optional(),
  batch_size: auto(z.int().min(1).max(256)).optional(),
  learning_rate_multiplier: auto(z.number().gt(0).max(100)).optional(),
});

const createJobSchema = z.object({
  model: z.string().min(1),
  training_file: z.string().min(1),
  validation_file: z.string().min(1).nullish(),
  hyperparameters: hyperparameters.nullish(),
  method: z
    .object({
      type: z.enum(['supervised', 'mezo', 'dpo', 'reinforcement']),
      supervised: z.object({ hyperparameters: hyperparameters.nullish() }).nullish(),
      mezo: z
        .object({
          hyperparameters: hyperparameters
            .extend({ epsilon: z.number().gt(0).max(1).optional(), sparsity: z.number().min(0).lt(1).optional() })
            .nullish(),
        })
        .nullish(),
    })
    .nullish(),
  seed: z.int().min(0).max(2_147_483_647).nullish(),
  // ':' separates the parts of the model id, so it may not appear in the suffix.
  suffix: z.string().max(64).regex(/^[A-Za-z0-9._-]*$/, { error: 'use letters, digits, ".", "_" and "-" only' }).nullish(),
  metadata: z.record(z.string().max(64), z.string().max(512)).nullish(),
  integrations: z.array(z.unknown()).nullish(),
  braid: z
    .object({
      weights: z.enum(['full', 'adapter']).optional(),
      sequence_length: z.int().min(8).max(8192).optional(),
      eval_interval: z.int().min(1).optional(),
      checkpoint_interval: z.int().min(1).optional(),
    })
    .nullish(),
});

type CreateJobBody = z.output<typeof createJobSchema>;

/** The request as the engine takes it; the parts braid cannot do are 400s here, with their param. */
function toInput(b: CreateJobBody): CreateJobInput {
  const type = b.method?.type ?? 'supervised';
  if (type === 'dpo' || type === 'reinforcement') {
    throw invalidRequest(`Method '${type}' is not supported; use 'supervised' or braid's 'mezo'.`, 'method.type', 'unsupported_value');
  }
  if (b.braid?.weights === 'adapter') {
    throw invalidRequest("braid.weights 'adapter' is not supported yet; use 'full' (the default).", 'braid.weights', 'unsupported_value');
  }
  if ((b.integrations?.length ?? 0) > 0) throw invalidRequest('Integrations are not supported by this server.', 'integrations', 'unsupported_value');
  const fromMethod = type === 'mezo' ? b.method?.mezo?.hyperparameters : b.method?.supervised?.hyperparameters;
  if (b.hyperparameters != null && fromMethod != null) {
    throw invalidRequest(`Give hyperparameters either at the top level or in method.${type}, not both.`, 'hyperparameters', 'invalid_value');
  }
  const hp = fromMethod ?? b.hyperparameters ?? {};
  const mezo = b.method?.mezo?.hyperparameters;
  return {
    model: b.model,
    trainingFile: b.training_file,
    validationFile: b.validation_file ?? null,
    hyperparameters: {
      n_epochs: hp.n_epochs ?? 'auto',
      batch_size: hp.batch_size ?? 'auto',
      learning_rate_multiplier: hp.learning_rate_multiplier ?? 'auto',
    },
    method: type === 'mezo' ? { type, epsilon: mezo?.epsilon ?? null, sparsity: mezo?.sparsity ?? null } : { type },
    seed: b.seed ?? null,
    suffix: b.suffix ? b.suffix : null,
    metadata: b.metadata ?? null,
    sequenceLength: b.braid?.sequence_length ?? null,
    evalInterval: b.braid?.eval_interval ?? null,
    checkpointInterval: b.braid?.checkpoint_interval ?? null,
  };
}

export function jobObject(j: JobRecord) {
  const hp = j.hyperparameters;
  return {
    id: j.id,
    object: 'fine_tuning.job' as const,
    created_at: j.created_at,
    error: j.error,
    fine_tuned_model: j.status === 'succeeded' ? j.output_model : null,
    finished_at: j.finished_at,
    hyperparameters: hp,
    model: j.model,
    organization_id: 'braid',
    result_files: [] as string[],
    seed: j.seed,
    status: j.status,
    trained_tokens: j.trained_tokens,
    training_file: j.training_file,
    validation_file: j.validation_file,
    estimated_finish: null,
    integrations: null,
    metadata: j.metadata,
    user_provided_suffix: j.suffix,
    method:
      j.method.type === 'mezo'
        ? { type: 'mezo' as const, mezo: { hyperparameters: { ...hp, epsilon: j.method.epsilon, sparsity: j.method.sparsity } } }
        : { type: 'supervised' as const, supervised: { hyperparameters: hp } },
    braid: {
      step: j.step,
      total_steps: j.plan?.total_steps ?? null,
      learning_rate: j.plan?.learning_rate ?? null,
      sequence_length: j.sequence_length,
      weights: 'full' as const,
      eval_interval: j.plan?.eval_interval ?? j.eval_interval,
      checkpoint_interval: j.plan?.checkpoint_interval ?? j.checkpoint_interval,
      output_model: j.output_model,
    },
  };
}

function eventObject(e: JobEvent) {
  return { id: e.id, object: 'fine_tuning.job.event' as const, created_at: e.created_at, level: e.level, message: e.message, type: e.type, data: e.data ?? {} };
}

function checkpointObject(j: JobRecord, c: JobCheckpoint) {
  const metrics: Record<string, number> = { step: c.step };
  if (c.trainLoss !== null) metrics.train_loss = c.trainLoss;
  if (c.validLoss !== null) metrics.valid_loss = c.validLoss;
  return {
    id: `ftckpt-${j.id.slice('ftjob-'.length)}-${c.step}`,
    object: 'fine_tuning.job.checkpoint' as const,
    created_at: c.createdAt,
    // A name for the training state at that step; it is not served as a model (docs/api.md).
    fine_tuned_model_checkpoint: `${j.output_model}:ckpt-step-${c.step}`,
    fine_tuning_job_id: j.id,
    metrics,
    step_number: c.step,
  };
}

const pageQuery = (limit: number) => z.object({ after: z.string().optional(), limit: z.coerce.number().int().min(1).max(100).default(limit) });

const jobNotFound = (id: string): ApiError =>
  new ApiError(404, `No such fine-tuning job: ${id}`, 'invalid_request_error', 'fine_tuning_job_id', 'fine_tuning_job_not_found');

export function fineTuningRoutes(ft: FineTuning): Hono<AppEnv> {
  const found = (id: string): JobRecord => {
    const j = ft.jobs.get(id);
    if (j === undefined) throw jobNotFound(id);
    return j;
  };
  const list = <T extends { id: string }, U>(items: readonly T[], q: { after?: string | undefined; limit: number }, render: (x: T) => U) => {
    const page = pageAfter(items, q.after, q.limit);
    return { object: 'list' as const, data: page.data.map(render), has_more: page.has_more };
  };
  return new Hono<AppEnv>()
    .post('/v1/fine_tuning/jobs', async (c) => c.json(jobObject(await ft.createJob(toInput(await readJson(c, createJobSchema))))))
    .get('/v1/fine_tuning/jobs', (c) => c.json(list(ft.jobs.list(), readQuery(c, pageQuery(20)), jobObject)))
    .get('/v1/fine_tuning/jobs/:id', (c) => c.json(jobObject(found(c.req.param('id')))))
    .get('/v1/fine_tuning/jobs/:id/events', (c) => {
      const job = found(c.req.param('id'));
      // Newest first, as OpenAI lists them.
      return c.json(list([...ft.jobs.events(job.id)].reverse(), readQuery(c, pageQuery(20)), eventObject));
    })
    .get('/v1/fine_tuning/jobs/:id/checkpoints', async (c) => {
      const job = found(c.req.param('id'));
      const q = readQuery(c, pageQuery(10));
      const items = (await ft.jobs.checkpoints(job.id)).map((cp) => checkpointObject(job, cp));
      return c.json(list(items, q, (x) => x));
    })
    .post('/v1/fine_tuning/jobs/:id/cancel', async (c) => {
      const id = c.req.param('id');
      const r = await ft.cancelJob(id);
      if (r.ok) return c.json(jobObject(r.job));
      if (r.reason === 'not_found') throw jobNotFound(id);
      const status = r.reason === 'finishing' ? 'finished training and is being exported' : `already ${r.job?.status ?? 'finished'}`;
      throw new ApiError(409, `The job ${id} has ${status}; only unfinished jobs can be cancelled.`, 'invalid_request_error', null, 'job_not_cancellable');
    });
}
