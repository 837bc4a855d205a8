/**
 * Chats about words, built from WordNet for the words people actually use:
 * the vocabulary is ranked by Brown frequency, and a word's parts of speech
 * are ordered by how Brown tags it ("run" is a verb first). Four kinds:
 *
 *   definition  "What does dog mean?"      → "The word dog (noun): a member of the genus Canis … ."
 *               (only for the commonest words: a small model learns a few hundred
 *               glosses by heart, not thousands; see BuildOptions.definitionWords)
 *   synonym     "Give a synonym for big."  → "A synonym for big is large."
 *   antonym     "What is the opposite of good?" → "The opposite of good is bad."
 *   usage       "Use dog in a sentence."   → "The dog barked all night."
 *
 * About 5 % of words (by a stable hash of the word) are held out: none of
 * their chats is trained on, and no trained definition repeats a held-out
 * word's gloss, so definition accuracy on them measures words never seen.
 */
import type { PosCounts } from './brown.ts';
import { singleTurnChat, type ChatExample } from './chat-example.ts';
import { isHeldOut, stableHash } from './stable-hash.ts';
import type { Synset, WordNet, WordNetPos } from './wordnet.ts';

export type WordNetChatKind = 'definition' | 'synonym' | 'antonym' | 'usage';
export const WORDNET_CHAT_KINDS: readonly WordNetChatKind[] = ['definition', 'synonym', 'antonym', 'usage'];

export const WORDNET_HELD_OUT_FRACTION = 0.05;
const SPLIT_SALT = 'wordnet';

export interface WordNetChat {
  kind: WordNetChatKind;
  word: string;
  example: ChatExample;
  /** Definition chats: the glosses the answer gives, for scoring a model's answer. */
  expected?: ExpectedSense[];
}

/** A definition as evaluation expects it: the gloss of the word's leading sense per part of speech. */
export interface ExpectedSense {
  pos: WordNetPos;
  definition: string;
}

export interface VocabularyOptions {
  /** Keep the most frequent words only (default: all that qualify). */
  maxWords?: number;
  /** Least Brown open-class occurrences of a word (default 3). */
  minCount?: number;
}

export interface WordNetChatSet {
  train: WordNetChat[];
  heldOut: WordNetChat[];
  /** Train definition chats dropped because they would teach a held-out word's gloss. */
  droppedForLeak: number;
}

const QUESTIONS: Record<WordNetChatKind, readonly string[]> = {
  definition: ['What does {w} mean?', 'Define {w}.', 'What is the meaning of {w}?', 'What does the word "{w}" mean?'],
  synonym: ['Give a synonym for {w}.', 'What is another word for {w}?', 'What is a synonym of {w}?'],
  antonym: ['What is the opposite of {w}?', 'Give an antonym for {w}.', 'What is the antonym of {w}?'],
  usage: ['Use {w} in a sentence.', 'Write a sentence with the word {w}.', 'Give an example sentence using {w}.'],
};

/**
 * One line of a definition answer: "The word dog (noun): a member of … .".
 * The lead-in is there for the tokenizer, not for style. A reply that began
 * with the bare word would spell it without a leading space ("d" "og"), a
 * different token sequence from the question's " dog": the model would have
 * to learn, word by word, how each space-prefixed token is spelled at the
 * start of a line. The default model never did (it wrote the asked word for
 * 29 % of the canonical questions). After "The word" the reply repeats the
 * question's own token, a copy any recurrent layer can learn once for all words.
 */
export function definitionLine(word: string, pos: WordNetPos, gloss: string): string {
  return `${DEFINITION_LEAD}${word} (${pos}): ${gloss}`;
}

/** What every definition line starts with (see definitionLine). */
export const DEFINITION_LEAD = 'The word ';

/** The canonical definition question (the first phrasing), as evaluation asks it. */
export function definitionQuestion(word: string): string {
  return QUESTIONS.definition[0]!.replace('{w}', word);
}

/** A part of speech a later part must reach, relative to the leading one, to be mentioned too. */
const SECOND_POS_SHARE = 0.25;
const MAX_POS = 2;

export function isWordHeldOut(word: string): boolean {
  return isHeldOut(SPLIT_SALT, word, WORDNET_HELD_OUT_FRACTION);
}

function total(c: PosCounts): number {
  return c.noun + c.verb + c.adjective + c.adverb;
}

/**
 * Words that WordNet knows and Brown uses as an open-class word, most
 * frequent first (ties alphabetical). Plain lower-case words only.
 */
