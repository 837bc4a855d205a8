/**
 * The command line's help and usage paths, in process: `braid help <command>`,
 * the top-level usage, and `braid bench` (help, usage mistakes, option
 * values), none of which may run a benchmark or print a stack trace. Usage
 * mistakes are one line on stderr and exit code 2.
 */
import { describe, expect, it } from 'vitest';
import { USAGE } from '../../server/cli.ts';
import { braid } from '../helpers/cli.ts';
import { SERVE_HELP } from '../../server/config.ts';
import { BENCHES, parseBenchArgs, toArgv } from '../../scripts/bench-usage.ts';

const ALL = ['kernels', 'decode', 'grammar', 'valve', 'train', 'finetune', 'moa'];

describe('braid help', () => {
  it('`help <command>` prints that command\'s help; the usage names every benchmark', async () => {
    const serve = await braid('help', 'serve');
    expect(serve).toEqual({ code: 0, out: SERVE_HELP, err: '' });
    expect((await braid('help', 'train')).out).toMatch(/^Usage: braid train/);
    expect((await braid('help', 'bench')).out).toMatch(/^Usage: braid bench <name>/);
    const unknown = await braid('help', 'nope');
    expect(unknown.code).toBe(2);
    expect(unknown.err).toMatch(/^braid help: unknown command 'nope'/);
    for (const name of ALL) expect(USAGE).toContain(name);
  });
});

describe('braid bench: help and usage', () => {
  it('--help, -h and help list all seven benchmarks with their options', async () => {
    expect(Object.keys(BENCHES)).toEqual(ALL);
    for (const flag of ['--help', '-h', 'help']) {
      const r = await braid('bench', flag);
      expect(r.code).toBe(0);
      expect(r.err).toBe('');
      for (const name of ALL) expect(r.out).toMatch(new RegExp(`^${name}: `, 'm'));
      for (const option of ['--footprint-mb', '--skip-seed-dims', '--gens', '--init-range', '--no-peer', '--think-ms', '--contexts']) {
        expect(r.out).toContain(option);
      }
    }
  });

  it('each benchmark has its own --help, the C-backed ones included', async () => {
    for (const name of ALL) {
      for (const flag of ['--help', '-h']) {
        const r = await braid('bench', name, flag);
        expect(r.code, `${name} ${flag}`).toBe(0);
        expect(r.out).toMatch(new RegExp(`^Usage: braid bench ${name} \\[options\\]`));
      }
    }
    expect((await braid('bench', 'kernels', '--help')).out).toMatch(/--reps <n>\s+repetitions/);
  });

  it('usage mistakes are one line naming the problem, exit code 2', async () => {
    const cases: [string[], RegExp][] = [
      [[], /name a benchmark: kernels, decode, grammar, valve, train, finetune, moa/],
      [['bogus'], /unknown benchmark 'bogus'/],
      [['decode', '--bogus'], /decode: Unknown option '--bogus'/],
      [['kernels', '--bogus'], /kernels: Unknown option '--bogus'/],
      [['decode', '--threads'], /decode: Option '--threads <value>' argument missing/],
      [['decode', '--threads', 'abc'], /decode --threads: expected an integer from 1 to 1024, got 'abc'/],
      [['decode', '--threads', '0'], /decode --threads: expected an integer from 1 to 1024, got '0'/],
      [['decode', '--depths', '1,x'], /decode --depths: expected an integer/],
      [['grammar', '--gens', '1.5'], /grammar --gens: expected an integer/],
      [['valve', '--init-range', 'big'], /valve --init-range: expected a number/],
      [['moa', '--steps', '0x10'], /moa --steps: expected an integer/],
      [['train', 'extra'], /train: Unexpected argument 'extra'/],
    ];
    for (const [args, message] of cases) {
      const r = await braid('bench', ...args);
      expect(r.code, args.join(' ')).toBe(2);
      expect(r.out).toBe('');
      expect(r.err).toMatch(new RegExp(`^braid bench: ${message.source}`));
      expect(r.err.trimEnd().split('\n')).toHaveLength(1);
    }
  });

  it('parses values to their types and forwards C options as separate words', () => {
    const decode = parseBenchArgs('decode', ['--threads=3', '--depths', '2,8', '--skip-seed-dims']);
    expect(decode).toEqual({ help: false, values: { threads: 3, prompt: 128, tokens: 64, 'skip-seed-dims': true, depths: [2, 8] } });
    const moa = parseBenchArgs('moa', ['--contexts=64,128', '--f16']);
    if (moa.help) throw new Error('unexpected help');
    expect(toArgv(moa.values)).toEqual(['--threads', '2', '--contexts', '64,128', '--f16']);
    const kernels = parseBenchArgs('kernels', ['--bandwidth-only', '--reps=3']);
    if (kernels.help) throw new Error('unexpected help');
    expect(toArgv(kernels.values)).toEqual(['--reps', '3', '--bandwidth-only']);
  });
});
