/**
 * Writes the default model, models/chimera-tiny.gguf: a randomly initialised
 * (untrained) Chimera with the committed tokenizer, fixed seed.
 *
 *   node --import tsx scripts/make-default-model.ts [--force]
 *
 * The sidecar models/chimera-tiny.gguf.json records a hash of everything the
 * file is derived from (tokenizer JSON, config, seed, the init and writer
 * sources) and the SHA-256 of the file itself; when both still match, the
 * script does nothing, so `npm install` and `npm run build` stay cheap.
 */
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, renameSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chimeraTinyConfig } from '../engine/model-init/chimera-config.ts';
import { writeRandomChimera } from '../engine/model-init/init-chimera.ts';
import { parseTokenizerSpec } from '../engine/tokenizer/spec.ts';

const SEED = 20250101;
const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const tokenizerPath = join(root, 'models/tokenizer/braid-bpe-4k.json');
const modelPath = join(root, 'models/chimera-tiny.gguf');
const sidecarPath = `${modelPath}.json`;
/** Sources whose change must regenerate the model. */
const SOURCES = [
  'engine/model-init/init-chimera.ts',
  'engine/model-init/chimera-config.ts',
  'engine/gguf/writer.ts',
  'engine/gguf/types.ts',
  'engine/tokenizer/spec.ts',
];

function sha256(data: string | Uint8Array): string {
  return createHash('sha256').update(data).digest('hex');
}

interface Sidecar {
  inputsHash: string;
  fileSha256: string;
  bytes: number;
  seed: number;
}

function readSidecar(): Sidecar | null {
  try {
    return JSON.parse(readFileSync(sidecarPath, 'utf8')) as Sidecar;
  } catch {
    return null;
  }
}

const started = Date.now();
const tokenizerJson = readFileSync(tokenizerPath, 'utf8');
const tokenizer = parseTokenizerSpec(JSON.parse(tokenizerJson), tokenizerPath);
const config = chimeraTinyConfig(tokenizer.tokens.length);
const inputsHash = sha256(
  JSON.stringify({
    tokenizer: sha256(tokenizerJson),
    config,
    seed: SEED,
    sources: SOURCES.map((s) => sha256(readFileSync(join(root, s)))),
  }),
);

const rel = relative(process.cwd(), modelPath) || modelPath;
const prior = readSidecar();
if (!process.argv.includes('--force') && prior?.inputsHash === inputsHash && existsSync(modelPath)) {
  if (sha256(readFileSync(modelPath)) === prior.fileSha256) {
    console.log(`make-default-model: ${rel} is up to date`);
    process.exit(0);
  }
  console.log(`make-default-model: ${rel} does not match its recorded hash, rebuilding`);
}

console.log(
  `make-default-model: writing ${rel} (D=${config.embeddingLength}, I=${config.feedForwardLength}, ` +
    `L=${config.layerTypes.length}, vocab=${config.vocabSize}, seed=${SEED})`,
);
await writeRandomChimera(modelPath, config, SEED, { tokenizer });
const sidecar: Sidecar = {
  inputsHash,
  fileSha256: sha256(readFileSync(modelPath)),
  bytes: statSync(modelPath).size,
  seed: SEED,
};
writeFileSync(`${sidecarPath}.tmp`, JSON.stringify(sidecar, null, 2) + '\n');
renameSync(`${sidecarPath}.tmp`, sidecarPath);
console.log(`make-default-model: wrote ${(sidecar.bytes / 1e6).toFixed(1)} MB in ${((Date.now() - started) / 1000).toFixed(1)} s`);
