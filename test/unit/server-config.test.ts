import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { main } from '../../server/cli.ts';
import { ConfigError, DEFAULT_MAX_BODY_BYTES, PACKAGE_ROOT, parseServeArgs, type ServerConfig } from '../../server/config.ts';

const cwd = '/srv/app';
const parse = (argv: string[], env: Record<string, string> = {}): ServerConfig => {
  const r = parseServeArgs(argv, env, cwd);
  if (r.help) throw new Error('unexpected help');
  return r.config;
};

describe('parseServeArgs', () => {
  it('has the documented defaults', () => {
    expect(parse([])).toEqual({
      host: '127.0.0.1',
      port: 8080,
      models: [path.join(PACKAGE_ROOT, 'models', 'chimera-tiny.gguf')],
      threads: undefined,
      apiKey: undefined,
      dataDir: '/srv/app/data',
      corsOrigins: null,
      maxBodyBytes: DEFAULT_MAX_BODY_BYTES,
      maxQueue: undefined,
      slots: undefined,
    });
  });

  it('reads BRAID_* variables and lets flags win', () => {
    const env = { BRAID_HOST: '0.0.0.0', BRAID_PORT: '9000', BRAID_API_KEY: 'env-key', BRAID_THREADS: '3', BRAID_MAX_QUEUE: '4' };
    expect(parse([], env)).toMatchObject({ host: '0.0.0.0', port: 9000, apiKey: 'env-key', threads: 3, maxQueue: 4 });
    expect(parse(['--port', '0', '--api-key', 'flag-key', '--slots', '2'], env)).toMatchObject({ port: 0, apiKey: 'flag-key', slots: 2 });
  });

  it('resolves model ids and paths; repeatable flag, comma-separated env', () => {
    const ids = parse(['--model', 'a', '--model', './m/b.gguf', '--model', '/abs/c.gguf']).models;
    expect(ids).toEqual([path.join(PACKAGE_ROOT, 'models', 'a.gguf'), '/srv/app/m/b.gguf', '/abs/c.gguf']);
    expect(parse([], { BRAID_MODEL: 'x, y' }).models).toEqual([
      path.join(PACKAGE_ROOT, 'models', 'x.gguf'),
      path.join(PACKAGE_ROOT, 'models', 'y.gguf'),
    ]);
    expect(parse(['--model', 'z'], { BRAID_MODEL: 'x' }).models).toEqual([path.join(PACKAGE_ROOT, 'models', 'z.gguf')]);
  });

  it('parses CORS origins and the data dir', () => {
    expect(parse(['--cors-origin', 'http://a.test,http://b.test']).corsOrigins).toEqual(['http://a.test', 'http://b.test']);
    expect(parse([], { BRAID_CORS_ORIGIN: '*' }).corsOrigins).toEqual(['*']);
    expect(parse(['--data-dir', '/var/braid']).dataDir).toBe('/var/braid');
  });

  it.each([
    [['--port', 'abc'], /--port: expected an integer from 0 to 65535, got 'abc'/],
    [['--port', '65536'], /--port/],
    [['--threads', '0'], /--threads/],
    [['--max-body-bytes', '1.5'], /--max-body-bytes/],
    [['--bogus'], /Unknown option '--bogus'/],
    [['--api-key', ' '], /--api-key: the key is empty/],
    [['--model', 'bad id!'], /neither a path nor a model id/],
    [['extra'], /positional/i],
  ])('%j → ConfigError', (argv, message) => {
    expect(() => parseServeArgs(argv, {}, cwd)).toThrow(ConfigError);
    expect(() => parseServeArgs(argv, {}, cwd)).toThrow(message);
  });

  it('names the variable when an env value is bad', () => {
    expect(() => parseServeArgs([], { BRAID_PORT: '-1' }, cwd)).toThrow(/BRAID_PORT/);
  });

  it('--help', () => {
    expect(parseServeArgs(['--help'], {}, cwd)).toEqual({ help: true });
  });
});

describe('braid CLI', () => {
  const run = async (argv: string[]) => {
    let out = '';
    let err = '';
    const code = await main(argv, { out: (s) => void (out += s), err: (s) => void (err += s) });
    return { code, out, err };
  };

  it('--version, --help', async () => {
    expect(await run(['--version'])).toMatchObject({ code: 0, out: expect.stringMatching(/^\d+\.\d+\.\d+\n$/) });
    expect((await run(['--help'])).out).toMatch(/braid serve/);
    expect((await run(['serve', '--help'])).out).toMatch(/--max-body-bytes/);
  });

  it('bad flags and unknown commands exit 2 with a message', async () => {
    expect(await run(['serve', '--port', 'x'])).toMatchObject({ code: 2, err: expect.stringMatching(/--port/) });
    expect(await run(['serve', '--model', '/nonexistent/m.gguf'])).toMatchObject({ code: 2, err: expect.stringMatching(/model file not found/) });
    expect(await run(['frobnicate'])).toMatchObject({ code: 2, err: expect.stringMatching(/unknown command/) });
  });
});
