/**
 * Both atomic writers (the GGUF writer and the training run's files) leave
 * nothing behind when the final rename fails: the target here is a
 * directory, so every byte is written and synced before the rename refuses.
 */
import { mkdirSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { GgmlType, gv } from '../../engine/gguf/types.ts';
import { writeGguf } from '../../engine/gguf/writer.ts';
import { writeFileAtomic } from '../../engine/training/atomic-file.ts';

const dir = mkdtempSync(join(tmpdir(), 'braid-atomic-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('a failed atomic write', () => {
  it('writeGguf onto a directory fails and leaves no temp file', async () => {
    const parent = join(dir, 'gguf');
    mkdirSync(join(parent, 'model.gguf'), { recursive: true });
    const tensor = { name: 't', type: GgmlType.F32, dims: [1024], data: new Uint8Array(4096) };
    await expect(writeGguf(join(parent, 'model.gguf'), { metadata: [['k', gv.u32(1)]], tensors: [tensor] })).rejects.toThrow(/EISDIR|ENOTEMPTY|EEXIST/);
    expect(readdirSync(parent)).toEqual(['model.gguf']);
    expect(readdirSync(join(parent, 'model.gguf'))).toEqual([]);
  });

  it('writeFileAtomic onto a directory fails and leaves no temp file', async () => {
    const parent = join(dir, 'run');
    mkdirSync(join(parent, 'config.json'), { recursive: true });
    await expect(writeFileAtomic(join(parent, 'config.json'), '{"lr": 0.001}\n')).rejects.toThrow(/EISDIR|ENOTEMPTY|EEXIST/);
    expect(readdirSync(parent)).toEqual(['config.json']);
  });
});
