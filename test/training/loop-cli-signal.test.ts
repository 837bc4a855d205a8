/**
 * `braid train` in a child process: Ctrl-C (SIGINT) finishes the step, saves
 * a checkpoint and exits 130; `braid train --resume --run-dir D` alone (the
 * run dir's saved config) finishes the run. Bad flags are exit code 2 with a
 * message that names them.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { main, type Io } from '../../server/cli.ts';
import { checkpointsIn, STEPS, TrainCliScratch } from './loop-cli-harness.ts';

const s = new TrainCliScratch();
afterAll(() => s.remove());

describe('braid train: Ctrl-C and flags', () => {
  it('Ctrl-C saves a checkpoint and exits 130; --resume with only the run dir finishes the run', async () => {
    // SIGINT at the first checkpoint (step 2), while the run surely goes on
    const stopped = await s.braid(s.args('ctrlc'), (out) => (checkpointsIn(out) >= 1 ? 'SIGINT' : null));
    expect(stopped.code).toBe(130);
    expect(stopped.err).toMatch(/SIGINT: finishing the step and saving a checkpoint/);
    expect(stopped.out).toMatch(new RegExp(`stopped at step \\d+/${STEPS}; checkpoint .*ckpt-\\d+\\.bin\\ncontinue with: braid train --resume --run-dir `));
    const resumed = await s.braid(['train', '--resume', '--run-dir', 'runs/ctrlc']);
    expect(resumed.err).toBe('');
    expect(resumed.code).toBe(0);
    expect(s.comparable('ctrlc').filter((r) => r.type === 'train').map((r) => r.step)).toEqual(Array.from({ length: STEPS }, (_, i) => i + 1));
  }, 60_000);

  it('refuses to start over an existing run or output without --resume / --force', async () => {
    const again = await s.braid(s.args('ctrlc'));
    expect(again.code).toBe(2);
    expect(again.err).toMatch(/already holds a run .*pass --resume/);
  }, 30_000);

  it('bad flags are exit code 2 with a message naming them', async () => {
    let err = '';
    const io: Io = { out: () => {}, err: (x) => void (err += x) };
    expect(await main(['train', '--init', 'tiny', '--steps', 'ten', '--out', 'x.gguf'], io)).toBe(2);
    expect(err).toMatch(/^braid train: --steps: expected an integer from 1 to \d+, got 'ten'/);
    err = '';
    expect(await main(['train', '--init', 'tiny', '--steps', '3', '--lr=-1'], io)).toBe(2);
    expect(err).toMatch(/invalid training config \(flags\):\n  --lr: .*>0\n  --out is required\n/);
    err = '';
    expect(await main(['train', '--base', 'a.gguf', '--init', 'tiny', '--steps', '3', '--out', 'x.gguf'], io)).toBe(2);
    expect(err).toMatch(/--base: give exactly one of "base"/);
    err = '';
    expect(await main(['train', '--resume'], io)).toBe(2);
    expect(err).toMatch(/--resume needs --run-dir/);
    err = '';
    expect(await main(['train', '--init', 'tiny', '--steps', '3', '--out', 'x.gguf', '--bogus'], io)).toBe(2);
    expect(err).toMatch(/Unknown option '--bogus'/);
  });
});
