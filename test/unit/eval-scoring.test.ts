/**
 * The scoring rules of scripts/eval-model.ts (engine/eval/scoring.ts, ngram.ts):
 * definition overlap, number extraction, bits per byte, n-gram smoothing on a
 * toy corpus. No model.
 */
import { describe, expect, it } from 'vitest';
import {
  bigramAddK,
  bigramKneserNey,
  fitBaselines,
  NgramCounts,
  ngramNats,
  TrigramCounts,
  trigramKneserNey,
  SMOOTHING_GRID,
  unigramAddK,
  type NgramModel,
} from '../../engine/eval/ngram.ts';
import {
  answerNumber,
  bitsPerByte,
  contentStems,
  definitionPart,
  posPrefix,
  scoreArithmetic,
  scoreDefinition,
  setF1,
  stem,
  tokenNats,
} from '../../engine/eval/scoring.ts';
import type { ExpectedSense } from '../../engine/training/data/wordnet-chats.ts';

describe('stem and content words', () => {
  it('conflates the inflections glosses differ by', () => {
    for (const [a, b] of [
      ['horses', 'horse'],
      ['moved', 'moving'],
      ['studies', 'studied'],
      ['boxes', 'box'],
      ['quickly', 'quick'],
    ]) {
      expect(stem(a!), `${a} ~ ${b}`).toBe(stem(b!));
    }
    expect(stem('glass')).toBe('glass');
    expect(stem('bus')).toBe('bus');
    expect(stem('red')).toBe('red');
  });

  it('drops stopwords, gloss fillers, part-of-speech names and the headword', () => {
    expect([...contentStems('The dogs of someone, usually in a noun sense; dog', ['dog'])]).toEqual(['sens']);
    expect(contentStems('a member of the genus Canis')).toEqual(new Set(['member', 'genus', 'canis']));
  });

  it('F1 of sets, 0 when either is empty', () => {
    expect(setF1(new Set(['a', 'b']), new Set(['b', 'c']))).toBeCloseTo(0.5);
    expect(setF1(new Set(), new Set(['a']))).toBe(0);
  });
});

describe('definition scoring', () => {
  const dog: ExpectedSense[] = [{ pos: 'noun', definition: 'a member of the genus Canis that has been domesticated by man' }];
  const reference = 'The word dog (noun): a member of the genus Canis that has been domesticated by man.\nExample: "The dog barked all night."';

  it('splits off the example line and reads the "word (pos):" prefix', () => {
    expect(definitionPart(reference)).toBe('The word dog (noun): a member of the genus Canis that has been domesticated by man.');
    expect(posPrefix('The word dog (noun): a member')).toEqual({ word: 'dog', pos: 'noun' });
    // The bare "word (pos):" lines earlier models were trained to write still parse.
    expect(posPrefix('dog (noun): a member')).toEqual({ word: 'dog', pos: 'noun' });
    expect(posPrefix('a member of the genus')).toBeNull();
  });

  it('the reference answer itself is exact, recognisable and has the right prefix', () => {
    expect(scoreDefinition(reference, 'dog', dog, reference)).toEqual({ overlap: 1, recognised: true, posExact: true, exact: true });
  });

  it('a paraphrase sharing most content words is recognisable but not exact', () => {
    const s = scoreDefinition('The word dog (noun): a domesticated member of genus Canis.', 'dog', dog, reference);
    // got {domesticat, member, genus, canis} vs gloss {member, genus, canis, domesticat, man}: F1 = 8/9
    expect(s.overlap).toBeCloseTo(8 / 9);
    expect(s).toMatchObject({ recognised: true, posExact: true, exact: false });
  });

  it('the right format with the wrong meaning or the wrong part of speech is caught', () => {
    const wrong = scoreDefinition('The word dog (verb): go after with the intent to catch.', 'dog', dog, reference);
    expect(wrong).toEqual({ overlap: 0, recognised: false, posExact: false, exact: false });
    // The prefix and the headword earn nothing: an answer that only echoes them scores 0.
    expect(scoreDefinition('The word dog (noun): dog dog dog.', 'dog', dog, reference).overlap).toBe(0);
    expect(scoreDefinition('', 'dog', dog, reference).overlap).toBe(0);
  });

  it('a bare "dog (noun):" answer (the earlier format) is scored on its gloss but lacks the exact prefix', () => {
    const s = scoreDefinition('dog (noun): a member of the genus Canis that has been domesticated by man.', 'dog', dog, reference);
    expect(s).toMatchObject({ overlap: 1, recognised: true, posExact: false, exact: false });
  });

  it('the example line is not scored', () => {
    const s = scoreDefinition('The word dog (noun): a kind of tree.\nExample: "a member of the genus Canis domesticated by man"', 'dog', dog, reference);
    expect(s.recognised).toBe(false);
  });

  it('a two-sense answer is matched against either gloss or both', () => {
    const two: ExpectedSense[] = [
      { pos: 'verb', definition: 'move fast by using the legs' },
      { pos: 'noun', definition: 'a score in baseball' },
    ];
    const ref = 'The word run (verb): move fast by using the legs.\nThe word run (noun): a score in baseball.';
    expect(scoreDefinition(ref, 'run', two, ref).overlap).toBe(1);
    const first = scoreDefinition('The word run (verb): move fast using legs.', 'run', two, ref);
    expect(first.overlap).toBe(1);
    expect(first.posExact).toBe(true);
    const second = scoreDefinition('The word run (noun): a baseball score.', 'run', two, ref);
    expect(second).toMatchObject({ overlap: 1, recognised: true, posExact: false });
  });
});

