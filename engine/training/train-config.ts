/**
 * The training config: one zod schema for the JSON file and the CLI flags
 * (flags are merged over the file before validation, so both get the same
 * checks and the same messages), the defaults, and the config hash that
 * decides whether a checkpoint may be resumed under a config.
 *
 * Paths in a config file are relative to the file's directory (so a run
 * config can live beside its data); paths given as flags are relative to the
 * working directory. Both are made absolute here.
 */
import { createHash } from 'node:crypto';
import path from 'node:path';
import { z } from 'zod';

const posInt = z.int().positive();

/** The recipe name of a run on data files. */
export const DATA_FILES_RECIPE = 'data-files';
const nonNegInt = z.int().nonnegative();
const positive = z.number().positive();

/** A random initial model, written by the same code as `braid init`. */
const InitSchema = z.strictObject({
  /** `braid init --preset` (tiny, seed-base). */
  preset: z.string().min(1).default('tiny'),
  /** `braid init --config`: a JSON file of preset overrides. */
  config: z.string().min(1).optional(),
  /** `braid init --seed`: the initial weights' seed (default: the training seed). */
  seed: nonNegInt.max(2 ** 32 - 1).optional(),
});

export const TrainConfigSchema = z
  .strictObject({
    /** general.name of the exported model (default: the --out file name without .gguf). */
    name: z.string().min(1).optional(),
    /** Start from this GGUF model ... */
    base: z.string().min(1).optional(),
    /** ... or from a random init: a preset name or the init object. */
    init: z.union([z.string().min(1).transform((preset) => ({ preset })), InitSchema]).optional(),
    /** Built-in data recipe (engine/training/data-source.ts); default "default" unless data files are given. */
    recipe: z.string().min(1).optional(),
    /** Text or chat (.jsonl) files to train on, in one phase, instead of a recipe. */
    data: z.array(z.string().min(1)).default([]),
    /** Held-out text or chat files for evaluation; default: the held-out Brown files. */
    evalData: z.array(z.string().min(1)).default([]),
    /** Held-out tokens per evaluation (a prefix of the held-out stream). */
    evalTokens: posInt.default(16384),
    /** Run length: optimizer steps ... (neither: the recipe's own length) */
    steps: posInt.optional(),
    /** ... or training tokens (converted to steps by the recipe's tokens per step). */
    tokens: posInt.optional(),
    /** Sequences per step and tokens per sequence (both or neither); default: the recipe's, per phase. */
    batch: posInt.optional(),
    seqLen: posInt.optional(),
    /** Sequences per forward/backward call (gradients accumulate); default: the whole batch. */
    microBatch: posInt.optional(),
    /** Peak learning rate. */
    lr: positive.default(1e-3),
    /** Linear warmup steps; default min(100, steps / 10). */
    warmup: nonNegInt.optional(),
    /** Cosine floor as a fraction of lr. */
    minLrRatio: z.number().min(0).max(1).default(0.1),
    beta1: z.number().min(0).lt(1).default(0.9),
    beta2: z.number().min(0).lt(1).default(0.95),
    eps: positive.default(1e-8),
    weightDecay: z.number().min(0).default(0.1),
    /** Global gradient-norm clip (0 = off). */
    clip: z.number().min(0).default(1),
    /** Held-out evaluation every N steps (0 = only at the end). */
    evalInterval: nonNegInt.default(100),
    /** Checkpoint every N steps (0 = only at the end and on Ctrl-C). */
    checkpointInterval: nonNegInt.default(100),
    /** Seed of the data order (and of the init weights unless init.seed is set). */
    seed: nonNegInt.max(2 ** 32 - 1).default(1),
    /** The exported GGUF. */
    out: z.string().min(1),
    /** Checkpoints, metrics log, loss plot, resolved config (default: runs/<name>). */
    runDir: z.string().min(1).optional(),
    /** C thread count (default: BRAID_THREADS, else the cores available). */
    threads: posInt.max(1024).optional(),
  })
  .superRefine((c, ctx) => {
    if ((c.base === undefined) === (c.init === undefined)) {
      ctx.addIssue({ code: 'custom', path: ['base'], message: 'give exactly one of "base" (a GGUF model) and "init" (a preset or init config)' });
    }
    if (c.steps !== undefined && c.tokens !== undefined) {
      ctx.addIssue({ code: 'custom', path: ['steps'], message: 'give at most one of "steps" and "tokens" (neither: the recipe\'s own length)' });
    }
    if (c.steps !== undefined && c.warmup !== undefined && c.warmup > c.steps) {
      ctx.addIssue({ code: 'custom', path: ['warmup'], message: `warmup ${c.warmup} exceeds steps ${c.steps}` });
    }
    if (c.recipe !== undefined && c.data.length > 0) {
      ctx.addIssue({ code: 'custom', path: ['recipe'], message: 'give either a recipe or data files, not both (data files train in one phase of their own)' });
    }
    if ((c.batch === undefined) !== (c.seqLen === undefined)) {
      ctx.addIssue({ code: 'custom', path: ['batch'], message: 'give both "batch" and "seqLen", or neither (the recipe\'s shapes)' });
    }
    if (c.microBatch !== undefined && c.batch !== undefined && c.batch % c.microBatch !== 0) {
      ctx.addIssue({ code: 'custom', path: ['microBatch'], message: `microBatch ${c.microBatch} must divide batch ${c.batch}` });
    }
  });

