/**
 * `npm run bench -- moa [--threads 2] [--steps S] [--contexts 128,1024,2048] [--f16] [--prune]`
 *
 * MoA decode tok/s with the KV cache against recomputing the whole context (what the model
 * card's reference does), at context 128 / 1024 / 2048, for a random MoA at the card's example
 * config (dim 768, 12 layers), measured in the same run by c/build/bench_moa (built by
 * `npm install` / `make -C c`); this wrapper only forwards the flags and prints its table.
 */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { toArgv, type BenchValues } from './bench-usage.ts';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');

export function benchMoa(values: BenchValues<'moa'>): void {
  const bin = join(root, 'c/build/bench_moa');
  if (!existsSync(bin)) throw new Error(`${bin} is missing: build it with \`make -C c\``);
  const r = spawnSync(bin, toArgv(values), { stdio: 'inherit' });
  if (r.error) throw r.error;
  if (r.status !== 0) throw new Error(`bench_moa exited with status ${r.status}`);
}