describe('arithmetic scoring', () => {
  it('reads the number after the last "=", else the last integer', () => {
    expect(answerNumber('17 + 25 = 42.')).toBe(42);
    expect(answerNumber('42')).toBe(42);
    expect(answerNumber('The answer is 7, not 8')).toBe(8);
    expect(answerNumber('9 - 12 = -3.')).toBe(-3);
    expect(answerNumber('3 = 4 = 5')).toBe(5);
    expect(answerNumber('17 + 25 =')).toBe(25);
    expect(answerNumber('no idea')).toBeNull();
  });

  it('correct is numeric, exact is the whole reference', () => {
    expect(scoreArithmetic('17 + 25 = 42.', 42, '17 + 25 = 42.')).toEqual({ got: 42, correct: true, exact: true });
    expect(scoreArithmetic(' 42 \n', 42, '17 + 25 = 42.')).toEqual({ got: 42, correct: true, exact: false });
    expect(scoreArithmetic('17 + 25 = 43.', 42, '17 + 25 = 42.')).toEqual({ got: 43, correct: false, exact: false });
    expect(scoreArithmetic('17 + 25 = 420.', 42, '17 + 25 = 42.').correct).toBe(false);
  });
});

describe('bits per byte', () => {
  it('is nats over ln 2 · bytes', () => {
    expect(bitsPerByte(100 * Math.LN2, 100)).toBeCloseTo(1, 12);
    expect(bitsPerByte(8 * Math.LN2 * 3, 3)).toBeCloseTo(8, 12);
    expect(() => bitsPerByte(1, 0)).toThrow(RangeError);
  });

  it('token nats are −log softmax, stable for large logits', () => {
    const uniform = new Float32Array(4096).fill(3);
    expect(tokenNats(uniform, 17)).toBeCloseTo(Math.log(4096), 9);
    // exp(1000) overflows float64: only a max-subtracted logsumexp survives this row.
    const row = Float32Array.from([1000, 1001]);
    expect(tokenNats(row, 1)).toBeCloseTo(Math.log1p(Math.E) - 1, 12);
    expect(tokenNats(row, 0)).toBeCloseTo(Math.log1p(Math.E), 12);
    expect(() => tokenNats(row, 2)).toThrow(RangeError);
  });
});

