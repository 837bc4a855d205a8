import { beforeAll, describe, expect, it } from 'vitest';
import type { PosCounts } from '../../engine/training/data/brown.ts';
import {
  buildWordNetChats,
  definitionQuestion,
  isWordHeldOut,
  rankedVocabulary,
  WORDNET_HELD_OUT_FRACTION,
} from '../../engine/training/data/wordnet-chats.ts';
import { loadWordNet, parseDataLine, parseGloss, WordNet } from '../../engine/training/data/wordnet.ts';

const LICENSE = '  1 This software and database is being provided to you, the LICENSEE, by  \n  2 Princeton University  \n';

function counts(entries: Record<string, Partial<PosCounts>>): Map<string, PosCounts> {
  return new Map(Object.entries(entries).map(([w, c]) => [w, { noun: 0, verb: 0, adjective: 0, adverb: 0, ...c }]));
}

describe('WordNet dict files', () => {
  let wn: WordNet;
  beforeAll(() => {
    wn = loadWordNet();
  });

  it('parses the data line format: words, lexical pointers, gloss with examples', () => {
    const s = parseDataLine(
      '00002312 00 a 02 abaxial 0 dorsal 4 002 ;c 06047178 n 0000 ! 00002527 a 0101 | facing away from the axis; "the abaxial surface"  ',
      'test',
    );
    expect(s).toEqual({
      pos: 'adjective',
      offset: 2312,
      words: ['abaxial', 'dorsal'],
      definition: 'facing away from the axis',
      examples: ['the abaxial surface'],
      antonyms: [{ fromWord: 0, pos: 'adjective', offset: 2527, toWord: 0 }],
    });
    expect(parseGloss('(usually followed by `to\') able; "able to swim"; "she was able to program"')).toEqual({
      definition: "(usually followed by `to') able",
      examples: ['able to swim', 'she was able to program'],
    });
    expect(() => parseDataLine('garbage', 'test')).toThrow(/malformed/);
  });

  it('skips the license header and strips adjective markers', () => {
    const files = new Map<string, string>();
    for (const f of ['noun', 'verb', 'adj', 'adv']) {
      files.set(`data.${f}`, LICENSE);
      files.set(`index.${f}`, LICENSE);
    }
    files.set('data.adj', LICENSE + '00019769 00 s 02 handy 0 ready_to_hand(p) 0 000 | easy to reach; "a handy spot"  \n');
    files.set('index.adj', LICENSE + 'handy a 1 0 1 1 00019769  \n');
    const small = new WordNet(files);
    expect(small.lemmas()).toEqual(['handy']);
    const [e] = small.entries('Handy');
    expect(e).toEqual({ lemma: 'handy', pos: 'adjective', senses: [19769], taggedSenses: 1 });
    expect(small.synset('adjective', 19769).words).toEqual(['handy', 'ready to hand']);
  });

  it('finds known words in the shipped WordNet 3.1', () => {
    const [dog] = wn.entries('dog').filter((e) => e.pos === 'noun');
    expect(dog).toBeDefined();
    const sense = wn.synset('noun', dog!.senses[0]!);
    expect(sense.definition).toContain('domesticated');
    expect(sense.words).toContain('Canis familiaris');
    expect(sense.examples).toContain('the dog barked all night');
    const good = wn.entries('good').find((e) => e.pos === 'adjective')!;
    const ant = wn.synset('adjective', good.senses[0]!).antonyms[0]!;
    expect(wn.synset(ant.pos, ant.offset).words[ant.toWord]).toBe('bad');
    expect(wn.synsetCount).toBeGreaterThan(110_000);
  });

  it('builds definition, synonym, antonym and usage chats for common words', () => {
    const c = counts({ dog: { noun: 50 }, big: { adjective: 300 }, large: { adjective: 200 }, good: { adjective: 700, noun: 30 }, run: { verb: 200, noun: 60 }, the: {} });
    const vocab = rankedVocabulary(wn, c, { minCount: 1 });
    expect(vocab).toEqual(['good', 'big', 'run', 'large', 'dog']); // by Brown count; "the" has no open-class use
    const all = buildWordNetChats(wn, c, vocab);
    const chats = [...all.train, ...all.heldOut];
    const answer = (word: string, kind: string) => chats.find((ch) => ch.word === word && ch.kind === kind)?.example.messages.at(-1)?.content;
    expect(answer('dog', 'definition')).toMatch(/^The word dog \(noun\): a member of the genus Canis .*domesticated[^\n]*\.$/); // the gloss only
    expect(answer('run', 'definition')).toMatch(/^The word run \(verb\): move fast .*\nThe word run \(noun\): /); // verb first: Brown uses it more
    expect(answer('big', 'synonym')).toBe('A synonym for big is large.');
    expect(answer('good', 'antonym')).toBe('The opposite of good is bad.');
    expect(answer('dog', 'usage')).toBe('The dog barked all night.');
    const def = chats.find((ch) => ch.word === 'dog' && ch.kind === 'definition')!;
    expect(def.expected).toEqual([{ pos: 'noun', definition: expect.stringContaining('domesticated') }]);
    expect(def.example.messages.at(-2)?.role).toBe('user');
    expect(definitionQuestion('dog')).toBe('What does dog mean?');
  });

  it('gives definition chats to the commonest definitionWords words only', () => {
    const c = counts({ dog: { noun: 50 }, big: { adjective: 300 }, good: { adjective: 700 }, run: { verb: 200 } });
    const vocab = rankedVocabulary(wn, c, { minCount: 1 }); // good, big, run, dog
    const some = buildWordNetChats(wn, c, vocab, { definitionWords: 2 });
    const defined = [...some.train, ...some.heldOut].filter((ch) => ch.kind === 'definition').map((ch) => ch.word);
    expect([...new Set(defined)].sort()).toEqual(['big', 'good']);
    // every phrasing of the definition question, so the model learns to copy the word from any of them
    const questions = some.train.concat(some.heldOut).filter((ch) => ch.kind === 'definition' && ch.word === 'good').map((ch) => ch.example.messages.at(-2)?.content);
    expect(questions).toEqual(['What does good mean?', 'Define good.', 'What is the meaning of good?', 'What does the word "good" mean?']);
    // the other kinds still cover every word
    expect([...some.train, ...some.heldOut].some((ch) => ch.word === 'dog' && ch.kind === 'usage')).toBe(true);
  });

  it('holds out ~5 % of words, all of their chats, and no trained definition repeats a held-out gloss', () => {
    const c = new Map<string, PosCounts>();
    // "money" is one of the held-out words (pinned: the split must not drift).
    const words = ['dog', 'cat', 'money', 'house', 'big', 'large', 'small', 'good', 'bad', 'run', 'walk', 'happy', 'glad', 'quick', 'fast', 'begin', 'start'];
    words.forEach((w, i) => c.set(w, { noun: 100 - i, verb: 100 - i, adjective: 100 - i, adverb: 0 }));
    const a = buildWordNetChats(wn, c, words);
    const b = buildWordNetChats(wn, c, words);
    expect(a).toEqual(b);
    const trainWords = new Set(a.train.map((ch) => ch.word));
    const heldWords = new Set(a.heldOut.map((ch) => ch.word));
    expect([...heldWords]).toEqual(['money']);
    for (const w of heldWords) {
      expect(trainWords.has(w)).toBe(false);
      expect(isWordHeldOut(w)).toBe(true);
    }
    for (const w of trainWords) expect(isWordHeldOut(w)).toBe(false);
    const heldGlosses = new Set(a.heldOut.flatMap((ch) => (ch.expected ?? []).map((e) => e.definition)));
    for (const ch of a.train) for (const e of ch.expected ?? []) expect(heldGlosses.has(e.definition)).toBe(false);
    // "car" shares its leading gloss with the held-out "automobile": its definition is not trained either.
    const cars = buildWordNetChats(wn, counts({ car: { noun: 200 }, automobile: { noun: 50 } }), ['car', 'automobile']);
    expect(isWordHeldOut('automobile')).toBe(true);
    expect(cars.droppedForLeak).toBe(4); // car's definition chat in each of its 4 phrasings
    expect(cars.train.map((ch) => `${ch.word}/${ch.kind}`)).toEqual(['car/synonym', 'car/usage']);
    const sample = Array.from({ length: 20_000 }, (_, i) => `w${i}`);
    const share = sample.filter(isWordHeldOut).length / sample.length;
    expect(share).toBeGreaterThan(WORDNET_HELD_OUT_FRACTION * 0.8);
    expect(share).toBeLessThan(WORDNET_HELD_OUT_FRACTION * 1.2);
  });
});
