/**
 * `braid train`: trains a model on the box and exports it as GGUF.
 *
 * The config comes in layers, later ones winning: the run dir's config.json
 * (with --resume), a --config JSON file, then flags. Everything is validated
 * (engine/training/train-config.ts) before anything is written. The policy
 * (schedule, checkpoints, metrics, plot) is engine/training/train-loop.ts;
 * this file wires the pieces, signals and the terminal.
 *
 * Exit codes: 0 done (model exported), 1 a failure while training, 2 bad
 * arguments, 130 stopped by Ctrl-C / SIGTERM after saving a checkpoint.
 */
import { existsSync, readFileSync, statSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { writeFileAtomic } from '../engine/training/atomic-file.ts';
import { listCheckpoints } from '../engine/training/checkpoint.ts';
import { exportModel, modelFingerprint } from '../engine/training/export-model.ts';
import { Progress } from '../engine/training/progress.ts';
import {
  configHash,
  DATA_FILES_RECIPE,
  mergeConfigLayers,
  parseTrainConfig,
  planRun,
  resolveConfigPaths,
  toConfigInput,
  TrainConfigError,
  type RawConfig,
  type TrainConfig,
} from '../engine/training/train-config.ts';
import { runDirPaths, runTrainLoop } from '../engine/training/train-loop.ts';
import type { Io } from './cli.ts';
import { ConfigError } from './config.ts';
import { parseIntegerFlag } from './init-command.ts';
import { checkDataFiles, checkOut, checkStart, writeStart } from './train-preflight.ts';

export const TRAIN_HELP = `Usage: braid train [--config run.json] [flags]

Trains a model and writes it as GGUF. Flags override the config file's fields
(docs/training.md lists them all); with --resume, both override the run dir's
saved config.json.

Model (one of):
  --base <model.gguf>          continue training an existing model
  --init <preset>              start from random weights: tiny | seed-base (braid init)
    --init-config <file.json>  braid init --config overrides for the preset
    --init-seed <n>            seed of the initial weights (default: --seed)
Data (one of):
  --recipe <name>              built-in curriculum (default: default)
  --data <file>                train on a text or chat .jsonl file instead; repeat for more
Evaluation:
  --eval-data <file>           held-out text or .jsonl file (default: held-out Brown files)
  --eval-tokens <n>            held-out tokens per evaluation (16384)
Length (one of):
  --steps <n>                  optimizer steps
  --tokens <n>                 training tokens (steps = tokens / tokens per step)
Batch:
  --batch <n> --seq-len <n>    one fixed shape for every phase (default: the recipe's
                               shapes; data files: 8 x 128)
  --micro-batch <n>            sequences per forward/backward call (default: the batch)
Optimizer:
  --lr <x>                     peak learning rate (1e-3)
  --warmup <n>                 linear warmup steps (min(100, steps/10))
  --min-lr-ratio <x>           cosine floor as a fraction of lr (0.1)
  --beta1 <x> --beta2 <x>      AdamW betas (0.9, 0.95)
  --eps <x>                    AdamW epsilon (1e-8)
  --weight-decay <x>           AdamW decoupled weight decay (0.1)
  --clip <x>                   global gradient-norm clip, 0 = off (1)
Run:
  --eval-interval <n>          held-out evaluation every n steps, 0 = at the end (100)
  --checkpoint-interval <n>    checkpoint every n steps, 0 = at the end / Ctrl-C (100)
  --seed <n>                   data order seed (1)
  --out <model.gguf>           the exported model (required)
  --name <id>                  its general.name (default: the --out file name)
  --run-dir <dir>              checkpoints, metrics.jsonl, loss.svg (runs/<name>)
  --threads <n>                C threads (BRAID_THREADS, else the cores available)
  --resume                     continue the run dir's newest valid checkpoint (or start)
  --force                      replace an existing --out file when starting a new run
  -h, --help                   this help

Ctrl-C saves a checkpoint and exits with 130; run the same command with
--resume to continue (the loss curve is the one an uninterrupted run draws).
`;

const OPTIONS = {
  config: { type: 'string' },
  base: { type: 'string' },
  init: { type: 'string' },
  'init-config': { type: 'string' },
  'init-seed': { type: 'string' },
  recipe: { type: 'string' },
  data: { type: 'string', multiple: true },
  'eval-data': { type: 'string', multiple: true },
  'eval-tokens': { type: 'string' },
  steps: { type: 'string' },
  tokens: { type: 'string' },
  batch: { type: 'string' },
  'seq-len': { type: 'string' },
  'micro-batch': { type: 'string' },
  lr: { type: 'string' },
  warmup: { type: 'string' },
  'min-lr-ratio': { type: 'string' },
  beta1: { type: 'string' },
  beta2: { type: 'string' },
  eps: { type: 'string' },
  'weight-decay': { type: 'string' },
  clip: { type: 'string' },
  'eval-interval': { type: 'string' },
  'checkpoint-interval': { type: 'string' },
  seed: { type: 'string' },
  out: { type: 'string' },
  name: { type: 'string' },
  'run-dir': { type: 'string' },
  threads: { type: 'string' },
  resume: { type: 'boolean' },
  force: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
} as const;

/** Integer flag → config field and range; parsed here so a typo ("0x10", "1e0", "") names its flag. */
const INTEGER: Readonly<Record<string, readonly [field: string, min: number, max: number]>> = {
  steps: ['steps', 1, Number.MAX_SAFE_INTEGER],
  tokens: ['tokens', 1, Number.MAX_SAFE_INTEGER],
  batch: ['batch', 1, Number.MAX_SAFE_INTEGER],
  'seq-len': ['seqLen', 1, Number.MAX_SAFE_INTEGER],
  'micro-batch': ['microBatch', 1, Number.MAX_SAFE_INTEGER],
  warmup: ['warmup', 0, Number.MAX_SAFE_INTEGER],
  'eval-interval': ['evalInterval', 0, Number.MAX_SAFE_INTEGER],
  'eval-tokens': ['evalTokens', 1, Number.MAX_SAFE_INTEGER],
  'checkpoint-interval': ['checkpointInterval', 0, Number.MAX_SAFE_INTEGER],
  seed: ['seed', 0, 2 ** 32 - 1],
  threads: ['threads', 1, 1024],
};

/** Decimal flag → config field; the range is the schema's (its message names the flag too). */
const DECIMAL: Readonly<Record<string, string>> = {
  lr: 'lr',
  'min-lr-ratio': 'minLrRatio',
  beta1: 'beta1',
  beta2: 'beta2',
  eps: 'eps',
  'weight-decay': 'weightDecay',
  clip: 'clip',
};

/** A plain decimal like 3e-3 or 0.9; Number() alone would take "0x10", "" and " ". */
function parseDecimalFlag(flag: string, raw: string): number {
  if (!/^\s*[+-]?(\d+\.?\d*|\.\d+)(e[+-]?\d+)?\s*$/i.test(raw)) throw new ConfigError(`${flag}: expected a number, got '${raw}'`);
  return Number(raw);
}

/**
 * `--steps -1` → `--steps=-1`: parseArgs takes a value starting with "-" for
 * a flag and calls it ambiguous; joined, it reaches the range check instead.
 */
function joinNegativeValues(argv: readonly string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    const next = argv[i + 1];
    const name = arg.startsWith('--') ? arg.slice(2) : undefined;
    const takesValue = name !== undefined && Object.hasOwn(OPTIONS, name) && OPTIONS[name as keyof typeof OPTIONS].type === 'string';
    if (takesValue && next !== undefined && /^-(\d|\.\d)/.test(next)) {
      out.push(`${arg}=${next}`);
      i++;
    } else {
      out.push(arg);
    }
  }
  return out;
}

