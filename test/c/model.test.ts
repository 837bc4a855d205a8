/**
 * Runs the C tests of the GGUF loader, the Gated DeltaNet recurrence and the
 * Chimera model/context API (c/test/test_gguf.c, test_gdn.c, test_model.c).
 * Each program prints one line per failed check and a summary line; here we
 * require exit 0, no FAIL lines, and a summary with a non-zero check count.
 * test_model runs once per ISA this CPU has (BRAID_ISA), so the bit-identity
 * of prefill and decode is checked for every kernel table.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const cDir = fileURLToPath(new URL('../../c/', import.meta.url));

function runC(name: string, isa = ''): string {
  execFileSync('make', ['-C', cDir, '-j2', `build/${name}`], { stdio: 'pipe' });
  const run = spawnSync(`${cDir}build/${name}`, [], {
    encoding: 'utf8',
    timeout: 110_000,
    env: { ...process.env, BRAID_ISA: isa },
  });
  const out = run.stdout ?? '';
  const failures = out.split('\n').filter((line) => line.startsWith('FAIL'));
  expect(failures, out).toEqual([]);
  expect(run.status, `${out}\n${run.stderr ?? ''}`).toBe(0);
  const summary = new RegExp(`^${name}: (\\d+) checks, 0 failed$`, 'm').exec(out);
  expect(summary, out).not.toBeNull();
  expect(Number(summary?.[1])).toBeGreaterThan(10);
  return out;
}

describe('libbraid model (C)', () => {
  it('test_gguf: valid files parse, corrupt/truncated files fail cleanly', () => {
    const out = runC('test_gguf');
    expect(out).toMatch(/random header flips: \d+ parsed, \d+ rejected/);
  });

  it('test_gdn: chunkwise form equals the recurrence', () => {
    const out = runC('test_gdn');
    expect(out).toMatch(/^T=37 C=8 /m);
    expect(out).toMatch(/^T=64 C=16 /m);
  });

  it('test_model: reference forward, prefill == decode bit for bit on every ISA, state save/load/copy, errors', () => {
    const out = runC('test_model');
    expect(out).toMatch(/^reference \(1 layer, F32 embeddings, isa 0\)/m);
    expect(out).toMatch(/^m1\.gguf: prefill vs decode/m);
    const systemLine = out.split('\n').find((line) => line.startsWith('system: '));
    expect(systemLine, out).toBeDefined();
    const info = JSON.parse((systemLine ?? '').slice('system: '.length)) as { isa_available: string[] };
    expect(info.isa_available).toContain('ref');
    for (const isa of info.isa_available) {
      const forced = runC('test_model', isa);
      expect(forced).toMatch(new RegExp(`^context tests on isa ${isa}$`, 'm'));
      expect(forced).toMatch(/^m2\.gguf: prefill vs decode/m);
    }
  });
});
