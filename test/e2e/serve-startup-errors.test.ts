/**
 * `braid serve` when it cannot start: one line on stderr naming the file or
 * the address, exit code 1 (2 for a flag that names the wrong kind of thing),
 * never a stack trace. In process, so a thrown error fails the test.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { main, type Io } from '../../server/cli.ts';

const dir = mkdtempSync(path.join(tmpdir(), 'braid-serve-errors-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

async function serve(...args: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const io: Io = { out: (s) => void (out += s), err: (s) => void (err += s) };
  const code = await main(['serve', '--threads', '1', '--data-dir', path.join(dir, 'data'), ...args], io);
  return { code, out, err };
}

const oneLine = (s: string): string[] => s.trimEnd().split('\n');

describe('braid serve: start-up errors', () => {
  it('a file that is not GGUF (junk, empty) is named, exit code 1', async () => {
    for (const [name, bytes] of [['junk.gguf', 'hello'], ['empty.gguf', '']] as const) {
      const file = path.join(dir, name);
      writeFileSync(file, bytes);
      const r = await serve('--port', '0', '--model', file);
      expect(r.code).toBe(1);
      expect(r.err).toMatch(new RegExp(`^braid serve: ${file.replaceAll('.', '\\.')}: not a GGUF file`));
      expect(oneLine(r.err)).toHaveLength(1);
      expect(r.out).toBe('');
    }
  });

  it('a directory as --model or a file as --data-dir is an argument error', async () => {
    const m = await serve('--port', '0', '--model', dir);
    expect(m.code).toBe(2);
    expect(m.err).toBe(`braid serve: --model: ${dir} is a directory, not a GGUF file\n`);
    const file = path.join(dir, 'a-file');
    writeFileSync(file, 'x');
    const d = await serve('--port', '0', '--data-dir', path.join(file, 'sub'));
    expect(d.code).toBe(2);
    expect(d.err).toMatch(/^braid serve: --data-dir: .*a-file is not a directory\n$/);
  });

  it('a port in use is named, exit code 1', async () => {
    const blocker: Server = createServer();
    const port = await new Promise<number>((resolve) => blocker.listen(0, '127.0.0.1', () => resolve((blocker.address() as { port: number }).port)));
    try {
      const r = await serve('--host', '127.0.0.1', '--port', String(port));
      expect(r.code).toBe(1);
      expect(r.err).toBe(`braid serve: cannot listen on 127.0.0.1:${port}: the port is in use (pass another --port, or --port 0 for a free one)\n`);
      expect(r.out).toBe('');
    } finally {
      await new Promise((resolve) => blocker.close(resolve));
    }
  });
});
