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
import { readTokenizerSpec } from '../../engine/tokenizer/spec.ts';
import { smallTokenizer } from './small-tokenizer.ts';

const SEED = 7;
const VOCAB = 512;
const root = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const out = resolve(process.argv[2] ?? join(root, 'test/golden/train-tiny/model.gguf'));

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
