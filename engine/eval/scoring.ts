/**
 * Scoring rules of the model evaluation (scripts/eval-model.ts), pure and
 * model-free so test/unit/eval-scoring.test.ts pins them down:
 *
 *   bits per byte   Σ nats / (ln 2 · UTF-8 bytes of the text scored)
 *   definitions     content-word F1 between the answer's definition lines and
 *                   the expected gloss(es); "recognisable" at F1 ≥ 0.5; plus the
 *                   exact "The word <word> (pos):" prefix and exact definition lines
 *   arithmetic      the number after the answer's last "=" (else its last
 *                   integer) equals the result
 */
import { DEFINITION_LEAD, definitionLine, type ExpectedSense } from '../training/data/wordnet-chats.ts';

/** A definition counts as recognisable when its best content-word F1 reaches this. */
export const RECOGNISED_F1 = 0.5;

/**
 * Function words and the fillers WordNet glosses lean on ("something",
 * "someone"): matching them says nothing about whether the meaning is right.
 * The part-of-speech names are here because every answer line starts with one.
 */
const STOPWORDS = new Set(
  (
    'a an the and or but nor of to in on at by for from with without into onto upon about above below over under ' +
    'between through during before after as than then so such that this these those there here which who whom whose ' +
    'what when where why how it its it\'s is are was were be been being am do does did done have has had having ' +
    'not no yes all any each every some many much more most less least few other another same own only also very ' +
    'can could may might must shall should will would i you he she we they me him her us them my your his our their ' +
    'one ones something someone somebody anything anyone thing things etc e g usually especially often ' +
    'noun verb adjective adverb example'
  ).split(/\s+/),
);

/**
 * A light, reproducible stemmer (not Porter): -ies/-ied → -y or one
 * plural/third-person "s", then one of -ing / -ed / -ly, then a final "e",
 * each only while at least three letters remain. It conflates the inflections glosses differ by
 * ("horses"/"horse", "moved"/"moving"), which is all the overlap needs.
 */
export function stem(word: string): string {
  let w = word.toLowerCase();
  if (w.length > 4 && (w.endsWith('ies') || w.endsWith('ied'))) w = `${w.slice(0, -3)}y`;
  else if (w.endsWith('sses')) w = w.slice(0, -2);
  else if (w.length > 3 && w.endsWith('s') && !/(?:ss|us|is)$/.test(w)) w = w.slice(0, -1);
  for (const suffix of ['ing', 'ed', 'ly']) {
    if (w.endsWith(suffix) && w.length - suffix.length >= 3) {
      w = w.slice(0, -suffix.length);
      break;
    }
  }
  if (w.length > 3 && w.endsWith('e')) w = w.slice(0, -1);
  return w;
}

