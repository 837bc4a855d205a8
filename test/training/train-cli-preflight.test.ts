/**
 * `braid train` checks every argument before it writes anything, names the
 * flag at fault, and never rewrites a run's saved config on a refused resume.
 * Argument errors run in process (absolute paths only, so nothing can land in
 * the repository); the resume runs a real 2-step training in a child process.
 */
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { main, type Io } from '../../server/cli.ts';
import { TrainCliScratch } from './loop-cli-harness.ts';

const s = new TrainCliScratch();
afterAll(() => s.remove());

async function train(...args: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const io: Io = { out: (x) => void (out += x), err: (x) => void (err += x) };
  const code = await main(['train', ...args], io);
  return { code, out, err };
}

/** A small run's flags with absolute paths; `extra` flags win (parseArgs keeps the last of a repeated flag). */
function run(name: string, ...extra: string[]): string[] {
  return ['--steps', '2', '--batch', '2', '--seq-len', '32', '--out', s.file(`${name}.gguf`), '--run-dir', s.file('runs', name), ...extra];
}
const tiny = ['--init', 'tiny', '--init-config', s.file('small.json')];
const text = ['--data', s.file('train.txt')];

describe('braid train: arguments checked before anything is written', () => {
  it('a refused resume keeps the run\'s config.json, so a plain resume still works', async () => {
    const fresh = await s.braid(['train', ...tiny, ...text, ...run('r1'), '--lr', '3e-3']);
    expect(fresh.err).toBe('');
    expect(fresh.code).toBe(0);
    const config = s.file('runs', 'r1', 'config.json');
    const saved = readFileSync(config, 'utf8');

    const refused = await s.braid(['train', '--resume', '--run-dir', 'runs/r1', '--lr', '5e-3']);
    expect(refused.code).toBe(1);
    expect(refused.err).toMatch(/was written under config \w+, this run's is \w+.*Resume with the run's own config/);
    expect(readFileSync(config, 'utf8')).toBe(saved);

    const resumed = await s.braid(['train', '--resume', '--run-dir', 'runs/r1']);
    expect(resumed.err).toBe('');
    expect(resumed.code).toBe(0);
    expect(resumed.out).toMatch(/resumed from .*ckpt-000000002\.bin at step 2\/2/);
  }, 60_000);

  it('bad inputs are exit code 2, name their flag, and leave no run dir or file', async () => {
    const folder = s.file('a-folder');
    mkdirSync(folder);
    writeFileSync(s.file('bad.jsonl'), '{"messages": [\n');
    writeFileSync(s.file('notgguf.gguf'), 'hello');
    const cases: [string[], RegExp][] = [
      [[...tiny, '--recipe', 'bogus'], /--recipe: unknown recipe "bogus"/],
      [[...tiny, '--data', s.file('nope.txt')], /--data: .*nope\.txt: cannot read: ENOENT/],
      [[...tiny, '--data', folder], /--data: .*a-folder: cannot read: EISDIR/],
      [[...tiny, ...text, '--eval-data', s.file('nope.txt')], /--eval-data: .*nope\.txt: cannot read: ENOENT/],
      [[...tiny, '--data', s.file('bad.jsonl')], /--data: .*bad\.jsonl: line 1: /],
      [[...text, '--base', s.file('notgguf.gguf')], /--base: .*notgguf\.gguf: not a GGUF file/],
      [[...text, '--base', s.file('nope.gguf')], /--base: .*nope\.gguf does not exist/],
      [[...text, '--base', folder], /--base: .*a-folder is a directory/],
      [[...text, '--init', 'bogus'], /--init: 'bogus' is not one of tiny, seed-base/],
      [[...text, '--init', 'tiny', '--init-config', s.file('nope.json')], /--init-config: cannot read .*nope\.json/],
      [[...tiny, ...text, '--out', folder], /--out: .*a-folder is a directory; name the \.gguf file/],
      [[...tiny, ...text, '--out', path.join(s.file('notgguf.gguf'), 'x.gguf')], /--out: cannot write .*notgguf\.gguf is not a directory/],
    ];
    for (const [args, message] of cases) {
      const r = await train(...run('bad'), ...args);
      expect(r.code, args.join(' ')).toBe(2);
      expect(r.err).toMatch(new RegExp(`^braid train: ${message.source}`));
      expect(existsSync(s.file('runs', 'bad')), args.join(' ')).toBe(false);
      expect(existsSync(s.file('bad.gguf'))).toBe(false);
    }
    expect(readdirSync(folder)).toEqual([]);
  });

  it('integer flags take decimal integers only, in range, and errors name the train flag', async () => {
    const cases: [string[], RegExp][] = [
      [['--steps', '0x10'], /--steps: expected an integer from 1 to \d+, got '0x10'/],
      [['--steps', '1e0'], /--steps: expected an integer from 1 to \d+, got '1e0'/],
      [['--steps', '-1'], /--steps: expected an integer from 1 to \d+, got '-1'/],
      [['--batch', '2.5'], /--batch: expected an integer/],
      [['--threads', '0'], /--threads: expected an integer from 1 to 1024/],
      [['--init-seed', ''], /--init-seed: expected an integer from 0 to 4294967295, got ''/],
      [['--init-seed', '99999999999'], /--init-seed: expected an integer from 0 to 4294967295, got '99999999999'/],
      [['--lr', '0x10'], /--lr: expected a number, got '0x10'/],
      [['--lr', '-1'], /invalid training config \(flags\):\n {2}--lr: Too small/],
    ];
    for (const [args, message] of cases) {
      const r = await train(...tiny, ...text, ...run('nums'), ...args);
      expect(r.code, args.join(' ')).toBe(2);
      expect(r.err).toMatch(new RegExp(`^braid train: ${message.source}`));
    }
    expect(existsSync(s.file('runs', 'nums'))).toBe(false);
  });

  it('config errors name flags, and a missing --out or run says so', async () => {
    const none = await train();
    expect(none.code).toBe(2);
    expect(none.err).toMatch(/^braid train: invalid training config \(flags\):\n {2}--out is required\n/);

    const nothing = await train('--resume', '--run-dir', s.file('runs', 'never'));
    expect(nothing.code).toBe(2);
    expect(nothing.err).toMatch(/--resume: nothing to resume in .*never \(no config\.json\)/);

    const shape = await train(...tiny, '--steps', '2', '--batch', '4', '--seq-len', '8', '--micro-batch', '3', '--out', s.file('x.gguf'));
    expect(shape.err).toMatch(/\n {2}--micro-batch: microBatch 3 must divide batch 4\n/);

    const file = s.file('run.json');
    writeFileSync(file, JSON.stringify({ init: { preset: 'tiny', seed: 2 ** 32 }, seqLen: 0, batch: 2, steps: 2, out: 'x.gguf' }));
    const fromFile = await train('--config', file);
    expect(fromFile.code).toBe(2);
    expect(fromFile.err).toMatch(/\n {2}init\.seed \(--init-seed\): /);
    expect(fromFile.err).toMatch(/\n {2}seqLen \(--seq-len\): /);
  });
});
