/**
 * Shared by the fine-tuning e2e tests: a tiny trainable base model (2 GD
 * layers, D = 128, the committed 4k tokenizer) written once per scratch dir,
 * a small chat data set, the loss of a model on a chat JSONL file measured
 * with the native trainer (the same quantity training minimizes: mean
 * cross-entropy over assistant tokens), and a job poller.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import type OpenAI from 'openai';
import { readGguf } from '../../engine/gguf/reader.ts';
import { metaOptString } from '../../engine/gguf/types.ts';
import { chimeraTinyConfig, type ChimeraConfig } from '../../engine/model-init/chimera-config.ts';
import { writeRandomChimera } from '../../engine/model-init/init-chimera.ts';
import { loadTokenizer } from '../../engine/tokenizer/load.ts';
import { DocumentEncoder, evalBatches, packDocuments, validateChatJsonl } from '../../engine/training/data/index.ts';
import { NativeTrainer } from '../../engine/training/native-trainer.ts';

export const BASE_ID = 'ft-base';

export function tinyConfig(name = BASE_ID): ChimeraConfig {
  return {
    ...chimeraTinyConfig(4096),
    name,
    provenance: 'random-init (untrained)',
    embeddingLength: 128,
    feedForwardLength: 256,
    layerTypes: ['GD', 'GD'],
    headCount: 2,
    headDim: 64,
    valueDim: 64,
  };
}

export async function writeTinyBase(dir: string, name = BASE_ID, seed = 11): Promise<string> {
  const file = path.join(dir, `${name}.gguf`);
  await writeRandomChimera(file, tinyConfig(name), seed);
  return file;
}

const PAIRS: [string, string][] = [
  ['What color is the sky?', 'The sky is blue.'],
  ['What color is grass?', 'Grass is green.'],
  ['What do cats say?', 'Cats say meow.'],
  ['What do dogs say?', 'Dogs say woof.'],
  ['How many legs does a spider have?', 'A spider has eight legs.'],
  ['What is the opposite of hot?', 'The opposite of hot is cold.'],
];

/** `copies` passes over the pairs, one chat per line (some with a system prompt). */
export function chatJsonl(copies = 2): string {
  const lines: string[] = [];
  for (let c = 0; c < copies; c++) {
    for (const [i, [q, a]] of PAIRS.entries()) {
      const messages = [
        ...((i + c) % 3 === 0 ? [{ role: 'system', content: 'Answer briefly.' }] : []),
        { role: 'user', content: q },
        { role: 'assistant', content: a },
      ];
      lines.push(JSON.stringify({ messages }));
    }
  }
  return `${lines.join('\n')}\n`;
}

/** Mean cross-entropy (nats per target token) of a model on a chat JSONL file's assistant tokens. */
export async function chatLoss(modelPath: string, jsonlPath: string): Promise<number> {
  const file = await readGguf(modelPath);
  const enc = new DocumentEncoder(loadTokenizer(file.metadata), metaOptString(file.metadata, 'tokenizer.chat_template') ?? null);
  const checked = validateChatJsonl(readFileSync(jsonlPath, 'utf8'));
  if (!checked.ok) throw new Error('invalid test data');
  const stream = packDocuments(
    checked.examples.map((e) => enc.chat(e)),
    { eosId: enc.tokenizer.eosId, bosId: enc.tokenizer.bosId },
  );
  const ev = evalBatches(stream, { batch: 4, window: 64 }, enc.tokenizer);
  const tr = NativeTrainer.open(modelPath);
  try {
    let sum = 0;
    let count = 0;
    for (const b of ev.batches) {
      const r = await tr.evaluate(b.tokens, b.targets, b.batch, b.seqLen);
      sum += r.lossSum;
      count += r.count;
    }
    return sum / count;
  } finally {
    tr.dispose();
  }
}

type Job = OpenAI.FineTuning.Jobs.FineTuningJob;

/** Polls a job until `done(job)` (bounded; each poll is one cheap GET). */
export async function pollJob(client: OpenAI, id: string, done: (job: Job) => boolean, timeoutMs = 60_000): Promise<Job> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const job = await client.fineTuning.jobs.retrieve(id);
    if (done(job)) return job;
    if (Date.now() > deadline) throw new Error(`job ${id} still ${job.status} after ${timeoutMs} ms: ${JSON.stringify(job)}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

export const finished = (job: Job): boolean => ['succeeded', 'failed', 'cancelled'].includes(job.status);

/** The job's braid extension fields. */
export function braidOf(job: Job): { step: number; total_steps: number | null; output_model: string } {
  return (job as unknown as { braid: { step: number; total_steps: number | null; output_model: string } }).braid;
}
