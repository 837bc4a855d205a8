/**
 * Writes the tiny GD-only Chimera used by the trainer's golden test:
 * test/golden/train-tiny/model.gguf (or the path given as the first argument).
 *
 *   node --import tsx scripts/reference/make-tiny-model.ts [out.gguf]
 *
 * D = 128, I = 256, 2 GD layers, 2 heads × 64 (d_k = d_v = 64), conv 4, vocab 512,
 * seed 7, through the project's own writer (writeRandomChimera). The vocab is
 * kept small so the golden gradients stay small (the embedding gradient is
 * [V, D] float32): the embedded tokenizer is the committed 4k BPE cut down to
 * its 256 byte tokens + its first 253 merges + its 3 control tokens, a valid
 * byte-level BPE of exactly 512 tokens (the C library does not read the
 * tokenizer; it is there so the file is a complete model).
 */
import { mkdirSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chimeraTinyConfig, type ChimeraConfig } from '../../engine/model-init/chimera-config.ts';
import { writeRandomChimera } from '../../engine/model-init/init-chimera.ts';
import { readTokenizerSpec, type TokenizerSpec } from '../../engine/tokenizer/spec.ts';

const SEED = 7;
const VOCAB = 512;
const root = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const out = resolve(process.argv[2] ?? join(root, 'test/golden/train-tiny/model.gguf'));

/** The first `vocab` tokens of a byte-level BPE: bytes, the first merges, then the control tokens. */
function smallTokenizer(full: TokenizerSpec, vocab: number): TokenizerSpec {
  const control = full.tokens.map((_, i) => i).filter((i) => full.token_type[i] !== 1);
  const keep = vocab - control.length; // 256 bytes + merges
  const merges = full.merges.slice(0, keep - 256);
  // in the 4k tokenizer token 256 + i is the result of merge i; check before relying on it
  merges.forEach((m, i) => {
    if (m.replace(' ', '') !== full.tokens[256 + i]) throw new Error(`merge ${i} "${m}" is not token ${256 + i}`);
  });
  const ids = [...Array.from({ length: keep }, (_, i) => i), ...control];
  const remap = (id: number): number => ids.indexOf(id);
  return {
    ...full,
    name: `${full.name}-cut${vocab}`,
    tokens: ids.map((i) => full.tokens[i]!),
    token_type: ids.map((i) => full.token_type[i]!),
    merges,
    bos_token_id: remap(full.bos_token_id),
    eos_token_id: remap(full.eos_token_id),
    padding_token_id: remap(full.padding_token_id),
    provenance: `${full.provenance}; cut to ${vocab} tokens (bytes, first ${merges.length} merges, control tokens) by scripts/reference/make-tiny-model.ts`,
  };
}

const config: ChimeraConfig = {
  ...chimeraTinyConfig(VOCAB),
  name: 'chimera-train-tiny',
  provenance: 'random-init (untrained), golden test model for the trainer',
  embeddingLength: 128,
  feedForwardLength: 256,
  layerTypes: ['GD', 'GD'],
  headCount: 2,
  headDim: 64,
  valueDim: 64,
  convKernel: 4,
  chunkSize: 64,
  contextLength: 256,
};

const tokenizer = smallTokenizer(readTokenizerSpec(join(root, 'models/tokenizer/braid-bpe-4k.json')), VOCAB);
mkdirSync(dirname(out), { recursive: true });
await writeRandomChimera(out, config, SEED, { tokenizer });
console.log(`make-tiny-model: wrote ${out} (D=128, I=256, 2 GD layers, H=2, vocab ${VOCAB}, seed ${SEED})`);
