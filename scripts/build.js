#!/usr/bin/env node
// braid build: compiles libbraid (c/) and checks the committed default model.
// Runs as `npm run build` and as the package's postinstall. Plain ESM JS so it
// needs nothing but Node itself (tsx is used only for the model script).
import { spawnSync } from 'node:child_process';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');

function step(title, cmd, args) {
  console.log(`braid build: ${title}: ${cmd} ${args.join(' ')}`);
  const r = spawnSync(cmd, args, { cwd: root, stdio: 'inherit' });
  if (r.error) {
    const hint = r.error.code === 'ENOENT' ? ` (is "${cmd}" installed and on PATH?)` : '';
    fail(`${title}: could not run ${cmd}: ${r.error.message}${hint}`);
  }
  if (r.status !== 0) {
    const how = r.signal ? `was killed by ${r.signal}` : `exited with status ${r.status}`;
    fail(`${title}: \`${cmd} ${args.join(' ')}\` ${how}`);
  }
}

function fail(message) {
  console.error(`braid build FAILED — ${message}`);
  process.exit(1);
}

step('compile libbraid', 'make', ['-C', 'c', '-j2']);
step('default model', process.execPath, ['--import', 'tsx', 'scripts/check-default-model.ts']);
console.log('braid build: done');
