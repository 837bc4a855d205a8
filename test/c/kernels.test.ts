/**
 * Runs the C kernel tests (c/test/test_kernels.c): every kernel of every ISA
 * this CPU supports against its scalar _ref, plus the thread pool.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const cDir = fileURLToPath(new URL('../../c/', import.meta.url));
const binary = `${cDir}build/test_kernels`;

describe('libbraid kernels (C)', () => {
  it('builds and passes test_kernels on every available ISA', () => {
    execFileSync('make', ['-C', cDir, '-j2', 'build/test_kernels'], { stdio: 'pipe' });
    const run = spawnSync(binary, [], { encoding: 'utf8', env: { ...process.env, BRAID_ISA: '' } });
    const out = run.stdout ?? '';
    const failures = out.split('\n').filter((line) => line.startsWith('FAIL'));
    expect(failures, out).toEqual([]);
    expect(run.status, `${out}\n${run.stderr ?? ''}`).toBe(0);

    const systemLine = out.split('\n').find((line) => line.startsWith('system: '));
    expect(systemLine, out).toBeDefined();
    const info = JSON.parse((systemLine ?? '').slice('system: '.length)) as { isa_available: string[] };
    expect(info.isa_available).toContain('ref');

    const testedLine = out.split('\n').find((line) => line.startsWith('isa tested:'));
    expect(testedLine, out).toBeDefined();
    const tested = (testedLine ?? '').slice('isa tested:'.length).trim().split(/\s+/);
    for (const isa of info.isa_available) expect(tested).toContain(isa);
    expect(tested).toContain('ref');
    for (const isa of tested) {
      for (const kernel of ['gemv_bt2', 'gemm_bt2', 'quantize_act', 'gemv_f32', 'gemm_f32', 'rmsnorm', 'swiglu', 'delta_step']) {
        expect(out).toMatch(new RegExp(`^ok +${isa} +${kernel} `, 'm'));
      }
    }
  });
});
