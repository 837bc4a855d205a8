/**
 * The checks `braid train` makes before it writes anything (train-command.ts):
 * every file an argument names is opened or read as the run will, so a wrong
 * flag is an argument error (exit 2) that leaves no run dir, init model or
 * config.json behind, and an unwritable --out is found before the run, not at
 * its export.
 */
import { existsSync, statSync } from 'node:fs';
import path from 'node:path';
import { readGguf } from '../engine/gguf/reader.ts';
import type { GgufFile } from '../engine/gguf/types.ts';
import { writeRandomChimera } from '../engine/model-init/init-chimera.ts';
import type { TrainConfig } from '../engine/training/train-config.ts';
import type { Io } from './cli.ts';
import { ConfigError } from './config.ts';
import { planInit, type InitFlagNames, type InitPlan } from './init-command.ts';

/** braid init's errors, renamed to the train flags that carry the same values. */
const INIT_FLAGS: InitFlagNames = { preset: '--init', config: '--init-config', seed: '--init-seed' };

/**
 * The model the trainer opens, checked before anything is written: the base
 * model (read now, so a wrong file is an argument error), or the run's random
 * init, written by writeStart at the start of a run (replacing any left by a
 * run that never checkpointed) and reused on resume.
 */
export type Start = { path: string; base: GgufFile | null; init: (InitPlan & { preset: string }) | null };

export async function checkStart(c: TrainConfig, resume: boolean): Promise<Start> {
  const m = c.model;
  if (m.kind === 'base') {
    if (!existsSync(m.path)) throw new ConfigError(`--base: ${m.path} does not exist`);
    if (statSync(m.path).isDirectory()) throw new ConfigError(`--base: ${m.path} is a directory, not a GGUF model`);
    try {
      return { path: m.path, base: await readGguf(m.path), init: null };
    } catch (err) {
      const why = err instanceof Error ? err.message : String(err);
      throw new ConfigError(`--base: ${why.startsWith(m.path) ? why : `${m.path}: ${why}`} (not a readable GGUF model)`);
    }
  }
  const file = path.join(c.runDir, 'init.gguf');
  if (resume && existsSync(file)) return { path: file, base: null, init: null };
  const request = { out: file, preset: m.preset, configFile: m.configFile, seed: String(m.seed), name: `${c.name}-init` };
  return { path: file, base: null, init: { ...planInit(request, INIT_FLAGS), preset: m.preset } };
}

export async function writeStart(start: Start, io: Io): Promise<GgufFile> {
  const plan = start.init;
  if (plan !== null) {
    await writeRandomChimera(start.path, plan.config, plan.seed, { tokenizer: plan.tokenizer });
    io.out(`wrote the initial model ${start.path} (${plan.preset}, seed ${plan.seed})\n`);
  }
  return start.base ?? (await readGguf(start.path));
}

/** --out names a file whose directory exists or can be made: found out now, not at export after the whole run. */
export function checkOut(out: string): void {
  if (existsSync(out) && statSync(out).isDirectory()) throw new ConfigError(`--out: ${out} is a directory; name the .gguf file to write`);
  let dir = path.dirname(out);
  while (!existsSync(dir)) dir = path.dirname(dir);
  if (!statSync(dir).isDirectory()) throw new ConfigError(`--out: cannot write ${out}: ${dir} is not a directory`);
}

/** Reads each data file as training will, so a missing, empty or malformed one is an argument error before any write. */
export function checkDataFiles(files: readonly string[], flag: string, read: (file: string) => unknown): void {
  for (const file of files) {
    try {
      read(file);
    } catch (err) {
      const why = err instanceof Error ? err.message : String(err);
      // One problem fits on one line ("file: cannot read: ENOENT ..."); a JSONL file's list keeps its lines.
      throw new ConfigError(`${flag}: ${why.split('\n').length === 2 ? why.replace(/:\n\s*/, ': ') : why}`);
    }
  }
}
