/**
 * `braid init` end to end: a small config file in, a GGUF out that the real
 * engine loads and runs; refusal to overwrite; readable config errors.
 */
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { createEngine } from '../../engine/engine.ts';
import { readGguf } from '../../engine/gguf/reader.ts';
import { metaNumber, metaString, metaStringArray } from '../../engine/gguf/types.ts';
import { braid } from '../helpers/cli.ts';

const dir = mkdtempSync(path.join(tmpdir(), 'braid-init-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const small = { embeddingLength: 128, feedForwardLength: 256, layerTypes: ['GD', 'GD'], headCount: 2, contextLength: 512 };

describe('braid init', () => {
  it('writes a config file\'s model, which the real engine loads and runs', async () => {
    const cfg = path.join(dir, 'small.json');
    writeFileSync(cfg, JSON.stringify(small));
    const out = path.join(dir, 'small.gguf');
    const r = await braid('init', out, '--config', cfg, '--seed', '3', '--name', 'small-test');
    expect(r.err).toBe('');
    expect(r.code).toBe(0);

    const file = await readGguf(out);
    const tensorBytes = file.tensors.reduce((a, t) => a + (t.byteSize ?? 0), 0);
    expect(r.out).toContain(`${tensorBytes} bytes`);
    expect(r.out).toContain(`${statSync(out).size} bytes`);
    expect(metaString(file.metadata, 'general.name')).toBe('small-test');
    expect(metaNumber(file.metadata, 'chimera.embedding_length')).toBe(128);
    expect(metaNumber(file.metadata, 'chimera.gdn.head_count')).toBe(2);
    expect(metaStringArray(file.metadata, 'chimera.layer_types')).toEqual(['GD', 'GD']);

    const engine = await createEngine({ models: [out], threads: 1 });
    try {
      const model = engine.get('small-test')!;
      expect(model.info).toMatchObject({ nEmbd: 128, nLayer: 2, contextLength: 512, provenance: 'random-init (untrained)' });
      expect(model.info.tensorBytes).toBe(tensorBytes);
      const v = await model.embed(model.tokenizer.encode('hello world'), new AbortController().signal);
      expect(v).toHaveLength(128);
      expect(v.every((x) => Number.isFinite(x))).toBe(true);
    } finally {
      await engine.dispose();
    }
  });

  it('is deterministic for a seed, refuses to overwrite without --force', async () => {
    const cfg = path.join(dir, 'small2.json');
    writeFileSync(cfg, JSON.stringify(small));
    const a = path.join(dir, 'a.gguf');
    const b = path.join(dir, 'b.gguf');
    expect((await braid('init', a, '--config', cfg, '--seed', '9', '--name', 'same')).code).toBe(0);
    expect((await braid('init', b, '--config', cfg, '--seed', '9', '--name', 'same')).code).toBe(0);
    expect(readFileSync(a).equals(readFileSync(b))).toBe(true);

    const before = readFileSync(a);
    const refused = await braid('init', a, '--config', cfg, '--seed', '10');
    expect(refused.code).toBe(1);
    expect(refused.err).toMatch(/already exists; pass --force/);
    expect(readFileSync(a).equals(before)).toBe(true);
    const forced = await braid('init', a, '--config', cfg, '--seed', '10', '--name', 'same', '--force');
    expect(forced.code).toBe(0);
    expect(readFileSync(a).equals(before)).toBe(false);
  });

  it('adds the optional layer blocks (xlstm, titans) to a preset that has none', async () => {
    const cfg = path.join(dir, 'hybrid.json');
    const xlstm = { headCount: 2, headDim: 64, gateSoftCap: 15, normEps: 1e-5 };
    const titans = { headCount: 2, headDim: 64, memoryDim: 128, persistentSlots: 4, segmentLength: 16, thetaMax: 0.1 };
    writeFileSync(cfg, JSON.stringify({ ...small, layerTypes: ['GD', 'XM', 'TM'], xlstm, titans }));
    const out = path.join(dir, 'hybrid.gguf');
    const r = await braid('init', out, '--config', cfg);
    expect(r.err).toBe('');
    expect(r.code).toBe(0);
    const file = await readGguf(out);
    expect(metaStringArray(file.metadata, 'chimera.layer_types')).toEqual(['GD', 'XM', 'TM']);

    // A block of the wrong kind, and a missing block the layer types need, are still refused.
    writeFileSync(cfg, JSON.stringify({ ...small, layerTypes: ['GD', 'XM'], xlstm: 4 }));
    const wrong = await braid('init', path.join(dir, 'never-hybrid.gguf'), '--config', cfg);
    expect(wrong.code).toBe(2);
    expect(wrong.err).toMatch(/"xlstm" must be an object, got number/);
    writeFileSync(cfg, JSON.stringify({ ...small, layerTypes: ['GD', 'TM'] }));
    const missing = await braid('init', path.join(dir, 'never-hybrid.gguf'), '--config', cfg);
    expect(missing.code).toBe(2);
    expect(missing.err).toMatch(/titans/);
  });

  it('reports bad configs and flags clearly, with exit code 2 and no file', async () => {
    const bad = path.join(dir, 'bad.json');
    writeFileSync(bad, JSON.stringify({ embeddingLength: 100, headCount: '2', mystery: true, constructor: 1 }));
    const out = path.join(dir, 'never.gguf');
    const typeErr = await braid('init', out, '--config', bad);
    expect(typeErr.code).toBe(2);
    expect(typeErr.err).toMatch(/unknown field "mystery"/);
    expect(typeErr.err).toMatch(/unknown field "constructor"/);
    expect(typeErr.err).toMatch(/"headCount" must be a number, got string/);

    writeFileSync(bad, JSON.stringify({ embeddingLength: 100, layerTypes: [] }));
    const invalid = await braid('init', out, '--config', bad);
    expect(invalid.code).toBe(2);
    expect(invalid.err).toMatch(/embeddingLength = 100 must be a multiple of 128/);
    expect(invalid.err).toMatch(/layerTypes must name at least one layer/);

    writeFileSync(bad, '{ not json');
    expect((await braid('init', out, '--config', bad)).err).toMatch(/--config: cannot read/);
    expect((await braid('init', out, '--preset', 'huge')).err).toMatch(/'huge' is not one of tiny, seed-base/);
    expect((await braid('init', out, '--vocab', '10')).err).toMatch(/smaller than the tokenizer/);
    expect((await braid('init', out, '--seed', 'x')).err).toMatch(/--seed: expected an integer/);
    expect((await braid('init')).err).toMatch(/expected exactly one output file/);
    expect(() => statSync(out)).toThrow();

    const help = await braid('init', '--help');
    expect(help.code).toBe(0);
    expect(help.out).toMatch(/--preset <tiny\|seed-base>/);
    expect((await braid('--help')).out).toMatch(/braid init <out.gguf>/);
  });

  it('refuses a directory as the output and reports a failed write in one line, leaving no file', async () => {
    const folder = path.join(dir, 'a-folder');
    mkdirSync(folder);
    for (const args of [[folder], [folder, '--force']]) {
      const r = await braid('init', ...args);
      expect(r.code, args.join(' ')).toBe(2);
      expect(r.err).toBe(`braid init: ${folder} is a directory; name the .gguf file to write\n`);
    }
    // Refused before writing: no temp file beside it (a failed rename used to leave one).
    expect(readdirSync(dir).filter((f) => f.endsWith('.tmp'))).toEqual([]);
    const missing = path.join(dir, 'no-such-dir', 'x.gguf');
    const noDir = await braid('init', missing);
    expect(noDir.code).toBe(1);
    expect(noDir.err).toBe(`braid init: cannot write ${missing}: the directory ${path.dirname(missing)} does not exist\n`);

    // A directory that takes no new files (Linux's /proc): the write itself fails, reported in one line.
    const r = await braid('init', '/proc/braid-init-test.gguf');
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/^braid init: cannot write \/proc\/braid-init-test\.gguf: E[A-Z]+: [^\n]*\n$/);
  });
});