export interface TrainArgs {
  config: TrainConfig;
  resume: boolean;
  force: boolean;
}

export type ParsedTrainArgs = { help: true } | ({ help: false } & TrainArgs);

function readJsonObject(file: string, what: string): RawConfig {
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(file, 'utf8'));
  } catch (err) {
    throw new ConfigError(`${what}: cannot read ${file}: ${err instanceof Error ? err.message : String(err)}`);
  }
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw new ConfigError(`${what}: ${file} must hold a JSON object`);
  return raw as RawConfig;
}

/** Parses flags, layers the config sources, validates. Throws ConfigError; reads only config files. */
export function parseTrainArgs(argv: readonly string[], cwd: string = process.cwd()): ParsedTrainArgs {
  let values;
  try {
    ({ values } = parseArgs({ args: joinNegativeValues(argv), options: OPTIONS, strict: true, allowPositionals: false }));
  } catch (err) {
    throw new ConfigError(`${err instanceof Error ? err.message : String(err)}\nRun 'braid train --help' for the flags.`);
  }
  if (values.help === true) return { help: true };

  const flags: RawConfig = {};
  const given = values as Record<string, unknown>;
  for (const [flag, [field, min, max]] of Object.entries(INTEGER)) {
    const raw = given[flag];
    if (typeof raw === 'string') flags[field] = parseIntegerFlag(`--${flag}`, raw, min, max);
  }
  for (const [flag, field] of Object.entries(DECIMAL)) {
    const raw = given[flag];
    if (typeof raw === 'string') flags[field] = parseDecimalFlag(`--${flag}`, raw);
  }
  for (const [flag, field] of [['base', 'base'], ['recipe', 'recipe'], ['out', 'out'], ['name', 'name'], ['run-dir', 'runDir']] as const) {
    const v = values[flag];
    if (v !== undefined) flags[field] = v;
  }
  if (values.data !== undefined) flags.data = values.data;
  if (values['eval-data'] !== undefined) flags.evalData = values['eval-data'];
  if (values.init !== undefined || values['init-config'] !== undefined || values['init-seed'] !== undefined) {
    const init: RawConfig = {};
    if (values.init !== undefined) init.preset = values.init;
    if (values['init-config'] !== undefined) init.config = values['init-config'];
    if (values['init-seed'] !== undefined) init.seed = parseIntegerFlag('--init-seed', values['init-seed'], 0, 2 ** 32 - 1);
    flags.init = init;
  }

  const layers: RawConfig[] = [];
  if (values.config !== undefined) {
    const file = path.resolve(cwd, values.config);
    layers.push(resolveConfigPaths(readJsonObject(file, '--config'), path.dirname(file)));
  }
  layers.push(resolveConfigPaths(flags, cwd));
  const resume = values.resume === true;
  if (resume) {
    // The saved config is the bottom layer: `braid train --resume --run-dir D` alone continues D.
    const top = mergeConfigLayers(layers);
    const runDir = typeof top.runDir === 'string' ? top.runDir : defaultRunDir(top, cwd);
    const saved = runDir !== undefined ? runDirPaths(runDir).config : undefined;
    if (saved !== undefined && existsSync(saved)) layers.unshift(readJsonObject(saved, '--resume'));
    else if (runDir === undefined) throw new ConfigError('--resume needs --run-dir (or --out / --name to find runs/<name>)');
    // No saved config: --resume starts the run (see --help), which needs the run's flags.
    else if (top.out === undefined) throw new ConfigError(`--resume: nothing to resume in ${runDir} (no config.json); to start a run there, give --out and the model flags`);
  }
  try {
    const config = parseTrainConfig(mergeConfigLayers(layers), cwd, values.config ?? 'flags');
    return { help: false, config, resume, force: values.force === true };
  } catch (err) {
    if (err instanceof TrainConfigError) throw new ConfigError(`${err.message}\nRun 'braid train --help' for the flags.`);
    throw err;
  }
}

