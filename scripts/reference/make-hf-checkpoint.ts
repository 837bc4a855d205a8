/**
 * Writes small, seeded, synthetic Hugging Face checkpoint folders
 * (config.json + model.safetensors or shards + tokenizer.json) for
 * `braid convert` tests and for the independent PyTorch MoA reference.
 * Every byte comes from our own code (engine/convert/safetensors.ts); nothing
 * is downloaded.
 *
 *   node --import tsx scripts/reference/make-hf-checkpoint.ts moa <dir> [options]
 *     --metric l2|cosine|maha_diag (maha_diag)  --balls on|off (on)  --v-energy on|off (on)
 *     --discrepancy on|off (on)  --feature-gates on|off (on)  --router-gates on|off (on)
 *     --r-basis N (4)  --layers N (2)  --dim N (32)  --attn-heads N (4)  --mqa-heads N (2)
 *     --router-topk N (2)  --branch-topk N (3)  --max-pos N (128)  --seed N (1)
 *     --dtype f32|f16|bf16 (f32, the safetensors dtype)  --shards N (1)
 *   node --import tsx scripts/reference/make-hf-checkpoint.ts chimera <dir> --from model.gguf [--shards N]
 *     exports a Chimera GGUF (e.g. from writeRandomChimera) under the Chimera 5.1 names.
 *
 * The MoA weights are random but shaped like a trained model's, so every code
 * path matters: LayerNorm gains near 1, matrices ~ N(0, 1/in), α, ω and ball
 * radii drawn as effective values (radius ≈ the key norm, so some keys fall
 * outside the ball) and stored as softplus⁻¹ (the `*_raw` names), non-zero
 * BlackHoleRoPE, V energy, FiLM and gate coefficients.
 */
import { copyFileSync, mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { writeCheckpointTensors } from '../../engine/convert/checkpoint-tensors.ts';
import { parseMoaConfig, type MoaHfConfig, type MoaMetric } from '../../engine/convert/moa-config.ts';
import { bf16ToFloat, floatToBf16, floatToHalf, halfToFloat } from '../../engine/convert/half.ts';
import { inverseSoftplus, moaTensorTable, softplus, type MoaTensorEntry } from '../../engine/convert/moa-tensors.ts';
import type { SafetensorsDtype, SafetensorToWrite } from '../../engine/convert/safetensors.ts';
import { Prng } from '../../engine/sampler/prng.ts';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
/** GPT-2-style byte-level BPE: 256 bytes, 5 merges, <|endoftext|> = 261, <tool> = 262. */
export const TINY_TOKENIZER = join(root, 'test/fixtures/tokenizers/tiny-bpe.tokenizer.json');
export const TINY_EOS = 261;

export interface MoaCheckpointOptions {
  metric?: MoaMetric;
  balls?: boolean;
  vEnergy?: boolean;
  discrepancy?: boolean;
  featureGates?: boolean;
  routerGates?: boolean;
  rBasis?: number;
  layers?: number;
  dim?: number;
  attnHeads?: number;
  mqaHeads?: number;
  routerTopk?: number;
  branchTopk?: number;
  maxPos?: number;
  seed?: number;
  /** safetensors dtype of every tensor (default F32). */
  dtype?: 'F32' | 'F16' | 'BF16';
  shards?: number;
  /** Extra or overriding config.json keys (tests use it to break things). */
  configPatch?: Record<string, unknown>;
}

/** The config.json of a synthetic MoA checkpoint (card keys + sibling keys). */
export function moaConfigJson(o: MoaCheckpointOptions = {}): Record<string, unknown> {
  const dim = o.dim ?? 32;
  return {
    architectures: ['MoAMetricLM'],
    model_type: 'moa_metric',
    vocab_size: 288, // > the tokenizer's 263: the GGUF pads with unused tokens, as real checkpoints round up
    dim,
    num_layers: o.layers ?? 2,
    attn_heads: o.attnHeads ?? 4,
    mqa_q_heads: o.mqaHeads ?? 2,
    mixer_hidden: 48,
    ffn_hidden: 64,
    metric: o.metric ?? 'maha_diag',
    alpha_init: 1.0,
    learn_alpha: true,
    use_balls: o.balls ?? true,
    radius_init: 3.0,
    learn_radius: true,
    origin_init_scale: 0.0,
    maha_init: 1.0,
    ti_reg_weight: 0.0,
    ti_reg_samples: 0,
    router_hidden: 16,
    router_dropout: 0.1,
    router_temperature: 1.25,
    router_topk: o.routerTopk ?? 2,
    attn_drop: 0.1,
    proj_drop: 0.1,
    drop_path: 0.0,
    max_position_embeddings: o.maxPos ?? 128,
    conv_kernel: 3,
    conv_mult: 2,
    lr_rank: 8,
    n_branches: 3,
    branch_topk: o.branchTopk ?? 3,
    r_basis: o.rBasis ?? 4,
    theta_base: 10000,
    enable_v_energy: o.vEnergy ?? true,
    energy_amplification: Math.PI,
    discrepancy_modulation: o.discrepancy ?? true,
    enable_feature_gates: o.featureGates ?? true,
    enable_router_gates: o.routerGates ?? true,
    layer_norm_eps: 1e-5,
    layer_scale_init_value: 0.1,
    tie_word_embeddings: true,
    pad_token_id: TINY_EOS,
    bos_token_id: TINY_EOS,
    eos_token_id: TINY_EOS,
    ...o.configPatch,
  };
}

function gaussian(rng: Prng): number {
  const u = 1 - rng.next();
  return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * rng.next());
}

