/**
 * `braid convert <hf-folder> <out.gguf>`: imports a Hugging Face checkpoint
 * folder (config.json + safetensors + tokenizer.json) as a braid GGUF —
 * MoA (`model_type: moa_metric`) or Chimera 5.1 (engine/convert/). Argument
 * mistakes are exit code 2 (ConfigError, as the other commands); a folder
 * that cannot be converted is exit code 1 with the reason on stderr. The
 * whole folder is checked before anything is written, the write is atomic,
 * and an existing file is never replaced without --force.
 */
import { existsSync, statSync } from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import type { Io } from './cli.ts';
import { ConfigError } from './config.ts';

export const CONVERT_HELP = `Usage: braid convert <hf-folder> <out.gguf> [flags]

Converts a Hugging Face model folder (config.json, model.safetensors or
model-*-of-*.safetensors + model.safetensors.index.json, tokenizer.json) to a
braid GGUF. Supported: MoA checkpoints (model_type "moa_metric") and Chimera
checkpoints with the Chimera 5.1 reference's tensor names (model_type
"chimera51"); ternary BitLinear weights are quantized to BT2 (per-128-group
absmean). docs/format.md, "braid convert", lists the tensor names.

Flags:
  --dtype <f32|f16>   storage of the float matrices (default f32); vectors stay f32
  --name <id>         model id in /v1/models (default: the folder name)
  --arch <moa|chimera>  override the architecture detection from config.json
  --force             overwrite <out.gguf> if it exists
  -h, --help          this help
`;

const OPTIONS = {
  dtype: { type: 'string' },
  name: { type: 'string' },
  arch: { type: 'string' },
  force: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
} as const;

export interface ConvertPlan {
  input: string;
  output: string;
  dtype: 'f32' | 'f16';
  name?: string;
  arch?: string;
  force: boolean;
}

/** Parses `braid convert` arguments. Throws ConfigError. */
export function parseConvertArgs(argv: readonly string[], cwd: string = process.cwd()): { help: true } | { help: false; plan: ConvertPlan } {
  let values;
  let positionals;
  try {
    ({ values, positionals } = parseArgs({ args: [...argv], options: OPTIONS, strict: true, allowPositionals: true }));
  } catch (err) {
    throw new ConfigError(`${err instanceof Error ? err.message : String(err)}\nRun 'braid convert --help' for the flags.`);
  }
  if (values.help === true) return { help: true };
  if (positionals.length !== 2) {
    throw new ConfigError(`convert: expected <hf-folder> <out.gguf>, got ${positionals.length} arguments\nRun 'braid convert --help' for the flags.`);
  }
  const dtype = values.dtype ?? 'f32';
  if (dtype !== 'f32' && dtype !== 'f16') throw new ConfigError(`--dtype: '${dtype}' is not f32 or f16`);
  if (values.arch !== undefined && values.arch !== 'moa' && values.arch !== 'chimera') {
    throw new ConfigError(`--arch: '${values.arch}' is not moa or chimera`);
  }
  if (values.name !== undefined && values.name.trim() === '') throw new ConfigError('--name must not be empty');
  const plan: ConvertPlan = {
    input: path.resolve(cwd, positionals[0]!),
    output: path.resolve(cwd, positionals[1]!),
    dtype,
    force: values.force === true,
  };
  if (values.name !== undefined) plan.name = values.name;
  if (values.arch !== undefined) plan.arch = values.arch;
  return { help: false, plan };
}

export async function convertCommand(args: readonly string[], io: Io): Promise<number> {
  const parsed = parseConvertArgs(args);
  if (parsed.help) {
    io.out(CONVERT_HELP);
    return 0;
  }
  const plan = parsed.plan;
  if (existsSync(plan.output) && !plan.force) {
    io.err(`braid convert: ${plan.output} already exists; pass --force to overwrite it\n`);
    return 1;
  }
  // Imported here so `braid convert --help` and argument errors load nothing heavy.
  const { convertHfFolder } = await import('../engine/convert/convert.ts');
  const started = performance.now();
  let result;
  try {
    result = await convertHfFolder(plan);
  } catch (err) {
    io.err(`braid convert: ${err instanceof Error ? err.message : String(err)}\n`);
    return 1;
  }
  const seconds = (performance.now() - started) / 1000;
  io.out(
    `wrote ${plan.output} in ${seconds.toFixed(1)} s\n` +
      `  model       ${result.name} (${result.arch}, from ${plan.input})\n` +
      `  tensors     ${result.tensors}, float matrices ${plan.dtype}\n` +
      `  file size   ${statSync(plan.output).size} bytes\n`,
  );
  return 0;
}
