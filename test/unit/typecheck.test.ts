/**
 * The code runs through tsx/vitest, which strip types without checking them;
 * this keeps `strict` + `noUncheckedIndexedAccess` enforced on every test run.
 */
import { execFileSync } from 'node:child_process';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect, it } from 'vitest';

const root = path.join(path.dirname(fileURLToPath(import.meta.url)), '../..');

it('the whole project type-checks (tsc --noEmit)', () => {
  // bin/tsc is not in the package's exports map: locate it from package.json.
  const pkg = createRequire(import.meta.url).resolve('typescript/package.json');
  const tsc = path.join(path.dirname(pkg), 'bin/tsc');
  let output = '';
  try {
    execFileSync(process.execPath, [tsc, '-p', root, '--noEmit'], { cwd: root, encoding: 'utf8', stdio: 'pipe' });
  } catch (e) {
    const err = e as { stdout?: string; stderr?: string };
    output = `${err.stdout ?? ''}${err.stderr ?? ''}` || String(e);
  }
  expect(output).toBe('');
});
