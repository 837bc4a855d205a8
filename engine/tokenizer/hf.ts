/**
 * Hugging Face `tokenizer.json` → TokenizerSpec, for the byte-level BPE
 * tokenizers braid can run exactly: GPT-2's (ByteLevel pre-tokenizer with
 * its built-in regex) and o200k-style ones (a Split with tiktoken's o200k
 * regex, then ByteLevel without regex). Anything whose encoding braid would
 * not reproduce (WordPiece, Unigram, normalizers, byte fallback, other
 * regexes, ...) is refused with "not supported: ..." rather than imported
 * approximately.
 */
import { MAX_VOCAB, specFromVocab, type AddedToken, type ImportedVocab, type SpecialTokenNames } from './import-vocab.ts';
import { unreachableTokens } from './reachable.ts';
import type { TokenizerSpec } from './spec.ts';
import { StringIndex } from './string-index.ts';

export interface HfTokenizerOptions extends SpecialTokenNames {
  /** Spec name; default "hf-<pre>". */
  name?: string;
  chatTemplate?: string;
  provenance?: string;
}

type Obj = Record<string, unknown>;

function fail(what: string): never {
  throw new Error(`tokenizer.json: ${what}`);
}
function unsupported(what: string): never {
  throw new Error(`tokenizer.json: not supported: ${what}`);
}
function isObj(v: unknown): v is Obj {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
const typeOf = (v: unknown): string => (isObj(v) && typeof v.type === 'string' ? v.type : JSON.stringify(v));

/*
 * The split regexes as tokenizer.json spells them (Rust regex syntax), keyed to
 * the tokenizer.ggml.pre name whose JS regex (pretokenize.ts) matches the same.
 * Exact strings: a pattern braid has not been checked against is refused.
 */
const GPT2_PATTERN = String.raw`'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`;
const O200K_PATTERN = [
  String.raw`[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?`,
  String.raw`[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?`,
  String.raw`\p{N}{1,3}`,
  String.raw` ?[^\s\p{L}\p{N}]+[\r\n/]*`,
  String.raw`\s*[\r\n]+`,
  String.raw`\s+(?!\S)`,
  String.raw`\s+`,
].join('|');
const SPLIT_PATTERNS: ReadonlyMap<string, string> = new Map([
  [GPT2_PATTERN, 'gpt-2'],
  [O200K_PATTERN, 'gpt-4o'],
]);

/** A ByteLevel step; `withRegex` is whether it must also split (GPT-2's regex). */
function checkByteLevel(p: Obj, withRegex: boolean): void {
  if (p.add_prefix_space === true) unsupported('ByteLevel add_prefix_space (a space prepended to the input)');
  const useRegex = p.use_regex ?? true;
  if (useRegex !== withRegex) {
    unsupported(`ByteLevel use_regex ${String(useRegex)} ${withRegex ? 'without a Split before it' : 'after a Split'}`);
  }
}

/** The tokenizer.ggml.pre name of a tokenizer.json pre_tokenizer. */
function preName(pre: unknown): string {
  if (pre === null || pre === undefined) unsupported('no pre_tokenizer (byte-level BPE needs ByteLevel)');
  if (!isObj(pre)) fail('"pre_tokenizer" must be an object');
  if (pre.type === 'ByteLevel') {
    checkByteLevel(pre, true);
    return 'gpt-2';
  }
  if (pre.type !== 'Sequence') unsupported(`pre_tokenizer ${typeOf(pre)}`);
  const steps = pre.pretokenizers;
  if (!Array.isArray(steps) || !steps.every(isObj)) fail('"pre_tokenizer.pretokenizers" must be an array of objects');
  if (steps.length === 1 && steps[0]!.type === 'ByteLevel') return preName(steps[0]);
  const [split, byteLevel] = steps;
  if (steps.length !== 2 || split?.type !== 'Split' || byteLevel?.type !== 'ByteLevel') {
    unsupported(`pre_tokenizer Sequence [${steps.map(typeOf).join(', ')}] (braid reads [Split, ByteLevel])`);
  }
  checkByteLevel(byteLevel, false);
  const pattern = isObj(split.pattern) ? split.pattern.Regex : undefined;
  if (typeof pattern !== 'string') unsupported(`Split pattern ${JSON.stringify(split.pattern)} (braid reads a Regex)`);
  if (split.behavior !== 'Isolated' || split.invert === true) {
    unsupported(`Split behavior ${JSON.stringify(split.behavior)}${split.invert === true ? ' inverted' : ''} (braid reads Isolated)`);
  }
  const name = SPLIT_PATTERNS.get(pattern);
  if (name === undefined) unsupported(`Split regex ${JSON.stringify(pattern)} (braid knows the GPT-2 and o200k regexes)`);
  return name;
}

function checkModel(model: unknown): Obj {
  if (!isObj(model)) fail('"model" must be an object');
  const type = model.type ?? (model.merges !== undefined ? 'BPE' : undefined);
  if (type !== 'BPE') unsupported(`model type ${JSON.stringify(type)} (braid reads byte-level BPE)`);
  if (model.byte_fallback === true) unsupported('BPE byte_fallback (SentencePiece-style BPE)');
  if (model.dropout !== undefined && model.dropout !== null && model.dropout !== 0) unsupported('BPE dropout');
  for (const k of ['continuing_subword_prefix', 'end_of_word_suffix'] as const) {
    const v = model[k];
    if (v !== undefined && v !== null && v !== '') unsupported(`BPE ${k} ${JSON.stringify(v)}`);
  }
  return model;
}

function readVocab(model: Obj): (string | undefined)[] {
  const vocab = model.vocab;
  if (!isObj(vocab)) fail('"model.vocab" must be an object of token → id');
  const tokens: (string | undefined)[] = [];
  for (const t of Object.keys(vocab)) {
    const id = vocab[t];
    if (typeof id !== 'number' || !Number.isInteger(id) || id < 0 || id >= MAX_VOCAB) {
      fail(`vocab id of ${JSON.stringify(t)} is not an integer in 0..${MAX_VOCAB - 1}`);
    }
    if (tokens[id] !== undefined) fail(`vocab id ${id} is given to both ${JSON.stringify(tokens[id])} and ${JSON.stringify(t)}`);
    tokens[id] = t;
  }
  return tokens;
}

/** Merges as "left right" strings; tokenizer.json has them so or as [left, right] pairs. */
function readMerges(model: Obj, vocab: StringIndex): string[] {
  if (!Array.isArray(model.merges)) fail('"model.merges" must be an array');
  const list: unknown[] = model.merges;
  const merges: string[] = new Array<string>(list.length);
  // Declarations, not arrows: TypeScript narrows after calls to declared never-returning functions only.
  function notTwo(i: number): never {
    fail(`merge ${i} ${JSON.stringify(list[i])} is not two tokens`);
  }
  function missing(i: number, t: string): never {
    fail(`merge ${i} ${JSON.stringify(list[i])}: ${JSON.stringify(t)} is not in the vocabulary`);
  }
  for (let i = 0; i < list.length; i++) {
    let m: unknown = list[i];
    if (Array.isArray(m)) {
      const [a, b] = m as unknown[];
      if (m.length !== 2 || typeof a !== 'string' || typeof b !== 'string') notTwo(i);
      // GGUF stores merges as "a b", so a part with a space could not be read back.
      if (a.includes(' ') || b.includes(' ')) unsupported(`merge ${i} ${JSON.stringify(m)} has a token containing a space`);
      m = `${a} ${b}`;
    }
    if (typeof m !== 'string') fail(`merge ${i} is neither "a b" nor [a, b]`);
    const sp = m.indexOf(' ');
    if (sp <= 0 || sp === m.length - 1 || m.indexOf(' ', sp + 1) >= 0) notTwo(i);
    // Ranges of m, not slices: 200k merges would otherwise mean 600k new strings.
    if (vocab.get(m, 0, sp) < 0) missing(i, m.slice(0, sp));
    if (vocab.get(m, sp + 1) < 0) missing(i, m.slice(sp + 1));
    if (vocab.getWithout(m, sp) < 0) missing(i, m.slice(0, sp) + m.slice(sp + 1));
    merges[i] = m;
  }
  return merges;
}

function readAdded(json: Obj): AddedToken[] {
  const list = json.added_tokens ?? [];
  if (!Array.isArray(list)) fail('"added_tokens" must be an array');
  return list.map((a: unknown, i: number) => {
    if (!isObj(a) || !Number.isInteger(a.id) || typeof a.content !== 'string' || a.content === '') {
      fail(`added_tokens[${i}] needs an integer "id" and a non-empty "content"`);
    }
    // braid matches added tokens as exact text; these options change what around them is consumed.
    for (const k of ['lstrip', 'rstrip', 'single_word'] as const) {
      if (a[k] === true) unsupported(`added token ${JSON.stringify(a.content)} with ${k}`);
    }
    return { id: a.id as number, content: a.content, special: a.special === true };
  });
}

function checkNormalizer(n: unknown): void {
  if (n === null || n === undefined) return;
  if (isObj(n) && n.type === 'Sequence' && Array.isArray(n.normalizers) && n.normalizers.length === 0) return;
  unsupported(`normalizer ${typeOf(n)}`);
}

function checkDecoder(d: unknown): void {
  if (d === null || d === undefined || (isObj(d) && d.type === 'ByteLevel')) return;
  unsupported(`decoder ${typeOf(d)} (byte-level BPE decodes with ByteLevel)`);
}

/**
 * What the post-processor adds around a sequence: nothing (ByteLevel), or a
 * TemplateProcessing with one leading special token (Llama-3 style bos).
 */
function postBos(p: unknown): string | null {
  if (p === null || p === undefined || (isObj(p) && p.type === 'ByteLevel')) return null;
  if (!isObj(p) || p.type !== 'TemplateProcessing' || !Array.isArray(p.single)) unsupported(`post_processor ${typeOf(p)}`);
  const items = p.single.map((it: unknown) => {
    if (isObj(it) && isObj(it.SpecialToken) && typeof it.SpecialToken.id === 'string') return it.SpecialToken.id;
    if (isObj(it) && isObj(it.Sequence)) return null;
    return unsupported(`post_processor template item ${JSON.stringify(it)}`);
  });
  if (items.length === 1 && items[0] === null) return null;
  if (items.length === 2 && typeof items[0] === 'string' && items[1] === null) return items[0];
  unsupported('post_processor template other than [bos?, $A] (braid adds at most a leading bos)');
}

/**
 * A TokenizerSpec from a parsed tokenizer.json. Which tokens are bos/eos/pad
 * is not in that file (tokenizer_config.json says, see
 * hfTokenizerOptionsFromConfig); the defaults suit GPT-2 and o200k.
 */
export function tokenizerSpecFromHf(json: unknown, opts: HfTokenizerOptions = {}): TokenizerSpec {
  if (!isObj(json)) fail('not a JSON object');
  const model = checkModel(json.model);
  checkNormalizer(json.normalizer);
  checkDecoder(json.decoder);
  const pre = preName(json.pre_tokenizer);
  const bosFromTemplate = postBos(json.post_processor);
  const tokens = readVocab(model);
  const index = new StringIndex(tokens.length);
  tokens.forEach((t, id) => t !== undefined && index.add(t, id));
  const vocab: ImportedVocab = {
    tokens,
    merges: readMerges(model, index),
    added: readAdded(json),
  };
  if (model.ignore_merges === true) {
    // Added tokens are split out before BPE, so they need not be reachable.
    const added = new Set(vocab.added.map((a) => a.id));
    const { count, first } = unreachableTokens(
      tokens.map((t, id) => (added.has(id) ? undefined : t)),
      vocab.merges,
    );
    if (count > 0) {
      unsupported(`ignore_merges with ${count} tokens that merging cannot build (first ${JSON.stringify(first)}); braid always merges`);
    }
  }
  return specFromVocab(vocab, {
    ...opts,
    name: opts.name ?? `hf-${pre}`,
    pre,
    bosToken: opts.bosToken ?? bosFromTemplate ?? undefined,
    addBos: opts.addBos ?? bosFromTemplate !== null,
    provenance: opts.provenance ?? 'imported from a Hugging Face tokenizer.json',
  });
}

/** The bos/eos/pad names, add_bos_token and chat_template of a tokenizer_config.json. */
export function hfTokenizerOptionsFromConfig(config: unknown): HfTokenizerOptions {
  if (!isObj(config)) throw new Error('tokenizer_config.json: not a JSON object');
  // Token fields are a string or an AddedToken object {content, ...}, or null.
  const token = (k: string): string | undefined => {
    const v = config[k];
    if (typeof v === 'string') return v;
    if (isObj(v) && typeof v.content === 'string') return v.content;
    if (v === undefined || v === null) return undefined;
    throw new Error(`tokenizer_config.json: "${k}" must be a string or {"content": ...}`);
  };
  const opts: HfTokenizerOptions = {};
  const bos = token('bos_token');
  const eos = token('eos_token');
  const pad = token('pad_token');
  if (bos !== undefined) opts.bosToken = bos;
  if (eos !== undefined) opts.eosToken = eos;
  if (pad !== undefined) opts.padToken = pad;
  if (typeof config.add_bos_token === 'boolean') opts.addBos = config.add_bos_token;
  const tpl = config.chat_template;
  if (typeof tpl === 'string') opts.chatTemplate = tpl;
  else if (Array.isArray(tpl)) {
    // Several named templates: the "default" one is what transformers applies.
    const d: unknown = tpl.find((t: unknown) => isObj(t) && t.name === 'default');
    if (isObj(d) && typeof d.template === 'string') opts.chatTemplate = d.template;
  }
  return opts;
}
