/**
 * Stand-ins the fine-tuning tests build by hand: a job record with every
 * field filled (a test patches what it is about), and a checkpoint file of
 * the shape the training loop writes, with a small fake trainer state.
 */
import { mkdirSync } from 'node:fs';
import type { JobRecord } from '../../engine/finetune/job-types.ts';
import { writeCheckpoint } from '../../engine/training/checkpoint.ts';
import { runDirPaths } from '../../engine/training/train-loop.ts';

export function jobRecord(patch: Partial<JobRecord> & Pick<JobRecord, 'id' | 'model' | 'base_path'>): JobRecord {
  return {
    seq: 0,
    created_at: 0,
    output_model: `ft:${patch.model}::${patch.id}`,
    training_file: 'file-000000000000000000000001',
    validation_file: null,
    status: 'running',
    error: null,
    started_at: 0,
    finished_at: null,
    hyperparameters: { n_epochs: 1, batch_size: 2, learning_rate_multiplier: 1 },
    method: { type: 'supervised' },
    seed: 1,
    suffix: null,
    metadata: null,
    sequence_length: 32,
    eval_interval: null,
    checkpoint_interval: null,
    plan: null,
    step: 0,
    trained_tokens: null,
    model_file: null,
    ...patch,
  };
}

/** A checkpoint at `step` of a run of `totalSteps` (64 tokens a step) whose train loss there is `loss`. */
export async function writeStandInCheckpoint(runDir: string, step: number, totalSteps: number, loss: number, seed = 0): Promise<void> {
  mkdirSync(runDirPaths(runDir).checkpoints, { recursive: true });
  await writeCheckpoint(
    runDirPaths(runDir).checkpoints,
    {
      step,
      totalSteps,
      configHash: 'x',
      data: { recipe: 'data-files', seed, nextStep: step },
      tokens: 64 * step,
      elapsedMs: 0,
      logRecords: step,
      metrics: { loss, gradNorm: 1, lr: 3e-4, phase: 'data', evalLoss: null, evalBpb: null },
      threads: 1,
      createdAt: new Date().toISOString(),
    },
    new Uint8Array(4096),
  );
}
