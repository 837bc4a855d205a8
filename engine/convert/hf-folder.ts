/**
 * A Hugging Face model folder as `braid convert` reads it: config.json, the
 * safetensors tensors (one file or shards), tokenizer.json and, if present,
 * tokenizer_config.json; and which architecture it is. `model_type`
 * `moa_metric` is MoA; Chimera checkpoints are recognised by `model_type`
 * `chimera` (or any `chimera*`), an `architectures` entry starting with
 * "Chimera", or (no model_type) the Chimera 5.1 config keys
 * (`backbone.layer_pattern` + `hidden_size`); `--arch` overrides the detection.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { readCheckpointTensors } from './checkpoint-tensors.ts';
import type { SafetensorInfo } from './safetensors.ts';

export type HfArch = 'moa' | 'chimera';
export const HF_ARCHES: readonly HfArch[] = ['moa', 'chimera'];

export interface HfFolder {
  dir: string;
  config: Record<string, unknown>;
  tensors: Map<string, SafetensorInfo>;
  /** Parsed tokenizer.json. */
  tokenizer: unknown;
  /** Parsed tokenizer_config.json, or undefined when the folder has none. */
  tokenizerConfig: unknown;
}

function readJson(path: string, what: string): unknown {
  if (!existsSync(path)) throw new Error(`${what} not found: ${path}`);
  try {
    return JSON.parse(readFileSync(path, 'utf8'));
  } catch (e) {
    throw new Error(`${path}: not valid JSON (${(e as Error).message})`);
  }
}

export function readHfFolder(dir: string): HfFolder {
  if (!existsSync(dir)) throw new Error(`model folder not found: ${dir}`);
  const config = readJson(join(dir, 'config.json'), 'config.json');
  if (typeof config !== 'object' || config === null || Array.isArray(config)) throw new Error(`${join(dir, 'config.json')}: not a JSON object`);
  const tokenizer = readJson(join(dir, 'tokenizer.json'), 'tokenizer.json (braid embeds the tokenizer in the GGUF)');
  const tcPath = join(dir, 'tokenizer_config.json');
  const tokenizerConfig = existsSync(tcPath) ? readJson(tcPath, 'tokenizer_config.json') : undefined;
  return { dir, config: config as Record<string, unknown>, tensors: readCheckpointTensors(dir), tokenizer, tokenizerConfig };
}

/** The architecture of a config.json, or a clear error naming what it says. */
export function detectArch(config: Record<string, unknown>, override?: string): HfArch {
  if (override !== undefined) {
    if (!(HF_ARCHES as readonly string[]).includes(override)) throw new Error(`--arch ${override}: must be one of ${HF_ARCHES.join(', ')}`);
    return override as HfArch;
  }
  const type = config.model_type;
  if (type === 'moa_metric') return 'moa';
  if (typeof type === 'string' && type.toLowerCase().startsWith('chimera')) return 'chimera';
  const archs = Array.isArray(config.architectures) ? config.architectures : [];
  if (archs.some((a) => typeof a === 'string' && a.startsWith('Chimera'))) return 'chimera';
  const backbone = config.backbone;
  const pattern = 'layer_pattern' in config || (typeof backbone === 'object' && backbone !== null && 'layer_pattern' in backbone);
  if (type === undefined && pattern && 'hidden_size' in config) return 'chimera';
  throw new Error(
    `config.json: model_type ${JSON.stringify(type)} is not one braid converts ("moa_metric", or a Chimera 5.1 checkpoint); ` +
      'pass --arch moa|chimera if the folder is one of those',
  );
}