/** Seed per tensor name, so one tensor's values do not depend on the others. */
function nameSeed(seed: number, name: string): number {
  let h = 0x811c9dc5 ^ seed;
  for (let i = 0; i < name.length; i++) h = Math.imul(h ^ name.charCodeAt(i), 0x01000193);
  return h >>> 0;
}

/** Values as a safetensors dtype stores them (so the expected effective values are exact). */
function roundToDtype(v: Float32Array, dtype: SafetensorsDtype): Float32Array {
  if (dtype === 'F16') return v.map((x) => halfToFloat(floatToHalf(x)));
  if (dtype === 'BF16') return v.map((x) => bf16ToFloat(floatToBf16(x)));
  return v;
}

/** The effective (GGUF-side) values of one tensor, drawn per its role. */
function effectiveValues(e: MoaTensorEntry, c: MoaHfConfig, seed: number): Float32Array {
  const rng = new Prng(nameSeed(seed, e.hf));
  const n = e.shape.reduce((a, b) => a * b, 1);
  const out = new Float32Array(n);
  const fill = (f: () => number) => {
    for (let i = 0; i < n; i++) out[i] = f();
  };
  const normal = (mean: number, std: number) => fill(() => mean + std * gaussian(rng));
  const uniform = (lo: number, hi: number) => fill(() => lo + (hi - lo) * rng.next());
  const leaf = e.hf.slice(e.hf.lastIndexOf('.') + 1);
  const mod = e.hf.includes('.mha.') ? c.attn_heads : c.mqa_q_heads;
  const headDim = c.dim / mod;
  if (e.hf === 'model.embed_tokens.weight') normal(0, 0.5);
  else if (/(ln1|ln2|norm)\.weight$/.test(e.hf)) normal(1, 0.1);
  else if (/(ln1|ln2|norm)\.bias$/.test(e.hf)) normal(0, 0.05);
  else if (leaf === 'alpha_raw') uniform(0.5, 2.0);
  else if (leaf === 'maha_raw') uniform(0.5, 1.5);
  else if (leaf === 'ball_radius_raw') uniform(0.8 * Math.sqrt(headDim), 1.3 * Math.sqrt(headDim));
  else if (leaf === 'ball_origin') normal(0, 0.3);
  else if (leaf === 'phase_a' || leaf === 'phase_b') normal(0, 0.3);
  else if (leaf === 'energy_c' || leaf === 'energy_g') normal(0, 0.5);
  else if (leaf === 'disc') normal(0, 0.5);
  else if (leaf === 'gamma') uniform(0.2, 0.6); // LayerScale
  else if (e.hf.endsWith('dw.weight')) normal(0, 1 / Math.sqrt(c.conv_kernel));
  else if (e.hf.includes('film_')) normal(0, 0.1 / Math.sqrt(e.shape[1]!));
  else if (leaf === 'bias') normal(0, 0.05);
  else if (e.shape.length === 2) normal(0, 1 / Math.sqrt(e.shape[1]!)); // a Linear [out, in]
  else throw new Error(`no init rule for ${e.hf}`);
  return out;
}

export interface MoaSynthetic {
  config: MoaHfConfig;
  /** GGUF name → effective f32 values (what the GGUF must hold), in table order. */
  effective: Map<string, Float32Array>;
  table: MoaTensorEntry[];
}

