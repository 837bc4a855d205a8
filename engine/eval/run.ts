/**
 * The model evaluation behind scripts/eval-model.ts: one Chimera GGUF against
 * the built-in held-out sets (engine/training/data/eval-sets.ts).
 *
 *   text         held-out Brown bits per byte, the model's vs three n-gram
 *                baselines counted on the Brown train files
 *   definitions  "What does <word> mean?" for held-out words and for a sample
 *                of trained words (memorisation vs generalisation)
 *   arithmetic   held-out problems and a sample of trained ones
 *
 * Deterministic: samples are seeded permutations, decoding is greedy, and the
 * native forward is bit-exact for a fixed thread count.
 */
import { createEngine } from '../engine.ts';
import { readGguf } from '../gguf/reader.ts';
import { metaOptNumber } from '../gguf/types.ts';
import { NativeModel } from '../model/native-model.ts';
import { arithmeticAnswer, arithmeticProblem, arithmeticQuestion } from '../training/data/arithmetic.ts';
import { brownDocumentText } from '../training/data/brown.ts';
import { loadBuiltinCorpora, type BuiltinCorpora } from '../training/data/corpora.ts';
import { heldOutEvalSets } from '../training/data/eval-sets.ts';
import { isHeldOut, seededPermutation } from '../training/data/stable-hash.ts';
import { definitionQuestion } from '../training/data/wordnet-chats.ts';
import type { Tokenizer } from '../types.ts';
import { modelTextNats } from './model-text.ts';
import { fitBaselines, ngramNats } from './ngram.ts';
import {
  askArithmetic,
  askDefinitions,
  summarizeArithmetic,
  summarizeDefinitions,
  type ArithmeticItem,
  type ArithmeticResult,
  type ArithmeticSummary,
  type DefinitionItem,
  type DefinitionResult,
  type DefinitionSummary,
} from './qa.ts';
import { bitsPerByte } from './scoring.ts';

export interface EvalOptions {
  modelPath: string;
  /** Questions per set (held-out / trained × definitions / arithmetic). */
  limit: number;
  /** Most held-out Brown tokens scored (a prefix of the files in id order); Infinity = all. */
  textTokens: number;
  /** Tokens per eval window for bits per byte. */
  window: number;
  /** Carry the recurrent state across windows of a document (else fresh per window). */
  carry: boolean;
  definitionTokens: number;
  arithmeticTokens: number;
  /** Seed of the question samples. */
  seed: number;
  threads?: number;
  /** Already loaded corpora (tests pass a few Brown files); default: all of them. */
  corpora?: BuiltinCorpora;
  log?: (line: string) => void;
}

export const EVAL_DEFAULTS = {
  limit: 40,
  textTokens: Infinity,
  window: 256,
  carry: true,
  definitionTokens: 48,
  arithmeticTokens: 16,
  seed: 1,
} as const;

/** The arithmetic source defaultSources builds (default-recipe.ts): problem i of seed 1, i < 50,000. */
const TRAIN_ARITHMETIC_SEED = 1;
const TRAIN_ARITHMETIC_COUNT = 50_000;
/** Brown train files whose counts tune the baselines' smoothing (by a stable hash of the file id). */
const BASELINE_DEV_SALT = 'eval-baseline-dev';
const BASELINE_DEV_FRACTION = 0.1;

export interface BaselineReport {
  name: string;
  params: string;
  bpb: number;
  /** Dev-slice nats per token over the grid the parameter was chosen from. */
  tuning: { value: number; natsPerToken: number }[];
}

export interface EvalReport {
  model: { path: string; id: string; provenance: string; nLayer: number; nEmbd: number; nVocab: number; trainerHeldOutBpb: number | null };
  settings: {
    limit: number;
    /** null: all held-out text. */
    textTokens: number | null;
    window: number;
    carry: boolean;
    definitionTokens: number;
    arithmeticTokens: number;
    seed: number;
    threads: number | null;
  };
  text: {
    files: string[];
    tokens: number;
    bytes: number;
    state: 'carried across windows' | 'fresh per window';
    model: { nats: number; natsPerToken: number; bpb: number };
    baselineTrain: { files: number; devFiles: number; tokens: number };
    baselines: BaselineReport[];
  };
  definitions: { heldOut: DefinitionSummary; trained: DefinitionSummary; heldOutResults: DefinitionResult[]; trainedResults: DefinitionResult[] };
  arithmetic: { heldOut: ArithmeticSummary; trained: ArithmeticSummary; heldOutResults: ArithmeticResult[]; trainedResults: ArithmeticResult[] };
  timings: Record<'loadMs' | 'textMs' | 'baselinesMs' | 'definitionsMs' | 'arithmeticMs' | 'totalMs', number>;
}

