/** Training config validation: defaults, path resolution, clear errors, the config hash. */
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { configHash, parseTrainConfig, planRun, toConfigInput, TrainConfigError } from '../../engine/training/train-config.ts';

const base = '/work/cfg';

describe('train config', () => {
  it('fills defaults and resolves paths against the given base', () => {
    const c = parseTrainConfig({ base: 'models/a.gguf', steps: 50, out: 'out/b.gguf' }, base);
    expect(c).toMatchObject({
      name: 'b',
      model: { kind: 'base', path: '/work/cfg/models/a.gguf' },
      recipe: 'default',
      data: [],
      steps: 50,
      lr: 1e-3,
      minLrRatio: 0.1,
      beta1: 0.9,
      beta2: 0.95,
      weightDecay: 0.1,
      clip: 1,
      seed: 1,
      out: '/work/cfg/out/b.gguf',
      runDir: '/work/cfg/runs/b',
    });
    expect(planRun(c, 50)).toEqual({ totalSteps: 50, warmup: 5 });
  });

  it('accepts an init preset as a string or an object; the init seed defaults to the run seed', () => {
    const a = parseTrainConfig({ init: 'tiny', tokens: 1000, out: 'x.gguf', seed: 9 }, base);
    expect(a.model).toEqual({ kind: 'init', preset: 'tiny', configFile: undefined, seed: 9 });
    const b = parseTrainConfig({ init: { preset: 'tiny', config: 'small.json', seed: 3 }, steps: 1, out: 'x.gguf' }, base);
    expect(b.model).toEqual({ kind: 'init', preset: 'tiny', configFile: path.join(base, 'small.json'), seed: 3 });
    expect(planRun(a, 4)).toEqual({ totalSteps: 4, warmup: 0 });
    expect(() => planRun(b, 2)).toThrow(/the data plan has 2 steps, the config asks for 1/);
  });

  it('lists every problem, field by field, without zod internals', () => {
    let message = '';
    try {
      parseTrainConfig({ base: 'a.gguf', init: 'tiny', lr: -1, beta2: 1, stepz: 3, out: '', batch: 6, microBatch: 4 }, base, 'run.json');
    } catch (err) {
      expect(err).toBeInstanceOf(TrainConfigError);
      message = (err as Error).message;
    }
    expect(message).toMatch(/^invalid training config \(run\.json\):/);
    expect(message).toMatch(/"stepz": unknown field \(known: .*steps/);
    expect(message).toMatch(/\n  lr \(--lr\): .*(>0|positive)/i);
    expect(message).toMatch(/\n  beta2 \(--beta2\): /);
    expect(message).toMatch(/\n  out \(--out\): /);
    expect(message).not.toMatch(/"code"|"path"/);
  });

  it('needs exactly one model source, at most one run length, one data source', () => {
    expect(() => parseTrainConfig({ out: 'x.gguf', steps: 1 }, base)).toThrow(/exactly one of "base" .* and "init"/);
    expect(parseTrainConfig({ init: 'tiny', out: 'x.gguf' }, base)).toMatchObject({ steps: undefined, tokens: undefined });
    expect(() => parseTrainConfig({ init: 'tiny', out: 'x.gguf', steps: 10, tokens: 10 }, base)).toThrow(/at most one of "steps" and "tokens"/);
    expect(() => parseTrainConfig({ init: 'tiny', out: 'x.gguf', recipe: 'default', data: ['a.txt'] }, base)).toThrow(/either a recipe or data files/);
    expect(() => parseTrainConfig({ init: 'tiny', out: 'x.gguf', batch: 4 }, base)).toThrow(/both "batch" and "seqLen"/);
    expect(() => parseTrainConfig({ init: 'tiny', out: 'x.gguf', steps: 10, warmup: 11 }, base)).toThrow(/warmup 11 exceeds steps 10/);
    expect(() => parseTrainConfig({ init: 'tiny', out: 'x.gguf', steps: 2.5 }, base)).toThrow(/steps \(--steps\): /);
  });

  it('round-trips through the run dir config.json shape', () => {
    const c = parseTrainConfig({ init: { preset: 'tiny', config: 'c.json' }, steps: 7, out: 'o.gguf', microBatch: 2, threads: 2 }, base);
    expect(parseTrainConfig(JSON.parse(JSON.stringify(toConfigInput(c))), '/elsewhere')).toEqual(c);
  });

  it('hashes what shapes the loss curve and nothing else', () => {
    const c = parseTrainConfig({ base: 'a.gguf', steps: 100, out: 'o.gguf' }, base);
    const plan = planRun(c, 100);
    const h = configHash(c, plan, 'fp', 'data');
    const same = { ...c, evalInterval: 7, checkpointInterval: 3, evalTokens: 9, evalData: ['/e.txt'], out: '/x.gguf', runDir: '/r', threads: 4, name: 'n' };
    expect(configHash(same, plan, 'fp', 'data')).toBe(h);
    expect(configHash({ ...c, lr: 2e-3 }, plan, 'fp', 'data')).not.toBe(h);
    expect(configHash({ ...c, seed: 2 }, plan, 'fp', 'data')).not.toBe(h);
    expect(configHash({ ...c, microBatch: 2 }, plan, 'fp', 'data')).not.toBe(h);
    expect(configHash(c, { ...plan, totalSteps: 101 }, 'fp', 'data')).not.toBe(h);
    expect(configHash(c, plan, 'other-model', 'data')).not.toBe(h);
    expect(configHash(c, plan, 'fp', 'other-data')).not.toBe(h);
  });
});