describe('n-gram baselines on a toy corpus', () => {
  // V = 5, start = EOS = 0 (braid's BOS is its EOS); documents 1 2 1 and 2 1.
  const vocab = { vocabSize: 5, startId: 0, eosId: 0 };
  const counts = new NgramCounts(vocab);
  counts.add([1, 2, 1]);
  counts.add(Int32Array.from([2, 1]));
  const sumOver = (m: NgramModel, prev: number, prev2 = 0) => [0, 1, 2, 3, 4].reduce((a, w) => a + Math.exp(m.logProb(prev, w, prev2)), 0);

  it('counts targets, histories and types with start and EOS', () => {
    expect(counts.targets).toBe(7);
    expect(Array.from(counts.unigram)).toEqual([2, 3, 2, 0, 0]);
    expect(Array.from(counts.history)).toEqual([2, 3, 2, 0, 0]);
    expect(counts.pair(2, 1)).toBe(2);
    expect(counts.pair(1, 0)).toBe(2);
    expect(counts.bigramTypes).toBe(5);
    expect(Array.from(counts.followers)).toEqual([2, 2, 1, 0, 0]);
    expect(Array.from(counts.predecessors)).toEqual([1, 2, 2, 0, 0]);
  });

  it('add-k and Kneser–Ney give the hand-computed probabilities', () => {
    expect(Math.exp(unigramAddK(counts, 1).logProb(0, 3, 0))).toBeCloseTo(1 / 12, 12);
    expect(Math.exp(bigramAddK(counts, 0.5).logProb(2, 1, 0))).toBeCloseTo(2.5 / 4.5, 12);
    const kn = bigramKneserNey(counts, 0.5);
    // Pc(1) = (2 − 0.5 + 0.5·3/5)/5 = 0.36; P(1|2) = (2 − 0.5 + 0.5·1·0.36)/2 = 0.84
    expect(Math.exp(kn.logProb(2, 1, 0))).toBeCloseTo(0.84, 12);
    // An unseen history falls back to the continuation unigram: Pc(3) = (0.5·3/5)/5
    expect(Math.exp(kn.logProb(4, 3, 0))).toBeCloseTo(0.06, 12);
  });

  const trigrams = new TrigramCounts(vocab);
  trigrams.add([1, 2, 1]);
  trigrams.add(Int32Array.from([2, 1]));

  it('counts trigrams with two start tokens and the continuation counts below them', () => {
    // targets with their two-token histories: (0 0)1 (0 1)2 (1 2)1 (2 1)0 | (0 0)2 (0 2)1 (2 1)0
    expect(trigrams.trigram.get((2 * 5 + 1) * 5 + 0)).toBe(2);
    expect(trigrams.context.get(0 * 5 + 0)).toBe(2);
    expect(trigrams.contextTypes.get(0 * 5 + 0)).toBe(2);
    // N1+(·vw): (2 1) after 1 and after 0; (0 1), (0 2), (1 2), (1 0) after one token each
    expect(trigrams.middle.get(2 * 5 + 1)).toBe(2);
    expect(trigrams.middle.get(1 * 5 + 0)).toBe(1);
    expect(trigrams.middleTypes).toBe(5);
    expect(Array.from(trigrams.middleHistory)).toEqual([2, 2, 2, 0, 0]);
    expect(Array.from(trigrams.middleFollowers)).toEqual([2, 2, 1, 0, 0]);
    expect(Array.from(trigrams.lowPredecessors)).toEqual([1, 2, 2, 0, 0]);
  });

  it('Kneser–Ney trigram gives the hand-computed probability and backs off through its levels', () => {
    const kn3 = trigramKneserNey(trigrams, 0.5);
    // P1(1) = (2 − 0.5 + 0.5·3/5)/5 = 0.36; P2(1|2) = (2 − 0.5 + 0.5·1·P1)/2 = 0.84;
    // P3(1|0 2) = (1 − 0.5 + 0.5·1·P2)/1 = 0.92
    const p1 = 0.36;
    expect(Math.exp(kn3.logProb(2, 1, 0))).toBeCloseTo(0.92, 12);
    // unseen history (4 3): P2(·|3) has no counts either, so P1 alone
    expect(Math.exp(kn3.logProb(3, 1, 4))).toBeCloseTo(p1, 12);
  });

  it('every model is a distribution over the vocabulary for every history', () => {
    for (const m of [unigramAddK(counts, 0.1), bigramAddK(counts, 0.01), bigramKneserNey(counts, 0.75), trigramKneserNey(trigrams, 0.75)]) {
      for (let prev = 0; prev < 5; prev++)
        for (let prev2 = 0; prev2 < 5; prev2++) expect(sumOver(m, prev, prev2), `${m.name} after ${prev2} ${prev}`).toBeCloseTo(1, 12);
    }
  });

  it('scores text tokens only, the start token as first history', () => {
    const m = bigramAddK(counts, 1);
    const r = ngramNats(m, [[1, 2]], 0);
    expect(r.targets).toBe(2);
    expect(r.nats).toBeCloseTo(-(m.logProb(0, 1, 0) + m.logProb(1, 2, 0)), 12);
  });

  it('tunes on the dev slice, then counts it too', () => {
    const train = Array.from({ length: 20 }, (_, i) => [1, 2, 1, 2, 3 + (i % 2)]);
    const dev = [[1, 2, 1, 2, 4]];
    const fitted = fitBaselines(train, dev, vocab);
    expect(fitted.map((f) => f.model.name)).toEqual(['unigram (add-k)', 'bigram (add-k)', 'bigram (Kneser-Ney)', 'trigram (Kneser-Ney)']);
    const grids = [SMOOTHING_GRID.unigramK, SMOOTHING_GRID.bigramK, SMOOTHING_GRID.kneserNeyD, SMOOTHING_GRID.kneserNeyD];
    fitted.forEach((f, i) => {
      expect(f.tuning.map((t) => t.value)).toEqual([...grids[i]!]);
      const best = f.tuning.reduce((a, b) => (b.natsPerToken < a.natsPerToken ? b : a));
      expect(f.model.params).toBe(`${i >= 2 ? 'd' : 'k'}=${best.value}`);
    });
    // Refitted on train + dev: 4 was seen 10 + 1 times, 3 ten times.
    const uni = fitted[0]!.model;
    expect(uni.logProb(0, 4, 0)).toBeGreaterThan(uni.logProb(0, 3, 0));
  });
});