/** Stems of the content words of `text` (lower-cased letter runs, stopwords and `exclude` dropped). */
export function contentStems(text: string, exclude: readonly string[] = []): Set<string> {
  const skip = new Set(exclude.map(stem));
  const out = new Set<string>();
  for (const w of text.toLowerCase().match(/[a-z]+(?:'[a-z]+)?/g) ?? []) {
    if (w.length < 2 || STOPWORDS.has(w)) continue;
    const s = stem(w);
    if (!skip.has(s)) out.add(s);
  }
  return out;
}

/** F1 of two sets (0 when either is empty: nothing to match is no match). */
export function setF1(a: ReadonlySet<string>, b: ReadonlySet<string>): number {
  if (a.size === 0 || b.size === 0) return 0;
  let both = 0;
  for (const x of a) if (b.has(x)) both++;
  return (2 * both) / (a.size + b.size);
}

/** A definition answer's lines before the first "Example:" line (the training format's definition part). */
export function definitionPart(answer: string): string {
  const lines = answer.trim().split('\n');
  const end = lines.findIndex((l) => /^\s*example\s*:/i.test(l));
  return (end < 0 ? lines : lines.slice(0, end)).join('\n').trim();
}

/**
 * A definition line's prefix: "The word dog (noun):" (the training format,
 * definitionLine) or the bare "dog (noun):" earlier models wrote.
 */
const POS_PREFIX = new RegExp(`^\\s*(?:${DEFINITION_LEAD.trim()}\\s+)?(.+?) \\((noun|verb|adjective|adverb)\\):`, 'i');

/** "The word dog (noun): a member of …" → { word: "dog", pos: "noun" }; null when the line has no such prefix. */
export function posPrefix(line: string): { word: string; pos: string } | null {
  const m = POS_PREFIX.exec(line);
  return m === null ? null : { word: m[1]!, pos: m[2]!.toLowerCase() };
}

export interface DefinitionScore {
  /** Best content-word F1 against one expected gloss or all of them together. */
  overlap: number;
  /** overlap ≥ RECOGNISED_F1. */
  recognised: boolean;
  /** The first line starts exactly with "The word <word> (<leading pos>):" (definitionLine). */
  posExact: boolean;
  /** The definition lines equal the reference's, character for character (after trimming). */
  exact: boolean;
}

/**
 * Scores one answer to "What does <word> mean?". The answer's "The word <word> (pos):"
 * prefixes and the headword itself are left out of the overlap, since every
 * answer in the format has them whatever it says the word means. A two-sense
 * reference is matched against each gloss and against both together, so an
 * answer that gives one sense right or both right counts.
 */
export function scoreDefinition(answer: string, word: string, expected: readonly ExpectedSense[], reference: string): DefinitionScore {
  const part = definitionPart(answer);
  const body = part
    .split('\n')
    .map((l) => l.replace(POS_PREFIX, ''))
    .join('\n');
  const got = contentStems(body, [word]);
  const glosses = expected.map((e) => contentStems(e.definition, [word]));
  const union = new Set(glosses.flatMap((g) => [...g]));
  const candidates = glosses.length > 1 ? [...glosses, union] : glosses;
  const overlap = Math.max(0, ...candidates.map((g) => setF1(got, g)));
  const first = part.split('\n')[0] ?? '';
  const lead = expected[0];
  return {
    overlap,
    recognised: overlap >= RECOGNISED_F1,
    posExact: lead !== undefined && first.trimStart().startsWith(definitionLine(word, lead.pos, '').trimEnd()),
    exact: part === definitionPart(reference),
  };
}

/**
 * The number an arithmetic answer gives: the first integer after its last
 * "=" ("17 + 25 = 42." → 42), else its last integer ("42" → 42), else null.
 * A sign directly before the digits belongs to the number ("= -3" → −3).
 */
export function answerNumber(text: string): number | null {
  const eq = text.lastIndexOf('=');
  if (eq >= 0) {
    const m = /-?\d+/.exec(text.slice(eq + 1));
    if (m !== null) return Number(m[0]);
  }
  const all = text.match(/-?\d+/g);
  return all === null ? null : Number(all[all.length - 1]);
}

export interface ArithmeticScore {
  got: number | null;
  /** The extracted number equals the result. */
  correct: boolean;
  /** The whole answer equals the reference ("17 + 25 = 42."), after trimming. */
  exact: boolean;
}

export function scoreArithmetic(answer: string, result: number, reference: string): ArithmeticScore {
  const got = answerNumber(answer);
  return { got, correct: got === result, exact: answer.trim() === reference.trim() };
}

/** Bits per byte: total cross-entropy in nats over the UTF-8 bytes it predicted. */
export function bitsPerByte(nats: number, bytes: number): number {
  if (!(bytes > 0)) throw new RangeError(`bits per byte needs a positive byte count, got ${bytes}`);
  return nats / (Math.LN2 * bytes);
}

/** −log softmax(row)[target] in nats, accumulated in float64 (logsumexp with the max subtracted). */
export function tokenNats(row: Float32Array, target: number): number {
  const x = row[target];
  if (x === undefined) throw new RangeError(`target ${target} is outside the ${row.length} logits`);
  let max = -Infinity;
  for (let i = 0; i < row.length; i++) if (row[i]! > max) max = row[i]!;
  let sum = 0;
  for (let i = 0; i < row.length; i++) sum += Math.exp(row[i]! - max);
  return Math.log(sum) + max - x;
}

/** Share of true values (0 for an empty list). */
export function rate(flags: readonly boolean[]): number {
  return flags.length === 0 ? 0 : flags.filter(Boolean).length / flags.length;
}
