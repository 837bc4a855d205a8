/**
 * Runs the `braid` command line in process (server/cli.ts main) and returns
 * its exit code and what it wrote: the CLI tests assert on these instead of
 * spawning node.
 */
import { main, type Io } from '../../server/cli.ts';

export async function braid(...args: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const io: Io = { out: (s) => void (out += s), err: (s) => void (err += s) };
  const code = await main(args, io);
  return { code, out, err };
}