export type TrainConfigInput = z.input<typeof TrainConfigSchema>;

/** A validated config with absolute paths and every default filled in. */
export interface TrainConfig {
  name: string;
  model: { kind: 'base'; path: string } | { kind: 'init'; preset: string; configFile: string | undefined; seed: number };
  /** The recipe name, or "data-files" when training on data files. */
  recipe: string;
  data: string[];
  evalData: string[];
  evalTokens: number;
  steps: number | undefined;
  tokens: number | undefined;
  batch: number | undefined;
  seqLen: number | undefined;
  microBatch: number | undefined;
  lr: number;
  warmup: number | undefined;
  minLrRatio: number;
  beta1: number;
  beta2: number;
  eps: number;
  weightDecay: number;
  clip: number;
  evalInterval: number;
  checkpointInterval: number;
  seed: number;
  out: string;
  runDir: string;
  threads: number | undefined;
}

export class TrainConfigError extends Error {
  override readonly name = 'TrainConfigError';
}

/** A config field's flag: seqLen → --seq-len, init.seed → --init-seed, init.preset → --init, data.0 → --data. */
function flagOf(where: readonly PropertyKey[]): string {
  const [field, sub] = where;
  const kebab = (k: string): string => k.replace(/[A-Z]/g, (ch) => `-${ch.toLowerCase()}`);
  if (field === 'init' && (sub === 'config' || sub === 'seed')) return `--init-${sub}`;
  return `--${kebab(String(field))}`;
}

/**
 * "--flag: message" per issue, one per line; never zod's raw JSON. With a
 * config file the value came from the file or a flag, so both are named:
 * "seqLen (--seq-len): ...".
 */
function formatIssues(error: z.ZodError, source: string): string {
  const lines = error.issues.map((i) => {
    if (i.code === 'unrecognized_keys') return `${i.keys.map((k) => `"${k}"`).join(', ')}: unknown field (known: ${Object.keys(TrainConfigSchema.shape).join(', ')})`;
    if (i.path.length === 0) return `(config): ${i.message}`;
    const where = source === 'flags' ? flagOf(i.path) : `${i.path.map(String).join('.')} (${flagOf(i.path)})`;
    // zod says "Invalid input: expected string, received undefined" for a missing field.
    if (i.code === 'invalid_type' && /received undefined$/.test(i.message)) return `${where} is required`;
    return `${where}: ${i.message}`;
  });
  return `invalid training config (${source}):\n  ${lines.join('\n  ')}`;
}

/**
 * Validates a raw config object. `pathBase` resolves the relative paths of
 * that object (the config file's directory, or the working directory).
 */
export function parseTrainConfig(raw: unknown, pathBase: string, source = 'config'): TrainConfig {
  const parsed = TrainConfigSchema.safeParse(raw);
  if (!parsed.success) throw new TrainConfigError(formatIssues(parsed.error, source));
  const c = parsed.data;
  const abs = (p: string): string => path.resolve(pathBase, p);
  const out = abs(c.out);
  const name = c.name ?? path.basename(out).replace(/\.gguf$/i, '');
  const init = c.init;
  return {
    name,
    model:
      c.base !== undefined
        ? { kind: 'base', path: abs(c.base) }
        : {
            kind: 'init',
            preset: init?.preset ?? 'tiny',
            configFile: init !== undefined && 'config' in init && init.config !== undefined ? abs(init.config) : undefined,
            seed: (init !== undefined && 'seed' in init ? init.seed : undefined) ?? c.seed,
          },
    recipe: c.recipe ?? (c.data.length > 0 ? DATA_FILES_RECIPE : 'default'),
    data: c.data.map(abs),
    evalData: c.evalData.map(abs),
    evalTokens: c.evalTokens,
    steps: c.steps,
    tokens: c.tokens,
    batch: c.batch,
    seqLen: c.seqLen,
    microBatch: c.microBatch,
    lr: c.lr,
    warmup: c.warmup,
    minLrRatio: c.minLrRatio,
    beta1: c.beta1,
    beta2: c.beta2,
    eps: c.eps,
    weightDecay: c.weightDecay,
    clip: c.clip,
    evalInterval: c.evalInterval,
    checkpointInterval: c.checkpointInterval,
    seed: c.seed,
    out,
    runDir: c.runDir !== undefined ? abs(c.runDir) : path.resolve(pathBase, 'runs', name),
    threads: c.threads,
  };
}

/**
 * Back to the schema's input shape with absolute paths: what the run dir's
 * config.json holds, so `--resume` reproduces the run from its directory alone.
 */