/** Writes a synthetic MoA folder and returns its effective weights (for tests that build the GGUF another way). */
export function writeMoaHfFolder(dir: string, o: MoaCheckpointOptions = {}): MoaSynthetic {
  const json = moaConfigJson(o);
  const config = parseMoaConfig(json);
  const table = moaTensorTable(config);
  const seed = o.seed ?? 1;
  const dtype: SafetensorsDtype = o.dtype ?? 'F32';
  const effective = new Map<string, Float32Array>();
  const tensors: SafetensorToWrite[] = [];
  for (const e of table) {
    const drawn = effectiveValues(e, config, seed);
    const raw = roundToDtype(e.map === 'softplus' ? drawn.map((y) => inverseSoftplus(y)) : drawn, dtype);
    // What the GGUF must hold: the stored (dtype-rounded) values through the documented map.
    effective.set(e.gguf, e.map === 'softplus' ? raw.map((x) => softplus(x)) : raw);
    tensors.push({ name: e.hf, shape: e.shape, dtype, data: raw });
  }
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'config.json'), JSON.stringify(json, null, 2) + '\n');
  copyFileSync(TINY_TOKENIZER, join(dir, 'tokenizer.json'));
  writeCheckpointTensors(dir, tensors, o.shards ?? 1);
  return { config, effective, table };
}

/* ---- command line ------------------------------------------------------------------ */

function parseArgs(argv: string[]): { positional: string[]; flags: Map<string, string> } {
  const positional: string[] = [];
  const flags = new Map<string, string>();
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (!a.startsWith('--')) {
      positional.push(a);
      continue;
    }
    const v = argv[i + 1];
    if (v === undefined) throw new Error(`${a} needs a value`);
    flags.set(a.slice(2), v);
    i++;
  }
  return { positional, flags };
}

function onOff(flags: Map<string, string>, k: string): boolean | undefined {
  const v = flags.get(k);
  if (v === undefined) return undefined;
  if (v !== 'on' && v !== 'off') throw new Error(`--${k} must be on or off, got ${v}`);
  return v === 'on';
}

function int(flags: Map<string, string>, k: string): number | undefined {
  const v = flags.get(k);
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isInteger(n)) throw new Error(`--${k} must be an integer, got ${v}`);
  return n;
}

async function main(argv: string[]): Promise<void> {
  const { positional, flags } = parseArgs(argv);
  const [kind, dir] = positional;
  if ((kind !== 'moa' && kind !== 'chimera') || dir === undefined) {
    throw new Error('usage: make-hf-checkpoint.ts moa|chimera <dir> [options] (see the header of this file)');
  }
  const shards = int(flags, 'shards');
  if (kind === 'chimera') {
    const from = flags.get('from');
    if (from === undefined) throw new Error('chimera needs --from model.gguf');
    // Imported here: the exporter imports this file's TINY_TOKENIZER.
    const { writeChimeraHfFolder } = await import('./chimera-hf-export.ts');
    await writeChimeraHfFolder(resolve(from), resolve(dir), shards === undefined ? {} : { shards });
    console.log(`wrote a Chimera 5.1 HF folder from ${from} to ${dir}`);
    return;
  }
  const dtype = flags.get('dtype')?.toUpperCase();
  if (dtype !== undefined && dtype !== 'F32' && dtype !== 'F16' && dtype !== 'BF16') throw new Error(`--dtype must be f32, f16 or bf16`);
  const metric = flags.get('metric');
  if (metric !== undefined && metric !== 'l2' && metric !== 'cosine' && metric !== 'maha_diag') {
    throw new Error('--metric must be l2, cosine or maha_diag');
  }
  const o: MoaCheckpointOptions = {};
  const set = <K extends keyof MoaCheckpointOptions>(k: K, v: MoaCheckpointOptions[K] | undefined) => {
    if (v !== undefined) o[k] = v;
  };
  set('metric', metric as MoaMetric | undefined);
  set('balls', onOff(flags, 'balls'));
  set('vEnergy', onOff(flags, 'v-energy'));
  set('discrepancy', onOff(flags, 'discrepancy'));
  set('featureGates', onOff(flags, 'feature-gates'));
  set('routerGates', onOff(flags, 'router-gates'));
  set('rBasis', int(flags, 'r-basis'));
  set('layers', int(flags, 'layers'));
  set('dim', int(flags, 'dim'));
  set('attnHeads', int(flags, 'attn-heads'));
  set('mqaHeads', int(flags, 'mqa-heads'));
  set('routerTopk', int(flags, 'router-topk'));
  set('branchTopk', int(flags, 'branch-topk'));
  set('maxPos', int(flags, 'max-pos'));
  set('seed', int(flags, 'seed'));
  set('dtype', dtype as MoaCheckpointOptions['dtype']);
  set('shards', shards);
  const s = writeMoaHfFolder(resolve(dir), o);
  console.log(`wrote a moa_metric HF folder to ${dir}: ${s.table.length} tensors, metric ${s.config.metric}, ${s.config.num_layers} layers, D ${s.config.dim}`);
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main(process.argv.slice(2)).catch((e: unknown) => {
    console.error(`make-hf-checkpoint: ${(e as Error).message}`);
    process.exit(1);
  });
}
