/**
 * Runs the C tests of the MoA architecture (c/test/test_moa.c): a double-precision reference
 * forward per metric (l2, cosine, maha_diag) on every ISA, then — once per ISA this CPU has
 * (BRAID_ISA) — cached decode == full recompute bit for bit over 256 steps with ball pruning on,
 * state save/load/copy/rewind, abort, and the capacity error.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const cDir = fileURLToPath(new URL('../../c/', import.meta.url));

function runMoa(isa = ''): string {
  execFileSync('make', ['-C', cDir, '-j2', 'build/test_moa'], { stdio: 'pipe' });
  const run = spawnSync(`${cDir}build/test_moa`, [], {
    encoding: 'utf8',
    timeout: 170_000,
    env: { ...process.env, BRAID_ISA: isa },
  });
  const out = run.stdout ?? '';
  const failures = out.split('\n').filter((line) => line.startsWith('FAIL'));
  expect(failures, out).toEqual([]);
  expect(run.status, `${out}\n${run.stderr ?? ''}`).toBe(0);
  const summary = /^test_moa: (\d+) checks, 0 failed$/m.exec(out);
  expect(summary, out).not.toBeNull();
  expect(Number(summary?.[1])).toBeGreaterThan(100);
  return out;
}

describe('libbraid MoA (C)', () => {
  it('test_moa: reference per metric, cached decode == recompute, state, capacity on every ISA', { timeout: 600_000 }, () => {
    const out = runMoa();
    for (const metric of ['l2', 'cosine', 'maha_diag']) {
      expect(out).toMatch(new RegExp(`^reference ${metric} \\(2 layers, .*isa 0\\): max rel err`, 'm'));
    }
    const systemLine = out.split('\n').find((line) => line.startsWith('system: '));
    expect(systemLine, out).toBeDefined();
    const info = JSON.parse((systemLine ?? '').slice('system: '.length)) as { isa_available: string[] };
    expect(info.isa_available).toContain('ref');
    for (const isa of info.isa_available) {
      const forced = isa === info.isa_available.at(-1) ? out : runMoa(isa);
      if (forced !== out) expect(forced).toMatch(new RegExp(`^context tests on isa ${isa}$`, 'm'));
      for (const metric of ['l2', 'cosine', 'maha_diag']) {
        expect(forced).toMatch(new RegExp(`^${metric}: cached decode vs full recompute over 256 steps: bit-identical`, 'm'));
      }
    }
  });
});
