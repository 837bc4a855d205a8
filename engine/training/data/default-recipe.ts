/**
 * The default model's recipe and sources: seed 000's curriculum scaled to a
 * 15–20 minute run on two cores (~5k tokens/s ⇒ about 5.2M tokens).
 *
 *   language  Brown prose + WordNet definitions; GrowLength 32 → 64 → 128
 *   logic     arithmetic, with replay of language
 *   transfer  synonyms, antonyms, usage, with replay of both
 *   depth     mostly Brown and definitions, some of the rest, in the longest windows
 *
 * Batches follow inverse batch scaling: 8, 4, 2, 1 rows of tokensPerStep/8,
 * /4, /2, /1 tokens (the seed's 8×256 … 1×2048 at 2048 tokens/step; the
 * default uses 1024, so 8×128 … 1×1024).
 */
import type { CorporaOptions } from './corpora.ts';
import { loadBuiltinCorpora, type BuiltinCorpora } from './corpora.ts';
import { brownDocumentText } from './brown.ts';
import type { DocumentEncoder } from './encode.ts';
import type { Recipe } from './recipe.ts';
import { arithmeticSource, chatSource, textSource, type DocumentSource, type SourceSet } from './source.ts';
import type { ArithmeticOptions } from './arithmetic.ts';

/** The built-in source names a recipe can mix. */
export const SOURCE = {
  brown: 'brown',
  definitions: 'wordnet-definitions',
  relations: 'wordnet-relations',
  usage: 'wordnet-usage',
  arithmetic: 'arithmetic',
} as const;

export interface DefaultRecipeOptions {
  /** Tokens of the whole run (default 3M). */
  totalTokens?: number;
  /** batch × window in every phase (default 1024; a multiple of 64, so every window and overlap is whole). */
  tokensPerStep?: number;
}

export const DEFAULT_TOTAL_TOKENS = 3_000_000;
export const DEFAULT_TOKENS_PER_STEP = 1024;

export function defaultRecipe(opts: DefaultRecipeOptions = {}): Recipe {
  const tps = opts.tokensPerStep ?? DEFAULT_TOKENS_PER_STEP;
  // Overlap is 1/16 of the window: boundary context for 6 % extra compute. The
  // language phase has none, its GrowLength windows are too short to spare it.
  return {
    name: 'default',
    totalTokens: opts.totalTokens ?? DEFAULT_TOTAL_TOKENS,
    tokensPerStep: tps,
    // Brown stays in every phase (directly or as replay): the 4M-token run that
    // dropped it for 40 % of the steps forgot prose as fast as it learned the
    // chats (held-out bpb rose from 2.16 to 2.21 over logic and transfer).
    // Definitions recur in every phase too, since they must be learned by heart.
    phases: [
      {
        name: 'language',
        share: 0.3,
        window: tps / 8,
        overlap: 0,
        mix: { [SOURCE.brown]: 0.7, [SOURCE.definitions]: 0.3 },
        replay: 0,
        grow: [
          { windowFraction: 0.25, stepFraction: 0.3 },
          { windowFraction: 0.5, stepFraction: 0.3 },
          { windowFraction: 1, stepFraction: 0.4 },
        ],
      },
      { name: 'logic', share: 0.12, window: tps / 4, overlap: tps / 64, mix: { [SOURCE.arithmetic]: 1 }, replay: 0.35 },
      {
        name: 'transfer',
        share: 0.08,
        window: tps / 2,
        overlap: tps / 32,
        mix: { [SOURCE.relations]: 0.5, [SOURCE.usage]: 0.5 },
        replay: 0.45,
      },
      {
        name: 'depth',
        share: 0.5,
        window: tps,
        overlap: tps / 16,
        mix: {
          [SOURCE.brown]: 0.56,
          [SOURCE.definitions]: 0.24,
          [SOURCE.relations]: 0.04,
          [SOURCE.usage]: 0.04,
          [SOURCE.arithmetic]: 0.12,
        },
        replay: 0,
      },
    ],
  };
}

export interface DefaultSourceOptions {
  /** Generated arithmetic problems in the source (default 50,000; problems repeat, pairs are few). */
  arithmeticCount?: number;
  /** Seed of the arithmetic problems themselves (the run seed only orders documents). */
  arithmeticSeed?: number;
  arithmetic?: ArithmeticOptions;
}

/** The built-in sources over the train splits. Tokenizes lazily. */
export function defaultSources(encoder: DocumentEncoder, corpora: BuiltinCorpora, opts: DefaultSourceOptions = {}): SourceSet {
  const chats = corpora.wordnetChats.train;
  const of = (...kinds: string[]) => chats.filter((c) => kinds.includes(c.kind)).map((c) => c.example);
  const list: DocumentSource[] = [
    textSource(SOURCE.brown, corpora.brown.train.map(brownDocumentText), encoder),
    chatSource(SOURCE.definitions, of('definition'), encoder),
    chatSource(SOURCE.relations, of('synonym', 'antonym'), encoder),
    chatSource(SOURCE.usage, of('usage'), encoder),
    arithmeticSource(SOURCE.arithmetic, opts.arithmeticCount ?? 50_000, opts.arithmeticSeed ?? 1, encoder, opts.arithmetic),
  ];
  return new Map(list.map((s) => [s.name, s]));
}

/** Corpora + sources in one call, for the trainer's "default" recipe. */
export function loadDefaultSources(
  encoder: DocumentEncoder,
  opts: CorporaOptions & DefaultSourceOptions = {},
): { corpora: BuiltinCorpora; sources: SourceSet } {
  const corpora = loadBuiltinCorpora(opts);
  return { corpora, sources: defaultSources(encoder, corpora, opts) };
}