function defaultRunDir(c: RawConfig, cwd: string): string | undefined {
  const name = typeof c.name === 'string' ? c.name : typeof c.out === 'string' ? path.basename(c.out).replace(/\.gguf$/i, '') : undefined;
  return name === undefined ? undefined : path.resolve(cwd, 'runs', name);
}

export async function runTrain(args: TrainArgs, io: Io, isTTY = false): Promise<number> {
  const c = args.config;
  const paths = runDirPaths(c.runDir);
  checkOut(c.out);
  if (!args.resume) {
    const existing = await listCheckpoints(paths.checkpoints);
    if (existing.length > 0) {
      throw new ConfigError(`${c.runDir} already holds a run (${path.basename(existing[0]!.file)}); pass --resume to continue it, or another --run-dir`);
    }
    if (existsSync(c.out) && !args.force) throw new ConfigError(`${c.out} already exists; pass --force to replace it, or another --out`);
  }
  if (existsSync(c.runDir) && !statSync(c.runDir).isDirectory()) throw new ConfigError(`--run-dir: ${c.runDir} is not a directory`);

  // Imported here so --help and config errors never load the native library or the corpora.
  const { initLibrary } = await import('../engine/binding/library.ts');
  const { NativeTrainer } = await import('../engine/training/native-trainer.ts');
  const { openTrainingData, RECIPES } = await import('../engine/training/data-source.ts');
  const { readDataFile } = await import('../engine/training/data/index.ts');

  // Everything an argument decides is checked before the first write (run dir, init model, config.json).
  if (c.recipe !== DATA_FILES_RECIPE && !RECIPES.includes(c.recipe)) {
    throw new ConfigError(`--recipe: unknown recipe "${c.recipe}" (built in: ${RECIPES.join(', ')}; or train on files with --data)`);
  }
  if (c.recipe === DATA_FILES_RECIPE && c.steps === undefined && c.tokens === undefined) {
    throw new ConfigError('--data: data files have no length of their own: give --steps or --tokens');
  }
  checkDataFiles(c.data, '--data', readDataFile);
  checkDataFiles(c.evalData, '--eval-data', readDataFile);
  const start = await checkStart(c, args.resume);

  await mkdir(c.runDir, { recursive: true });
  await mkdir(path.dirname(c.out), { recursive: true });
  const threads = initLibrary(c.threads);
  const modelPath = start.path;
  const model = await writeStart(start, io);
  const data = await openTrainingData({
    recipe: c.recipe,
    files: c.data,
    evalFiles: c.evalData,
    seed: c.seed,
    steps: c.steps,
    tokens: c.tokens,
    batch: c.batch,
    seqLen: c.seqLen,
    evalTokens: c.evalTokens,
    model,
  });
  const plan = planRun(c, data.totalSteps);
  const hash = configHash(c, plan, modelFingerprint(model), data.fingerprint);
  // Saved by the loop once a resume's checkpoint is known to match this config (a refused resume keeps the run's own).
  const saveConfig = (): Promise<void> => writeFileAtomic(paths.config, `${JSON.stringify(toConfigInput(c), null, 2)}\n`);

  const trainer = NativeTrainer.open(modelPath);
  const stop = new AbortController();
  let signals = 0;
  const onSignal = (signal: NodeJS.Signals): void => {
    signals += 1;
    if (signals > 1) {
      io.err(`\nbraid: second ${signal}, exiting without a checkpoint\n`);
      process.exit(130);
    }
    io.err(`\nbraid: ${signal}: finishing the step and saving a checkpoint (again to exit now)\n`);
    stop.abort();
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  try {
    io.out(
      `training ${c.name} from ${modelPath}: ${plan.totalSteps} steps, ${data.describe()}, ${threads} threads\n` +
        `  ${data.plan().split('\n').join('\n  ')}\n` +
        `  run dir      ${c.runDir}\n` +
        `  metrics      ${paths.metrics}\n` +
        `  loss plot    ${paths.plot}\n` +
        `  checkpoints  ${paths.checkpoints}\n`,
    );
    const progress = new Progress({ write: (s) => io.out(s), isTTY }, plan.totalSteps);
    const result = await runTrainLoop({
      trainer,
      data,
      settings: { ...c, totalSteps: plan.totalSteps, warmup: plan.warmup, configHash: hash, threads },
      runDir: c.runDir,
      resume: args.resume,
      signal: stop.signal,
      progress,
      plotTitle: `${c.name}: ${c.recipe}, ${plan.totalSteps} steps`,
      onStart: saveConfig,
    });
    if (result.status === 'stopped') {
      io.out(`stopped at step ${result.step}/${plan.totalSteps}; checkpoint ${result.checkpoint ?? '(none)'}\n`);
      io.out(`continue with: braid train --resume --run-dir ${c.runDir}\n`);
      return 130;
    }
    await exportModel(modelPath, c.out, trainer, {
      name: c.name,
      recipe: c.data.length > 0 ? `${c.recipe} (${c.data.map((f) => path.basename(f)).join(', ')})` : c.recipe,
      steps: result.step,
      tokens: result.tokens,
      finalLoss: result.lastTrain?.loss ?? null,
      heldOutLoss: result.lastEval?.loss ?? null,
      heldOutBpb: result.lastEval?.bpb ?? null,
      seed: c.seed,
      configHash: hash,
      date: new Date(),
    });
    const ev = result.lastEval;
    io.out(
      `wrote ${c.out}: ${result.step} steps, ${result.tokens} tokens, final loss ${result.lastTrain?.loss.toFixed(4) ?? '-'}` +
        (ev ? `, held-out ${ev.loss.toFixed(4)} nats/token, ${ev.bpb.toFixed(4)} bits/byte` : '') +
        '\n',
    );
    return 0;
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    trainer.dispose();
  }
}

export async function trainCommand(args: readonly string[], io: Io): Promise<number> {
  const parsed = parseTrainArgs(args);
  if (parsed.help) {
    io.out(TRAIN_HELP);
    return 0;
  }
  try {
    return await runTrain(parsed, io, process.stdout.isTTY === true);
  } catch (err) {
    if (err instanceof ConfigError) throw err;
    // A failed run (diverged, corrupt log, native error): the message, not a stack; checkpoints stay.
    io.err(`braid train: ${err instanceof Error ? err.message : String(err)}\n`);
    return 1;
  }
}
