/**
 * `braid init <out.gguf>`: writes a randomly initialised (untrained) Chimera
 * model for any config, so sizes and speeds can be measured without trained
 * weights. A preset gives every field; a JSON config file overrides some or
 * all of them; flags override both. The config is validated before anything
 * is written, and an existing file is never replaced without --force.
 */
import { existsSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { readGguf } from '../engine/gguf/reader.ts';
import { chimeraSeedDimsConfig, chimeraTinyConfig, validateChimeraConfig, type ChimeraConfig } from '../engine/model-init/chimera-config.ts';
import { DEFAULT_TOKENIZER_PATH, writeRandomChimera } from '../engine/model-init/init-chimera.ts';
import { readTokenizerSpec, type TokenizerSpec } from '../engine/tokenizer/spec.ts';
import type { Io } from './cli.ts';
import { ConfigError } from './config.ts';

export const INIT_HELP = `Usage: braid init <out.gguf> [flags]

Writes a randomly initialised (untrained) Chimera model: ternary BT2 weights,
the embedded tokenizer, every size from the config.

Flags:
  --preset <tiny|seed-base>  starting config (default tiny): tiny is the default
                             model's shape (hidden 256, 4 GD layers); seed-base the
                             seed config's (hidden 2560, 28 layers, 40 heads)
  --config <file.json>       JSON object overriding preset fields, e.g.
                             {"embeddingLength": 512, "layerTypes": ["GD", "GD"]}
  --seed <n>                 random seed (default 1); same seed, same bytes
  --vocab <n>                vocabulary size (default: the tokenizer's; larger pads)
  --name <id>                model id in /v1/models (default: the file name)
  --tokenizer <file.json>    tokenizer spec (default models/tokenizer/braid-bpe-4k.json)
  --force                    overwrite <out.gguf> if it exists
  -h, --help                 this help
`;

const OPTIONS = {
  preset: { type: 'string' },
  config: { type: 'string' },
  seed: { type: 'string' },
  vocab: { type: 'string' },
  name: { type: 'string' },
  tokenizer: { type: 'string' },
  force: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
} as const;

const PRESETS: Readonly<Record<string, (vocab: number) => ChimeraConfig>> = {
  tiny: chimeraTinyConfig,
  'seed-base': chimeraSeedDimsConfig,
};

export interface InitPlan {
  out: string;
  config: ChimeraConfig;
  seed: number;
  tokenizer: TokenizerSpec;
  force: boolean;
}

export type ParsedInitArgs = { help: true } | { help: false; plan: InitPlan };

/** The flags that errors name: braid init's own, or braid train's --init-* ones. */
export interface InitFlagNames {
  preset: string;
  config: string;
  seed: string;
}

const INIT_FLAGS: InitFlagNames = { preset: '--preset', config: '--config', seed: '--seed' };

/** What an init plan is built from: the flags' values (strings where the user typed them). */
export interface InitRequest {
  out: string;
  preset: string | undefined;
  /** Absolute path of the JSON overrides. */
  configFile: string | undefined;
  seed: string | undefined;
  vocab?: string | undefined;
  name?: string | undefined;
  tokenizer?: string | undefined;
}

/** Parses and validates `braid init` arguments; reads the config and tokenizer files. Throws ConfigError. */
export function parseInitArgs(argv: readonly string[], cwd: string = process.cwd()): ParsedInitArgs {
  let values;
  let positionals;
  try {
    ({ values, positionals } = parseArgs({ args: [...argv], options: OPTIONS, strict: true, allowPositionals: true }));
  } catch (err) {
    throw new ConfigError(`${err instanceof Error ? err.message : String(err)}\nRun 'braid init --help' for the flags.`);
  }
  if (values.help === true) return { help: true };
  if (positionals.length !== 1) {
    throw new ConfigError(`init: expected exactly one output file, got ${positionals.length}\nRun 'braid init --help' for the flags.`);
  }
  const plan = planInit({
    out: path.resolve(cwd, positionals[0]!),
    preset: values.preset,
    configFile: values.config === undefined ? undefined : path.resolve(cwd, values.config),
    seed: values.seed,
    vocab: values.vocab,
    name: values.name,
    tokenizer: values.tokenizer === undefined ? undefined : path.resolve(cwd, values.tokenizer),
  });
  return { help: false, plan: { ...plan, force: values.force === true } };
}

/**
 * Validates an init request into a plan (force off); reads the config and
 * tokenizer files. `flags` names the flags in errors, so `braid train --init`
 * reports --init / --init-config / --init-seed. Throws ConfigError.
 */
export function planInit(r: InitRequest, flags: InitFlagNames = INIT_FLAGS): InitPlan {
  const presetName = r.preset ?? 'tiny';
  const preset = PRESETS[presetName];
  if (preset === undefined) throw new ConfigError(`${flags.preset}: '${presetName}' is not one of ${Object.keys(PRESETS).join(', ')}`);

  const tokenizerPath = r.tokenizer ?? DEFAULT_TOKENIZER_PATH;
  let tokenizer: TokenizerSpec;
  try {
    tokenizer = readTokenizerSpec(tokenizerPath);
  } catch (err) {
    throw new ConfigError(`--tokenizer: cannot read ${tokenizerPath}: ${err instanceof Error ? err.message : String(err)}`);
  }

  let config: ChimeraConfig = { ...preset(tokenizer.tokens.length), name: path.basename(r.out).replace(/\.gguf$/i, '') };
  if (r.configFile !== undefined) config = applyConfigFile(config, r.configFile, flags.config);
  if (r.vocab !== undefined) config.vocabSize = parseIntegerFlag('--vocab', r.vocab, 1, 2 ** 31 - 1);
  if (r.name !== undefined) config.name = r.name;
  if (config.vocabSize < tokenizer.tokens.length) {
    throw new ConfigError(
      `vocabSize ${config.vocabSize} is smaller than the tokenizer "${tokenizer.name}" (${tokenizer.tokens.length} tokens); ` +
        'use a larger --vocab or a smaller --tokenizer',
    );
  }
  try {
    validateChimeraConfig(config);
  } catch (err) {
    throw new ConfigError(err instanceof Error ? err.message : String(err));
  }
  const seed = r.seed === undefined ? 1 : parseIntegerFlag(flags.seed, r.seed, 0, 2 ** 32 - 1);
  return { out: r.out, config, seed, tokenizer, force: false };
}

/** ChimeraConfig's optional blocks and their JSON kinds (a preset like tiny leaves them out). */
const OPTIONAL_BLOCKS: Readonly<Record<string, string>> = {
  xlstm: 'object',
  titans: 'object',
  tsp: 'object',
  moe: 'object',
  spanGate: 'boolean',
  looping: 'object',
  ngram: 'object',
} satisfies Partial<Record<keyof ChimeraConfig, string>>;

/**
 * Overrides preset fields with a JSON object's. The known fields and their
 * kinds are the preset's own plus the optional blocks, so a config file can
 * make a hybrid from any preset; anything else is an error that names it.
 * validateChimeraConfig checks the blocks' contents afterwards.
 */
function applyConfigFile(base: ChimeraConfig, file: string, flag: string): ChimeraConfig {
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(file, 'utf8'));
  } catch (err) {
    throw new ConfigError(`${flag}: cannot read ${file}: ${err instanceof Error ? err.message : String(err)}`);
  }
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw new ConfigError(`${flag}: ${file} must hold a JSON object`);
  const known = base as unknown as Record<string, unknown>;
  const errors: string[] = [];
  const merged: Record<string, unknown> = { ...known };
  for (const [key, value] of Object.entries(raw)) {
    const want = Object.hasOwn(known, key) ? kindOf(known[key]) : Object.hasOwn(OPTIONAL_BLOCKS, key) ? OPTIONAL_BLOCKS[key] : undefined;
    if (want === undefined) {
      errors.push(`unknown field "${key}" (known: ${[...Object.keys(known), ...Object.keys(OPTIONAL_BLOCKS).filter((k) => !(k in known))].join(', ')})`);
      continue;
    }
    const got = kindOf(value);
    if (want !== got) {
      errors.push(`field "${key}" must be ${/^[ao]/.test(want) ? 'an' : 'a'} ${want}, got ${got}`);
      continue;
    }
    merged[key] = value;
  }
  if (errors.length > 0) throw new ConfigError(`${flag} ${file}:\n  ${errors.join('\n  ')}`);
  return merged as unknown as ChimeraConfig;
}

