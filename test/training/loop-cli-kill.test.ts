/**
 * `braid train` in a child process, killed with SIGKILL after a few
 * checkpoints and resumed with --resume: the final metrics log equals an
 * uninterrupted run's (losses and grad norms bit for bit, BRAID_THREADS=2 in
 * both), and so do the exported weights.
 */
import { readFileSync } from 'node:fs';
import { afterAll, describe, expect, it } from 'vitest';
import { readGguf } from '../../engine/gguf/reader.ts';
import { metaNumber, metaString } from '../../engine/gguf/types.ts';
import { checkpointsIn, STEPS, TrainCliScratch } from './loop-cli-harness.ts';

const s = new TrainCliScratch();
afterAll(() => s.remove());

describe('braid train: kill and resume', () => {
  it('SIGKILL after a few checkpoints, then --resume: the log and the model equal the uninterrupted run\'s', async () => {
    const full = await s.braid(s.args('full'));
    expect(full.err).toBe('');
    expect(full.code).toBe(0);
    expect(full.out).toMatch(/metrics +.*runs\/full\/metrics\.jsonl/);
    expect(full.out).toMatch(/loss plot +.*runs\/full\/loss\.svg/);
    expect(full.out).toMatch(/checkpoints +.*runs\/full\/checkpoints/);
    expect(full.out).toMatch(new RegExp(`wrote .*full\\.gguf: ${STEPS} steps`));
    const reference = s.comparable('full');
    expect(reference.filter((r) => r.type === 'eval').map((r) => r.step)).toEqual([5, 10, 12]);

    const killed = await s.braid(s.args('split'), (out) => (checkpointsIn(out) >= 3 ? 'SIGKILL' : null));
    expect(killed.signal).toBe('SIGKILL');
    expect(s.comparable('split').length).toBeLessThan(reference.length);

    const resumed = await s.braid([...s.args('split'), '--resume']);
    expect(resumed.err).toBe('');
    expect(resumed.code).toBe(0);
    expect(resumed.out).toMatch(new RegExp(`resumed from .*ckpt-\\d+\\.bin at step \\d+/${STEPS}`));
    expect(s.comparable('split')).toEqual(reference);

    const model = await readGguf(s.file('split.gguf'));
    expect(metaString(model.metadata, 'general.name')).toBe('split');
    expect(metaNumber(model.metadata, 'braid.train.steps')).toBe(STEPS);
    expect(metaString(model.metadata, 'braid.provenance')).toMatch(
      new RegExp(`^trained by braid train: data-files \\(train\\.txt\\), ${STEPS} steps, ${STEPS * 64} tokens, `),
    );
    const fullModel = await readGguf(s.file('full.gguf'));
    const a = readFileSync(s.file('full.gguf')).subarray(fullModel.dataOffset);
    const b = readFileSync(s.file('split.gguf')).subarray(model.dataOffset);
    expect(b.equals(a)).toBe(true);
  }, 60_000);
});
