/**
 * The data side of a fine-tuning job: the uploaded chat JSONL as the
 * training loop's DataSource, through engine/training/data-source.ts (the
 * one adapter to engine/training/data: the model's own tokenizer and chat
 * template, loss on assistant tokens only, packing, belt windows), plus what
 * the run length needs: the tokens of one pass over the file.
 *
 * An epoch is one pass over the packed training stream, so a job of
 * n_epochs runs ceil(n_epochs · epoch tokens / (batch_size · sequence_length))
 * optimizer steps. Epoch tokens are the tokens of that pass that windows
 * hold: prompt text too long for a window to reach its reply is jumped over
 * (window-plan.ts), so chats with long prompts are not counted several
 * windows each while training on each reply once. Without a validation file there is no held-out
 * evaluation (data-source.ts would otherwise fall back to its Brown files,
 * which say nothing about a fine-tune).
 */
import { readGguf } from '../gguf/reader.ts';
import { metaOptString } from '../gguf/types.ts';
import { loadTokenizer } from '../tokenizer/load.ts';
import { openTrainingData } from '../training/data-source.ts';
import { DocumentEncoder, loadDataFiles, placeWindows, StreamPacker, type PackedStream } from '../training/data/index.ts';
import { modelFingerprint } from '../training/export-model.ts';
import { DATA_FILES_RECIPE } from '../training/train-config.ts';
import type { DataSource } from '../training/train-loop.ts';

/** Held-out tokens per evaluation (a prefix of the validation file's stream). */
const EVAL_TOKENS = 8192;

export interface JobDataOptions {
  basePath: string;
  trainingPath: string;
  validationPath: string | null;
  seed: number;
  batch: number;
  window: number;
  nEpochs: number;
}

export interface JobData {
  data: DataSource;
  epochTokens: number;
  totalSteps: number;
  /** Changes when the batches would (recipe, file mix, seed, shape, length). */
  dataFingerprint: string;
  /** The base model's shape (tensor table, hyper-parameters). */
  modelFingerprint: string;
}

/** Tokens of one pass that training windows hold: the stream less the context they jump over. */
function windowedTokens(stream: PackedStream, window: number): number {
  let passed = 0;
  const fixed = { lossMask: stream.lossMask, grow: () => false };
  for (const w of placeWindows(fixed, { window, overlap: 0 }, 0)) passed += w.passed;
  return stream.tokens.length - passed;
}

/** Throws DataFileError (engine/training/data) for a file that no longer validates. */
export async function openJobData(o: JobDataOptions): Promise<JobData> {
  const model = await readGguf(o.basePath);
  const encoder = new DocumentEncoder(loadTokenizer(model.metadata), metaOptString(model.metadata, 'tokenizer.chat_template') ?? null);
  const tok = encoder.tokenizer;
  const packer = new StreamPacker({ eosId: tok.eosId, bosId: tok.bosId });
  for (const source of loadDataFiles([o.trainingPath], encoder).sources.values()) {
    for (let i = 0; i < source.size; i++) packer.push(source.document(i));
  }
  // Overlap 0: what dataFilesRecipe at a fixed shape uses.
  const epochTokens = windowedTokens(packer.view(), o.window);
  if (epochTokens === 0) throw new Error('the training file encodes to no tokens');
  const totalSteps = Math.max(1, Math.ceil((o.nEpochs * epochTokens) / (o.batch * o.window)));
  const td = await openTrainingData({
    recipe: DATA_FILES_RECIPE,
    files: [o.trainingPath],
    evalFiles: o.validationPath === null ? [] : [o.validationPath],
    seed: o.seed,
    steps: totalSteps,
    tokens: undefined,
    batch: o.batch,
    seqLen: o.window,
    evalTokens: EVAL_TOKENS,
    model,
  });
  const withEval = o.validationPath !== null;
  return {
    data: { recipe: td.recipe, batchAt: (step) => td.batchAt(step), heldOut: () => (withEval ? td.heldOut() : null) },
    epochTokens,
    totalSteps: td.totalSteps,
    dataFingerprint: td.fingerprint,
    modelFingerprint: modelFingerprint(model),
  };
}