export function rankedVocabulary(wordnet: WordNet, counts: ReadonlyMap<string, PosCounts>, opts: VocabularyOptions = {}): string[] {
  const minCount = opts.minCount ?? 3;
  const words: [string, number][] = [];
  for (const [w, c] of counts) {
    const n = total(c);
    if (n >= minCount && /^[a-z]+(?:-[a-z]+)*$/.test(w) && wordSenses(wordnet, counts, w).length > 0) words.push([w, n]);
  }
  words.sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1));
  return words.slice(0, opts.maxWords ?? words.length).map(([w]) => w);
}

/**
 * Whether a noun is the regular plural of another noun ("years" of "year"):
 * WordNet lists some plurals with a sense of their own ("a late time of
 * life"), which is not what someone asking about "years" wants to hear. The
 * singular must be a noun Brown uses, or "boss" would be the plural of the
 * genus "Bos" and "gas" of gallium's symbol.
 */
function isPluralOfNoun(wordnet: WordNet, counts: ReadonlyMap<string, PosCounts>, word: string): boolean {
  const singulars = [
    word.endsWith('ies') ? `${word.slice(0, -3)}y` : '',
    word.endsWith('es') ? word.slice(0, -2) : '',
    word.endsWith('s') ? word.slice(0, -1) : '',
  ];
  return singulars.some((s) => (counts.get(s)?.noun ?? 0) > 0 && wordnet.entries(s).some((e) => e.pos === 'noun'));
}

/** The parts of speech to talk about for a word: WordNet has them and Brown uses them, commonest first. */
function wordSenses(wordnet: WordNet, counts: ReadonlyMap<string, PosCounts>, word: string): { pos: WordNetPos; senses: number[] }[] {
  const c = counts.get(word);
  if (c === undefined) return [];
  const present = wordnet
    .entries(word)
    .filter((e) => c[e.pos] > 0 && !(e.pos === 'noun' && isPluralOfNoun(wordnet, counts, word)))
    .sort((a, b) => c[b.pos] - c[a.pos]);
  const lead = present[0];
  if (lead === undefined) return [];
  return present
    .filter((e) => e === lead || c[e.pos] >= SECOND_POS_SHARE * c[lead.pos])
    .slice(0, MAX_POS)
    .map((e) => ({ pos: e.pos, senses: e.senses }));
}

/** "a gloss" → "a gloss." (glosses end without punctuation). */
function sentenceEnd(s: string): string {
  return /[.!?]$/.test(s) ? s : `${s}.`;
}

function capitalize(s: string): string {
  return s.charAt(0).toUpperCase() + s.slice(1);
}

/** Whether text uses the word itself or an inflection that starts with it ("dog", "dogs"). */
function mentions(text: string, word: string): boolean {
  const esc = word.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  return new RegExp(`(?:^|[^A-Za-z])${esc}[a-z]*(?:[^A-Za-z]|$)`, 'i').test(text);
}

/** The first example (sense order) that mentions the word and has at least minWords words. */
function exampleFor(synsets: readonly Synset[], word: string, minWords: number): string | null {
  for (const s of synsets) {
    for (const e of s.examples) if (mentions(e, word) && e.split(/\s+/).length >= minWords) return e;
  }
  return null;
}

/** What one word contributes: an answer per kind it has material for, and the glosses used. */
interface WordMaterial {
  expected: ExpectedSense[];
  /** "pos:offset" of the synsets whose glosses the definition answer uses. */
  definitionSynsets: string[];
  answers: Partial<Record<WordNetChatKind, string>>;
}

