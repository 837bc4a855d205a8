/**
 * Writes the tiny all-component Chimeras of the reference's golden tests, through the project's own
 * writer (writeRandomChimera):
 *
 *   node --import tsx scripts/reference/make-all-model.ts [all|qat|notm] [out.gguf]
 *
 *   all   test/golden/chimera-all/model.gguf: layers GD | XM, TM | SK (prelude | loop | coda),
 *         so every layer kind, Parcae looping (max 3, default 2, truncation "half"), a MoE FFN with
 *         4 experts (top-2, routed scale 1.5) and a shared expert on layer 3, the span-engine risk
 *         gate, the hashed n-gram embedding (order 3, 97 rows); initializer σ 0.1 (logits golden,
 *         plain-FP32 gradient golden)
 *   qat   test/golden/chimera-all-qat/model.gguf: the same at the default σ 0.02 (QAT gradient golden)
 *   notm  the σ 0.1 model with layer 2 a GD instead of the TM (not committed; a spare for checks)
 *
 * D = 128, I = 128, GD/SK 2 heads × 64, XM 2 × 64, TM 2 × 64 with d_m = 64, 4 persistent slots and
 * segments of 4 tokens (so a 16-token batch crosses three segment boundaries), sketch 32, vocab 512
 * (the cut-down BPE of make-tiny-model.ts), seed 7. 0.84 MB.
 *
 * Why two initializer scales. At σ 0.02 the residual stream is mostly the token's own embedding and
 * the mixers move the logits by ~1e-4 relative (one whole loop iteration, or a TM instead of a GD,
 * changed them by less than an int8 rounding flip does), so a logits comparison could not tell a
 * wrong mixer from rounding noise; at σ 0.1 one loop iteration moves them by 5–20% and swapping the
 * TM for a GD by ~50%. But at σ 0.1 one flipped int8 rounding also moves the quantization-aware
 * gradients by ~1e-2 (any two float32 implementations differ by that much), too coarse to see a
 * straight-through mistake (~5e-3, estimated); at σ 0.02 the QAT gradients of C and PyTorch agree to 3.6e-4.
 * Gradients are compared per tensor relative to their own norm, so the small scale costs them nothing.
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
const variant = process.argv[2] ?? 'all';
const FOLDERS: Record<string, string> = { all: 'chimera-all', qat: 'chimera-all-qat', notm: 'chimera-all-notm' };
if (!(variant in FOLDERS)) {
  console.error('usage: make-all-model.ts [all|qat|notm] [out.gguf]');
  process.exit(2);
}
const INIT_RANGE = variant === 'qat' ? 0.02 : 0.1; // see the header
const out = resolve(process.argv[3] ?? join(root, `test/golden/${FOLDERS[variant]}/model.gguf`));

const config: ChimeraConfig = {
  ...chimeraTinyConfig(VOCAB),
  name: FOLDERS[variant]!,
  provenance: 'random-init (untrained), all-component golden test model for the PyTorch reference',
  embeddingLength: 128,
  feedForwardLength: 128,
  layerTypes: variant === 'notm' ? ['GD', 'XM', 'GD', 'SK'] : ['GD', 'XM', 'TM', 'SK'],
  headCount: 2,
  headDim: 64,
  valueDim: 64,
  convKernel: 4,
  chunkSize: 4,
  contextLength: 256,
  xlstm: { headCount: 2, headDim: 64, gateSoftCap: 15, normEps: 1e-5 },
  ...(variant !== 'notm'
    ? { titans: { headCount: 2, headDim: 64, memoryDim: 64, persistentSlots: 4, segmentLength: 4, thetaMax: 0.1 } }
    : {}),
  tsp: { sketchDim: 32 },
  moe: { layers: [3], expertCount: 4, expertUsedCount: 2, sharedExpertCount: 1, feedForwardLength: 128, routedScalingFactor: 1.5 },
  spanGate: true,
  looping: { prelude: [0, 0], loop: [1, 2], coda: [3, 3], max: 3, default: 2, backwardTruncation: 'half' },
  ngram: { order: 3, rows: 97 },
};

const tokenizer = smallTokenizer(readTokenizerSpec(join(root, 'models/tokenizer/braid-bpe-4k.json')), VOCAB);
mkdirSync(dirname(out), { recursive: true });
await writeRandomChimera(out, config, SEED, { tokenizer, initializerRange: INIT_RANGE });
console.log(`make-all-model: wrote ${out} (${config.layerTypes.join(' ')}, looping, MoE on layer 3, risk gate, n-gram order 3, vocab ${VOCAB}, σ ${INIT_RANGE}, seed ${SEED})`);