export function toConfigInput(c: TrainConfig): TrainConfigInput {
  const m = c.model;
  const o: TrainConfigInput = {
    name: c.name,
    ...(m.kind === 'base' ? { base: m.path } : { init: { preset: m.preset, seed: m.seed, ...(m.configFile !== undefined ? { config: m.configFile } : {}) } }),
    ...(c.data.length > 0 ? { data: c.data } : { recipe: c.recipe }),
    evalData: c.evalData,
    evalTokens: c.evalTokens,
    lr: c.lr,
    minLrRatio: c.minLrRatio,
    beta1: c.beta1,
    beta2: c.beta2,
    eps: c.eps,
    weightDecay: c.weightDecay,
    clip: c.clip,
    evalInterval: c.evalInterval,
    checkpointInterval: c.checkpointInterval,
    seed: c.seed,
    out: c.out,
    runDir: c.runDir,
  };
  const optional = { steps: c.steps, tokens: c.tokens, batch: c.batch, seqLen: c.seqLen, microBatch: c.microBatch, warmup: c.warmup, threads: c.threads };
  for (const [k, v] of Object.entries(optional)) if (v !== undefined) (o as Record<string, unknown>)[k] = v;
  return o;
}

/** The run's resolved length and schedule (steps known once the data source can size tokens). */
export interface RunPlan {
  totalSteps: number;
  warmup: number;
}

/** `totalSteps`: the data plan's length (the recipe turns "tokens" into steps). */
export function planRun(c: TrainConfig, totalSteps: number): RunPlan {
  if (c.steps !== undefined && c.steps !== totalSteps) throw new TrainConfigError(`the data plan has ${totalSteps} steps, the config asks for ${c.steps}`);
  if (!Number.isInteger(totalSteps) || totalSteps < 1) throw new TrainConfigError(`the run has ${totalSteps} steps; it needs at least 1`);
  const warmup = c.warmup ?? Math.min(100, Math.floor(totalSteps / 10));
  if (warmup > totalSteps) throw new TrainConfigError(`warmup ${warmup} exceeds the run's ${totalSteps} steps`);
  return { totalSteps, warmup };
}

/**
 * sha256 over everything that shapes the loss curve: the model source, the
 * data, the batch shape, the schedule, the optimizer and the seed. Eval and
 * checkpoint intervals, paths, the name and the thread count are left out, so
 * they may change between a run and its resume.
 */
export function configHash(c: TrainConfig, plan: RunPlan, modelFingerprint: string, dataFingerprint: string): string {
  const shaping = {
    // The init config file's path is left out (the fingerprint covers the shapes it produced).
    model: c.model.kind === 'base' ? { base: modelFingerprint } : { preset: c.model.preset, seed: c.model.seed, init: modelFingerprint },
    recipe: c.recipe,
    data: c.data,
    dataFingerprint,
    steps: plan.totalSteps,
    warmup: plan.warmup,
    batch: c.batch ?? null,
    seqLen: c.seqLen ?? null,
    microBatch: c.microBatch ?? null,
    optimizer: [c.lr, c.minLrRatio, c.beta1, c.beta2, c.eps, c.weightDecay, c.clip],
    seed: c.seed,
  };
  return createHash('sha256').update(JSON.stringify(shaping)).digest('hex').slice(0, 16);
}

// ---- layering: run dir config.json < --config file < flags ----------------------

export type RawConfig = Record<string, unknown>;

/** Makes one layer's path fields absolute against its own base (flags: cwd; a file: its directory). */
export function resolveConfigPaths(raw: RawConfig, dir: string): RawConfig {
  const out: RawConfig = { ...raw };
  const abs = (v: unknown): unknown => (typeof v === 'string' && v.length > 0 ? path.resolve(dir, v) : v);
  for (const key of ['base', 'out', 'runDir'] as const) if (key in out) out[key] = abs(out[key]);
  for (const key of ['data', 'evalData'] as const) if (Array.isArray(out[key])) out[key] = out[key].map(abs);
  const init = out.init;
  if (typeof init === 'object' && init !== null && !Array.isArray(init) && 'config' in init) {
    out.init = { ...init, config: abs((init as RawConfig).config) };
  }
  return out;
}

/**
 * Merges layers, later ones winning. Choosing one side of an either/or pair
 * in a later layer drops the other side from earlier ones (a flag --base
 * overrides a file's "init"; --tokens a file's "steps"); `init` objects merge
 * field by field.
 */
export function mergeConfigLayers(layers: readonly RawConfig[]): RawConfig {
  const pairs: [string, string][] = [
    ['base', 'init'],
    ['steps', 'tokens'],
    ['recipe', 'data'],
  ];
  let out: RawConfig = {};
  for (const layer of layers) {
    const next: RawConfig = { ...out };
    for (const [a, b] of pairs) {
      if (a in layer) delete next[b];
      if (b in layer) delete next[a];
    }
    for (const [k, v] of Object.entries(layer)) {
      const prev = next[k];
      const asObj = (x: unknown): RawConfig | null =>
        typeof x === 'string' ? { preset: x } : typeof x === 'object' && x !== null && !Array.isArray(x) ? (x as RawConfig) : null;
      if (k === 'init' && asObj(prev) !== null && asObj(v) !== null) next[k] = { ...asObj(prev), ...asObj(v) };
      else next[k] = v;
    }
    out = next;
  }
  return out;
}