function kindOf(v: unknown): string {
  if (Array.isArray(v)) return 'array';
  if (v === null) return 'null';
  return typeof v;
}

/** A decimal integer in [min, max] ("0x10", "1e3", "" and "-1" are refused); braid train's integer flags use it too. */
export function parseIntegerFlag(flag: string, raw: string, min: number, max: number): number {
  const n = /^\s*-?\d+\s*$/.test(raw) ? Number(raw) : Number.NaN;
  if (!Number.isSafeInteger(n) || n < min || n > max) throw new ConfigError(`${flag}: expected an integer from ${min} to ${max}, got '${raw}'`);
  return n;
}

const mib = (bytes: number): string => `${(bytes / 2 ** 20).toFixed(1)} MiB`;

/** Writes the file of a parsed plan and reports what was written. */
export async function runInit(plan: InitPlan, io: Io): Promise<number> {
  // A directory is never a model file, --force or not (checked first: it "exists" too).
  if (existsSync(plan.out) && statSync(plan.out).isDirectory()) throw new ConfigError(`${plan.out} is a directory; name the .gguf file to write`);
  if (existsSync(plan.out) && !plan.force) {
    io.err(`braid init: ${plan.out} already exists; pass --force to overwrite it\n`);
    return 1;
  }
  const dir = path.dirname(plan.out);
  if (!existsSync(dir) || !statSync(dir).isDirectory()) {
    io.err(`braid init: cannot write ${plan.out}: ${existsSync(dir) ? `${dir} is not a directory` : `the directory ${dir} does not exist`}\n`);
    return 1;
  }
  const c = plan.config;
  const started = performance.now();
  try {
    await writeRandomChimera(plan.out, c, plan.seed, { tokenizer: plan.tokenizer });
  } catch (err) {
    // The write is atomic: a failure leaves no file (and no temp file) behind.
    io.err(`braid init: cannot write ${plan.out}: ${err instanceof Error ? err.message : String(err)}\n`);
    return 1;
  }
  const seconds = (performance.now() - started) / 1000;
  const file = await readGguf(plan.out);
  const tensorBytes = file.tensors.reduce((a, t) => a + (t.byteSize ?? 0), 0);
  const fileBytes = statSync(plan.out).size;
  io.out(
    `wrote ${plan.out} in ${seconds.toFixed(1)} s\n` +
      `  model       ${c.name} (random-init, seed ${plan.seed})\n` +
      `  shape       ${c.layerTypes.length} layers [${summarizeLayers(c.layerTypes)}], hidden ${c.embeddingLength}, ffn ${c.feedForwardLength}, vocab ${c.vocabSize}\n` +
      `  tensors     ${file.tensors.length}, ${tensorBytes} bytes (${mib(tensorBytes)})\n` +
      `  file size   ${fileBytes} bytes (${mib(fileBytes)})\n`,
  );
  return 0;
}

/** ["GD", "GD", "XM"] → "2×GD, 1×XM" in first-seen order. */
function summarizeLayers(types: readonly string[]): string {
  const counts = new Map<string, number>();
  for (const t of types) counts.set(t, (counts.get(t) ?? 0) + 1);
  return [...counts].map(([t, n]) => `${n}×${t}`).join(', ');
}

export async function initCommand(args: readonly string[], io: Io): Promise<number> {
  const parsed = parseInitArgs(args);
  if (parsed.help) {
    io.out(INIT_HELP);
    return 0;
  }
  return runInit(parsed.plan, io);
}
