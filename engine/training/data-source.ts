/**
 * The one adapter between the training loop and engine/training/data: turns
 * a run's data settings into a DataSource (batchAt(step), held-out batches)
 * plus the run length and a fingerprint for the config hash. A change on the
 * data side should only ever need a change here.
 *
 * Tokenization uses the model's own embedded tokenizer and chat template, so
 * a model is trained on exactly the ids its server will feed it.
 */
import { metaOptString, type GgufFile } from '../gguf/types.ts';
import { loadTokenizer } from '../tokenizer/load.ts';
import {
  Curriculum,
  DEFAULT_TOKENS_PER_STEP,
  dataFilesRecipe,
  defaultRecipe,
  DocumentEncoder,
  evalBatches,
  formatPlan,
  heldOutEvalSets,
  loadBuiltinCorpora,
  loadDataFiles,
  loadDefaultSources,
  recipeFingerprint,
  StreamPacker,
  withFixedShape,
  type BuiltinCorpora,
  type Recipe,
  type SourceSet,
  type TrainingDocument,
} from './data/index.ts';
import { DATA_FILES_RECIPE } from './train-config.ts';
import type { Batch, DataSource, HeldOut } from './train-loop.ts';

/** Built-in recipes by name (`--recipe`). */
export const RECIPES: readonly string[] = ['default'];

/** Shape of a run on data files when no --batch / --seq-len is given: the default recipe's tokens per step. */
const DATA_FILES_BATCH = 8;
const DATA_FILES_WINDOW = DEFAULT_TOKENS_PER_STEP / DATA_FILES_BATCH;
/** Window of the evaluation batches, and rows per batch. */
const EVAL_WINDOW = 256;
const EVAL_ROWS = 4;

export interface TrainingDataOptions {
  recipe: string;
  files: readonly string[];
  evalFiles: readonly string[];
  seed: number;
  steps: number | undefined;
  tokens: number | undefined;
  batch: number | undefined;
  seqLen: number | undefined;
  evalTokens: number;
  /** The model being trained: its tokenizer and chat template. */
  model: GgufFile;
}

export interface TrainingData extends DataSource {
  readonly totalSteps: number;
  /** recipeFingerprint(recipe, seed): changes when the batches would. */
  readonly fingerprint: string;
  /** One line: recipe, phases, tokens per step. */
  describe(): string;
  /** One line per plan segment (phase / GrowLength stage): steps and shape. */
  plan(): string;
}

export class TrainingDataError extends Error {
  override readonly name = 'TrainingDataError';
}

/** The recipe at the run's shape and length; without steps or tokens, the recipe's own length (if it has one). */
function sizeRecipe(base: Recipe, o: TrainingDataOptions, ownLength: boolean): Recipe {
  const shaped = o.batch !== undefined && o.seqLen !== undefined ? withFixedShape(base, o.batch, o.seqLen) : base;
  if (o.tokens === undefined && o.steps === undefined && !ownLength) {
    throw new TrainingDataError(`recipe "${base.name}" has no length of its own: give --steps or --tokens`);
  }
  const totalTokens = o.tokens ?? (o.steps !== undefined ? o.steps * shaped.tokensPerStep : shaped.totalTokens);
  return { ...shaped, totalTokens };
}

/** A prefix of `docs` packed into one stream, cut to `tokens` targets' worth, as evaluation batches. */
function heldOutBatches(docs: Iterable<TrainingDocument>, tokens: number, encoder: DocumentEncoder): HeldOut {
  const tok = encoder.tokenizer;
  const packer = new StreamPacker({ eosId: tok.eosId, bosId: tok.bosId });
  for (const d of docs) {
    if (packer.length > tokens) break;
    packer.push(d);
  }
  const full = packer.finish();
  const n = Math.min(full.tokens.length, tokens + 1);
  const stream = { tokens: full.tokens.subarray(0, n), lossMask: full.lossMask.subarray(0, n) };
  const window = Math.min(EVAL_WINDOW, Math.max(1, n - 1));
  const ev = evalBatches(stream, { batch: EVAL_ROWS, window }, tok);
  if (ev.targets === 0) throw new TrainingDataError('the held-out data has no tokens to predict');
  return { batches: ev.batches, bytes: ev.bytes };
}

/** Encoded lazily: only the documents the evaluation prefix reaches are tokenized. */
function* textDocuments(texts: readonly string[], encoder: DocumentEncoder): Generator<TrainingDocument> {
  for (const t of texts) yield encoder.text(t);
}

function* sourceDocuments(sources: SourceSet): Generator<TrainingDocument> {
  for (const s of sources.values()) for (let i = 0; i < s.size; i++) yield s.document(i);
}

export async function openTrainingData(o: TrainingDataOptions): Promise<TrainingData> {
  const meta = o.model.metadata;
  const encoder = new DocumentEncoder(loadTokenizer(meta), metaOptString(meta, 'tokenizer.chat_template') ?? null);
  let corpora: BuiltinCorpora | null = null;
  let recipe: Recipe;
  let sources: SourceSet;
  if (o.recipe === DATA_FILES_RECIPE) {
    const files = loadDataFiles(o.files, encoder);
    sources = files.sources;
    recipe = dataFilesRecipe(files.mix, { totalTokens: 1, batch: o.batch ?? DATA_FILES_BATCH, window: o.seqLen ?? DATA_FILES_WINDOW });
  } else if (o.recipe === 'default') {
    const loaded = loadDefaultSources(encoder);
    corpora = loaded.corpora;
    sources = loaded.sources;
    recipe = defaultRecipe();
  } else {
    throw new TrainingDataError(`unknown recipe "${o.recipe}" (built in: ${RECIPES.join(', ')}; or train on files with --data)`);
  }
  recipe = sizeRecipe(recipe, o, o.recipe !== DATA_FILES_RECIPE);
  if (recipe.totalTokens < recipe.tokensPerStep) {
    throw new TrainingDataError(`${recipe.totalTokens} tokens is less than one step of ${recipe.tokensPerStep} tokens`);
  }
  const tok = encoder.tokenizer;
  // User files may hold chats whose prompts outrun the window: their context-only windows move to the
  // reply (a batch of nothing but context has no loss). The built-in recipe keeps its grid.
  const curriculum = new Curriculum(recipe, sources, { eosId: tok.eosId, bosId: tok.bosId }, o.seed, {
    moveContextOnlyWindows: o.recipe === DATA_FILES_RECIPE,
  });

  let held: HeldOut | null | undefined;
  const heldOut = (): HeldOut | null => {
    if (held !== undefined) return held;
    if (o.evalFiles.length > 0) {
      held = heldOutBatches(sourceDocuments(loadDataFiles(o.evalFiles, encoder).sources), o.evalTokens, encoder);
    } else {
      // The held-out Brown files: prose no recipe trains on, the same in every run.
      corpora ??= loadBuiltinCorpora();
      held = heldOutBatches(textDocuments(heldOutEvalSets(corpora).brown.map((b) => b.text), encoder), o.evalTokens, encoder);
    }
    return held;
  };

  const phases = [...new Set(recipe.phases.map((p) => p.name))];
  return {
    recipe: recipe.name,
    totalSteps: curriculum.totalSteps,
    fingerprint: recipeFingerprint(recipe, o.seed),
    batchAt: (step: number): Batch => curriculum.batchAt(step),
    heldOut,
    describe: () =>
      `recipe ${recipe.name} (${phases.length} phase${phases.length === 1 ? '' : 's'}: ${phases.join(', ')}), ${recipe.tokensPerStep} tokens/step`,
    plan: () => formatPlan(curriculum.plan),
  };
}