/** The first n items of a seeded permutation (all, in permuted order, when n ≥ length). */
export function sample<T>(items: readonly T[], n: number, seed: number, name: string): T[] {
  const perm = seededPermutation(seed, name, items.length);
  return Array.from(perm.subarray(0, Math.min(n, items.length)), (i) => items[i]!);
}

/**
 * Distinct problems of the training source, in a seeded order (arithmeticProblem
 * never returns a held-out one). A short run need not have reached all of them.
 */
function trainedArithmetic(n: number, seed: number): ArithmeticItem[] {
  const seen = new Set<string>();
  const out: ArithmeticItem[] = [];
  for (const i of seededPermutation(seed, 'eval arithmetic trained', TRAIN_ARITHMETIC_COUNT)) {
    if (out.length >= n) break;
    const p = arithmeticProblem(TRAIN_ARITHMETIC_SEED, i);
    const key = `${p.a} ${p.op} ${p.b}`;
    if (seen.has(key)) continue;
    seen.add(key);
    out.push({ problem: p, question: arithmeticQuestion(p), reference: arithmeticAnswer(p) });
  }
  return out;
}

/** Held-out Brown text as token documents, cut to `budget` tokens, with the UTF-8 bytes they stand for. */
function heldOutText(tok: Tokenizer, texts: readonly { id: string; text: string }[], budget: number) {
  const docs: number[][] = [];
  const files: string[] = [];
  let tokens = 0;
  let bytes = 0;
  for (const t of texts) {
    if (tokens >= budget) break;
    const ids = tok.encode(t.text).slice(0, budget - tokens);
    if (ids.length === 0) continue;
    docs.push(ids);
    files.push(t.id);
    tokens += ids.length;
    for (const id of ids) bytes += tok.specialIds.has(id) ? 0 : tok.tokenBytes(id).length;
  }
  return { docs, files, tokens, bytes };
}

