/**
 * Checks the default model, models/chimera-tiny.gguf: a Chimera trained here by
 * `braid train` (the exact command is `npm run train:default`; the model card is
 * models/chimera-tiny.md) and committed to the repository, so `npm install &&
 * npm start` serves it without training anything.
 *
 *   node --import tsx scripts/check-default-model.ts
 *
 * Verifies the file is present and is the one the card describes (SHA-256 in
 * models/chimera-tiny.sha256); it never writes the model. A missing file is an
 * error with the two ways to get it back.
 */
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const modelPath = join(root, 'models/chimera-tiny.gguf');
const sumPath = join(root, 'models/chimera-tiny.sha256');

if (!existsSync(modelPath)) {
  console.error(
    'check-default-model: models/chimera-tiny.gguf is missing. It is part of the repository: restore it with ' +
      '`git checkout -- models/chimera-tiny.gguf`, or train it again with `npm run train:default` (about 20 minutes on 2 cores).',
  );
  process.exit(1);
}
const actual = createHash('sha256').update(readFileSync(modelPath)).digest('hex');
const expected = existsSync(sumPath) ? readFileSync(sumPath, 'utf8').trim().split(/\s+/)[0] : undefined;
if (expected !== undefined && expected !== actual) {
  // a retrained model is legitimate; say so rather than fail the install
  console.warn(`check-default-model: models/chimera-tiny.gguf differs from models/chimera-tiny.sha256 (${actual.slice(0, 12)}…): a locally trained model?`);
} else {
  console.log(`check-default-model: models/chimera-tiny.gguf ok (${actual.slice(0, 12)}…)`);
}
