/**
 * A fine-tuning job as braid stores it (job.json, record-file.ts) and its
 * events (events.jsonl). The HTTP layer renders these in OpenAI's shapes
 * (server/routes/fine-tuning.ts); nothing here is an HTTP type.
 */
import { z } from 'zod';

export const JOB_STATUSES = ['validating_files', 'queued', 'running', 'succeeded', 'failed', 'cancelled'] as const;
export type JobStatus = (typeof JOB_STATUSES)[number];

export const FINISHED: ReadonlySet<JobStatus> = new Set(['succeeded', 'failed', 'cancelled']);
export const isFinished = (s: JobStatus): boolean => FINISHED.has(s);

export const HyperparametersSchema = z.strictObject({
  n_epochs: z.int().positive(),
  /** Sequences (windows of sequence_length tokens) per optimizer step. */
  batch_size: z.int().positive(),
  learning_rate_multiplier: z.number().positive(),
});
export type Hyperparameters = z.infer<typeof HyperparametersSchema>;

/** supervised: backprop + AdamW. mezo (braid): forward-only zeroth-order steps (NativeTrainer.mezoStep). */
export const JobMethodSchema = z.discriminatedUnion('type', [
  z.strictObject({ type: z.literal('supervised') }),
  z.strictObject({ type: z.literal('mezo'), epsilon: z.number().positive(), sparsity: z.number().min(0).lt(1) }),
]);
export type JobMethod = z.infer<typeof JobMethodSchema>;

export const JobErrorSchema = z.strictObject({ code: z.string(), message: z.string(), param: z.string().nullable() });
export type JobError = z.infer<typeof JobErrorSchema>;

/** Fixed when the job first starts, so a resume after a restart repeats exactly the same run. */
export const JobPlanSchema = z.strictObject({
  total_steps: z.int().positive(),
  warmup: z.int().nonnegative(),
  /** Tokens of one pass over the training file (packed, separators included). */
  epoch_tokens: z.int().positive(),
  tokens_per_step: z.int().positive(),
  learning_rate: z.number().positive(),
  eval_interval: z.int().nonnegative(),
  checkpoint_interval: z.int().nonnegative(),
  config_hash: z.string(),
});
export type JobPlan = z.infer<typeof JobPlanSchema>;

export const JobRecordSchema = z.strictObject({
  id: z.string(),
  /** Creation order, for listing (created_at has one-second ties). */
  seq: z.int().nonnegative(),
  created_at: z.int().nonnegative(),
  /** The base model's id and the GGUF it was served from when the job was created. */
  model: z.string(),
  base_path: z.string(),
  /** The id the trained model will be served under: ft:<base>:<suffix>:<job id>. */
  output_model: z.string(),
  training_file: z.string(),
  validation_file: z.string().nullable(),
  status: z.enum(JOB_STATUSES),
  error: JobErrorSchema.nullable(),
  started_at: z.int().nullable(),
  finished_at: z.int().nullable(),
  hyperparameters: HyperparametersSchema,
  method: JobMethodSchema,
  seed: z.int().nonnegative(),
  suffix: z.string().nullable(),
  metadata: z.record(z.string(), z.string()).nullable(),
  /** braid: tokens per training window. */
  sequence_length: z.int().positive(),
  /** braid: requested intervals (null: chosen from the run length). */
  eval_interval: z.int().positive().nullable(),
  checkpoint_interval: z.int().positive().nullable(),
  plan: JobPlanSchema.nullable(),
  /** Optimizer steps done, as last reported. */
  step: z.int().nonnegative(),
  trained_tokens: z.int().nonnegative().nullable(),
  /** File name of the exported model in <data>/models, once succeeded. */
  model_file: z.string().nullable(),
});
export type JobRecord = z.infer<typeof JobRecordSchema>;

export const JobEventSchema = z.strictObject({
  id: z.string(),
  created_at: z.int().nonnegative(),
  level: z.enum(['info', 'warn', 'error']),
  message: z.string(),
  type: z.enum(['message', 'metrics']),
  /** metrics: {step, total_steps, train_loss | valid_loss, ...}. */
  data: z.record(z.string(), z.union([z.number(), z.string(), z.null()])).nullable(),
});
export type JobEvent = z.infer<typeof JobEventSchema>;
export type EventLevel = JobEvent['level'];

/** A checkpoint of a job's run: from its file's header, or from checkpoints.json once the files are gone (job-store.ts). */
export const JobCheckpointSchema = z.strictObject({
  step: z.int().nonnegative(),
  createdAt: z.int().nonnegative(),
  trainLoss: z.number().nullable(),
  validLoss: z.number().nullable(),
  /** Tokens trained up to this step. */
  tokens: z.int().nonnegative(),
});
export type JobCheckpoint = z.infer<typeof JobCheckpointSchema>;