export async function evaluateModel(opts: EvalOptions): Promise<EvalReport> {
  const log = opts.log ?? (() => {});
  const t0 = performance.now();
  const lap = (() => {
    let last = t0;
    return () => {
      const now = performance.now();
      const ms = now - last;
      last = now;
      return Math.round(ms);
    };
  })();

  log(`loading ${opts.modelPath} and the corpora`);
  const gguf = await readGguf(opts.modelPath); // first: a wrong path fails before seconds of corpus reading
  const corpora = opts.corpora ?? loadBuiltinCorpora();
  const sets = heldOutEvalSets(corpora);
  const engine = await createEngine({ models: [opts.modelPath], ...(opts.threads !== undefined ? { threads: opts.threads } : {}) });
  const abort = new AbortController();
  try {
    const model = engine.models()[0]!;
    const tok = model.tokenizer;
    const startId = tok.bosId ?? tok.eosId;
    const loadMs = lap();

    const text = heldOutText(tok, sets.brown, opts.textTokens);
    if (text.tokens === 0) throw new Error('no held-out text to score');
    log(`bits per byte: ${text.tokens} held-out tokens in ${text.files.length} files, windows of ${opts.window}`);
    // Its own mapping of the file: the engine's LoadedModel hides the native model, and a second
    // map of the same file shares the page cache.
    const native = await NativeModel.load(opts.modelPath);
    const scored = await modelTextNats(native, text.docs, { window: opts.window, carry: opts.carry, startId, signal: abort.signal }).finally(
      () => native.dispose(),
    );
    const textMs = lap();

    log('baselines: counting the Brown train files');
    const train: number[][] = [];
    const dev: number[][] = [];
    for (const f of corpora.brown.train) {
      (isHeldOut(BASELINE_DEV_SALT, f.id, BASELINE_DEV_FRACTION) ? dev : train).push(tok.encode(brownDocumentText(f)));
    }
    const fitted = fitBaselines(train, dev, { vocabSize: tok.vocabSize, startId, eosId: tok.eosId });
    const baselines = fitted.map((b) => ({
      name: b.model.name,
      params: b.model.params,
      bpb: bitsPerByte(ngramNats(b.model, text.docs, startId).nats, text.bytes),
      tuning: b.tuning,
    }));
    const baselinesMs = lap();

    const heldOutDefs: DefinitionItem[] = sample(sets.definitions, opts.limit, opts.seed, 'eval definitions held-out').map((d) => ({
      word: d.word,
      question: d.question,
      expected: d.expected,
      reference: d.answer,
    }));
    // one item per word (a word has a definition chat per phrasing)
    const trainedPool = [
      ...new Map(corpora.wordnetChats.train.filter((c) => c.kind === 'definition' && c.expected !== undefined).map((c) => [c.word, c])).values(),
    ];
    const trainedDefs: DefinitionItem[] = sample(trainedPool, opts.limit, opts.seed, 'eval definitions trained').map((c) => ({
      word: c.word,
      // Training asked some words in other phrasings ("Define dog."); evaluation always asks the canonical one.
      question: definitionQuestion(c.word),
      expected: c.expected!,
      reference: c.example.messages[c.example.messages.length - 1]!.content,
    }));
    log(`definitions: ${heldOutDefs.length} held-out + ${trainedDefs.length} trained words, ≤ ${opts.definitionTokens} tokens each`);
    const heldOutResults = await askDefinitions(model, heldOutDefs, opts.definitionTokens, abort.signal);
    const trainedResults = await askDefinitions(model, trainedDefs, opts.definitionTokens, abort.signal);
    const definitionsMs = lap();

    const heldOutArith: ArithmeticItem[] = sample(sets.arithmetic, opts.limit, opts.seed, 'eval arithmetic held-out').map((a) => ({
      problem: a.problem,
      question: a.question,
      reference: a.answer,
    }));
    const trainedArith = trainedArithmetic(opts.limit, opts.seed);
    log(`arithmetic: ${heldOutArith.length} held-out + ${trainedArith.length} trained problems, ≤ ${opts.arithmeticTokens} tokens each`);
    const arithHeld = await askArithmetic(model, heldOutArith, opts.arithmeticTokens, abort.signal);
    const arithTrained = await askArithmetic(model, trainedArith, opts.arithmeticTokens, abort.signal);
    const arithmeticMs = lap();

    return {
      model: {
        path: opts.modelPath,
        id: model.info.id,
        provenance: model.info.provenance,
        nLayer: model.info.nLayer,
        nEmbd: model.info.nEmbd,
        nVocab: model.info.nVocab,
        trainerHeldOutBpb: metaOptNumber(gguf.metadata, 'braid.train.heldout_bpb') ?? null,
      },
      settings: {
        limit: opts.limit,
        textTokens: Number.isFinite(opts.textTokens) ? opts.textTokens : null,
        window: opts.window,
        carry: opts.carry,
        definitionTokens: opts.definitionTokens,
        arithmeticTokens: opts.arithmeticTokens,
        seed: opts.seed,
        threads: opts.threads ?? null,
      },
      text: {
        files: text.files,
        tokens: text.tokens,
        bytes: text.bytes,
        state: opts.carry ? 'carried across windows' : 'fresh per window',
        model: { nats: scored.nats, natsPerToken: scored.nats / scored.targets, bpb: bitsPerByte(scored.nats, text.bytes) },
        baselineTrain: { files: train.length + dev.length, devFiles: dev.length, tokens: [...train, ...dev].reduce((a, d) => a + d.length, 0) },
        baselines,
      },
      definitions: {
        heldOut: summarizeDefinitions(heldOutResults),
        trained: summarizeDefinitions(trainedResults),
        heldOutResults,
        trainedResults,
      },
      arithmetic: {
        heldOut: summarizeArithmetic(arithHeld),
        trained: summarizeArithmetic(arithTrained),
        heldOutResults: arithHeld,
        trainedResults: arithTrained,
      },
      timings: { loadMs, textMs, baselinesMs, definitionsMs, arithmeticMs, totalMs: Math.round(performance.now() - t0) },
    };
  } finally {
    abort.abort();
    await engine.dispose();
  }
}