function material(wordnet: WordNet, counts: ReadonlyMap<string, PosCounts>, word: string): WordMaterial {
  const parts = wordSenses(wordnet, counts, word);
  if (parts.length === 0) return { expected: [], definitionSynsets: [], answers: {} };
  const all = parts.flatMap((p) => p.senses.map((o) => wordnet.synset(p.pos, o)));
  const leads = parts.map((p) => wordnet.synset(p.pos, p.senses[0]!));
  const expected = leads.map((s) => ({ pos: s.pos, definition: s.definition }));
  const answers: Partial<Record<WordNetChatKind, string>> = {};

  // Glosses only: an example line would double what must be learned by heart per
  // word, and the usage chats already teach sentences with the word.
  answers.definition = expected.map((e) => definitionLine(word, e.pos, sentenceEnd(e.definition))).join('\n');

  // Synonym and antonym come from the leading senses only: "house" → "firm" (its second
  // sense) is true but not what someone asking about houses means.
  // Synonym: the commonest other word (by Brown) of the earliest lead sense that has one Brown uses.
  const lower = word.toLowerCase();
  const frequency = (w: string): number => {
    const f = counts.get(w);
    return f === undefined ? 0 : total(f);
  };
  for (const s of leads) {
    let best: string | null = null;
    let bestCount = 0;
    for (const w of s.words) {
      const n = w === lower ? 0 : frequency(w);
      if (n > bestCount) [best, bestCount] = [w, n];
    }
    if (best !== null) {
      answers.synonym = `A synonym for ${word} is ${best}.`;
      break;
    }
  }

  // Antonym: a direct "!" pointer from this word (pointers are per word, not per synset).
  for (const s of leads) {
    const from = s.words.findIndex((w) => w.toLowerCase() === lower);
    const p = s.antonyms.find((a) => a.fromWord === from);
    if (p === undefined) continue;
    const target = wordnet.synset(p.pos, p.offset).words[p.toWord];
    if (target !== undefined && /^[a-z]+(?:[ -][a-z]+)*$/.test(target)) {
      answers.antonym = `The opposite of ${word} is ${target}.`;
      break;
    }
  }

  const usage = exampleFor(all, word, 4);
  if (usage !== null) answers.usage = sentenceEnd(capitalize(usage));
  return { expected, definitionSynsets: leads.map((s) => `${s.pos}:${s.offset}`), answers };
}

/** The chat for one (word, kind), with a phrasing chosen by a stable hash. */
function chat(kind: WordNetChatKind, word: string, answer: string): WordNetChat {
  const h = stableHash(`${kind}\u0000${word}`);
  const phrasings = QUESTIONS[kind];
  const question = phrasings[h % phrasings.length]!.replace('{w}', word);
  return { kind, word, example: singleTurnChat(question, answer, h >>> 8) };
}

/**
 * A definition chat per phrasing. With one phrasing per word (chosen by hash) the
 * default model learned each gloss keyed to its own question: asked "What does
 * statement mean?" when it had only seen "Define statement.", it wrote the first
 * word of the answer right 29% of the time instead of 94% (teacher-forced, 200
 * trained words). Every phrasing of every word makes it copy the word whatever
 * the question looks like.
 */
function definitionChats(word: string, answer: string): WordNetChat[] {
  return QUESTIONS.definition.map((q, i) => {
    const h = stableHash(`definition\u0000${word}\u0000${i}`);
    return { kind: 'definition', word, example: singleTurnChat(q.replace('{w}', word), answer, h >>> 8) };
  });
}

export interface BuildOptions {
  kinds?: readonly WordNetChatKind[];
  /**
   * Only the first this many words (the commonest, for a ranked list) get a
   * definition chat (default: all). Memorising a gloss takes many passes, so a
   * run's definition budget is better spent on a few hundred common words than
   * spread over thousands.
   */
  definitionWords?: number;
}

/**
 * Builds the chats of the given words (e.g. rankedVocabulary), in word order
 * then kind order, split into train and held-out by word.
 */
export function buildWordNetChats(
  wordnet: WordNet,
  counts: ReadonlyMap<string, PosCounts>,
  words: readonly string[],
  opts: BuildOptions = {},
): WordNetChatSet {
  const kinds = opts.kinds ?? WORDNET_CHAT_KINDS;
  const definitionWords = opts.definitionWords ?? words.length;
  const train: WordNetChat[] = [];
  const heldOut: WordNetChat[] = [];
  const heldOutGlosses = new Set<string>();
  const trainDefinitionSynsets = new Map<WordNetChat, string[]>();
  for (const [rank, word] of words.entries()) {
    const m = material(wordnet, counts, word);
    const out = isWordHeldOut(word) ? heldOut : train;
    if (out === heldOut) m.definitionSynsets.forEach((k) => heldOutGlosses.add(k));
    for (const kind of kinds) {
      const answer = m.answers[kind];
      if (answer === undefined || (kind === 'definition' && rank >= definitionWords)) continue;
      const chats = kind === 'definition' ? definitionChats(word, answer) : [chat(kind, word, answer)];
      for (const ch of chats) {
        if (kind === 'definition') ch.expected = m.expected;
        out.push(ch);
        if (out === train && kind === 'definition') trainDefinitionSynsets.set(ch, m.definitionSynsets);
      }
    }
  }
  const kept = train.filter((ch) => !(trainDefinitionSynsets.get(ch) ?? []).some((k) => heldOutGlosses.has(k)));
  return { train: kept, heldOut, droppedForLeak: train.length - kept.length };
}
