/**
 * MoA `config.json` (seed card 003, `model_type: moa_metric`) → the typed
 * hyper-parameters braid needs and the `moa.*` GGUF metadata (docs/format.md,
 * "MoA models"). Every card key is honoured: the inference keys become
 * metadata, the informational ones (init and training settings) are echoed,
 * the training-only ones (ti_reg_weight, ti_reg_samples, router_dropout,
 * attn_drop, proj_drop, drop_path) change nothing at inference and are
 * ignored, as are other HF keys (architectures, torch_dtype, ...). A key the card leaves out gets the
 * default documented in docs/format.md ("braid convert"): the sibling
 * checkpoints' values (ARCHITECTURES.md §1.3) for the architecture keys.
 */
import { gv, type GgufValue } from '../gguf/types.ts';

export type MoaMetric = 'l2' | 'cosine' | 'maha_diag';

export interface MoaHfConfig {
  vocab_size: number;
  dim: number;
  num_layers: number;
  max_position_embeddings: number;
  attn_heads: number;
  mqa_q_heads: number;
  mixer_hidden: number;
  ffn_hidden: number;
  metric: MoaMetric;
  use_balls: boolean;
  router_hidden: number;
  router_topk: number;
  router_temperature: number;
  conv_kernel: number;
  conv_mult: number;
  lr_rank: number;
  n_branches: number;
  branch_topk: number;
  branch_temperature: number;
  r_basis: number;
  theta_base: number;
  enable_v_energy: boolean;
  energy_amplification: number;
  discrepancy_modulation: boolean;
  enable_feature_gates: boolean;
  enable_router_gates: boolean;
  layer_norm_eps: number;
  /** Informational (init / training). */
  alpha_init: number;
  learn_alpha: boolean;
  radius_init: number;
  learn_radius: boolean;
  origin_init_scale: number;
  maha_init: number;
  layer_scale_init_value: number;
  ff_mult?: number;
  /** Token ids from config.json (the tokenizer must agree with them). */
  bos_token_id?: number;
  eos_token_id?: number;
  pad_token_id?: number;
}

/** Defaults for keys a config.json may omit (docs/format.md, "braid convert"). */
export const MOA_DEFAULTS = {
  max_position_embeddings: 2048,
  router_topk: 2,
  router_temperature: 1.0,
  conv_kernel: 5,
  conv_mult: 2,
  lr_rank: 32,
  n_branches: 3,
  branch_topk: 3,
  branch_temperature: 1.0,
  r_basis: 16,
  theta_base: 10000,
  enable_v_energy: true,
  energy_amplification: Math.PI,
  discrepancy_modulation: false,
  enable_feature_gates: true,
  enable_router_gates: true,
  layer_norm_eps: 1e-5,
  alpha_init: 1.0,
  learn_alpha: true,
  radius_init: 3.0,
  learn_radius: true,
  origin_init_scale: 0.0,
  maha_init: 1.0,
  layer_scale_init_value: 1e-4,
} as const;

export function parseMoaConfig(json: Record<string, unknown>, where = 'config.json'): MoaHfConfig {
  const bad = (k: string, what: string): never => {
    throw new Error(`${where}: "${k}" ${what}`);
  };
  const int = (k: string, min: number, def?: number): number => {
    const v = json[k] ?? def;
    if (v === undefined) return bad(k, 'is required');
    if (!Number.isInteger(v) || (v as number) < min) return bad(k, `must be an integer >= ${min}, got ${JSON.stringify(v)}`);
    return v as number;
  };
  const num = (k: string, def: number, positive = true): number => {
    const v = json[k] ?? def;
    if (typeof v !== 'number' || !Number.isFinite(v) || (positive && v <= 0)) {
      return bad(k, `must be a ${positive ? 'positive ' : ''}finite number, got ${JSON.stringify(v)}`);
    }
    return v;
  };
  const flag = (k: string, def?: boolean): boolean => {
    const v = json[k] ?? def;
    if (v === undefined) return bad(k, 'is required');
    if (typeof v !== 'boolean') return bad(k, `must be true or false, got ${JSON.stringify(v)}`);
    return v;
  };
  const optId = (k: string): number | undefined => (json[k] === undefined || json[k] === null ? undefined : int(k, 0));
  const d = MOA_DEFAULTS;
  const metric = json.metric;
  if (metric !== 'l2' && metric !== 'cosine' && metric !== 'maha_diag') {
    bad('metric', `must be "l2", "cosine" or "maha_diag", got ${JSON.stringify(metric)}`);
  }
  const dim = int('dim', 2);
  const ffMult = json.ff_mult === undefined ? undefined : int('ff_mult', 1);
  const cfg: MoaHfConfig = {
    vocab_size: int('vocab_size', 1),
    dim,
    num_layers: int('num_layers', 1),
    max_position_embeddings: int('max_position_embeddings', 1, d.max_position_embeddings),
    attn_heads: int('attn_heads', 1),
    mqa_q_heads: int('mqa_q_heads', 1),
    mixer_hidden: int('mixer_hidden', 1),
    // The card always lists ffn_hidden; sibling configs may give only ff_mult.
    ffn_hidden: int('ffn_hidden', 1, ffMult === undefined ? undefined : ffMult * dim),
    metric: metric as MoaMetric,
    use_balls: flag('use_balls'),
    router_hidden: int('router_hidden', 1),
    router_topk: int('router_topk', 1, d.router_topk),
    router_temperature: num('router_temperature', d.router_temperature),
    conv_kernel: int('conv_kernel', 1, d.conv_kernel),
    conv_mult: int('conv_mult', 1, d.conv_mult),
    lr_rank: int('lr_rank', 1, d.lr_rank),
    n_branches: int('n_branches', 1, d.n_branches),
    branch_topk: int('branch_topk', 1, d.branch_topk),
    branch_temperature: num('branch_temperature', d.branch_temperature),
    r_basis: int('r_basis', 0, d.r_basis),
    theta_base: num('theta_base', d.theta_base),
    enable_v_energy: flag('enable_v_energy', d.enable_v_energy),
    energy_amplification: num('energy_amplification', d.energy_amplification),
    discrepancy_modulation: flag('discrepancy_modulation', d.discrepancy_modulation),
    enable_feature_gates: flag('enable_feature_gates', d.enable_feature_gates),
    enable_router_gates: flag('enable_router_gates', d.enable_router_gates),
    layer_norm_eps: num('layer_norm_eps', d.layer_norm_eps),
    alpha_init: num('alpha_init', d.alpha_init),
    learn_alpha: flag('learn_alpha', d.learn_alpha),
    radius_init: num('radius_init', d.radius_init),
    learn_radius: flag('learn_radius', d.learn_radius),
    origin_init_scale: num('origin_init_scale', d.origin_init_scale, false),
    maha_init: num('maha_init', d.maha_init),
    layer_scale_init_value: num('layer_scale_init_value', d.layer_scale_init_value, false),
  };
  if (ffMult !== undefined) cfg.ff_mult = ffMult;
  const bos = optId('bos_token_id');
  const eos = optId('eos_token_id');
  const pad = optId('pad_token_id');
  if (bos !== undefined) cfg.bos_token_id = bos;
  if (eos !== undefined) cfg.eos_token_id = eos;
  if (pad !== undefined) cfg.pad_token_id = pad;
  checkMoaConfig(cfg, where);
  return cfg;
}

/** The structural rules the C loader enforces, said here first with the config key names. */
function checkMoaConfig(c: MoaHfConfig, where: string): void {
  const fail = (what: string): never => {
    throw new Error(`${where}: ${what}`);
  };
  if (c.n_branches !== 3) fail(`"n_branches" must be 3 (SwiGLU, SepConv, LowRank), got ${c.n_branches}`);
  if (c.router_topk > 4) fail(`"router_topk" must be 1..4 (four paths), got ${c.router_topk}`);
  if (c.branch_topk > 3) fail(`"branch_topk" must be 1..3, got ${c.branch_topk}`);
  for (const [k, h] of [['attn_heads', c.attn_heads], ['mqa_q_heads', c.mqa_q_heads]] as const) {
    if (c.dim % h) fail(`"dim" ${c.dim} is not a multiple of "${k}" ${h}`);
    if ((c.dim / h) % 2) fail(`head width dim/${k} = ${c.dim / h} must be even (RoPE pairs)`);
  }
  if (c.enable_v_energy && c.energy_amplification <= 1) fail(`"energy_amplification" must be > 1, got ${c.energy_amplification}`);
}

/** The moa.* metadata of a config (docs/format.md key table; flags as bool). */
export function moaMetadata(c: MoaHfConfig): [string, GgufValue][] {
  const u = (k: keyof MoaHfConfig) => [`moa.${k}`, gv.u32(c[k] as number)] as [string, GgufValue];
  const f = (k: keyof MoaHfConfig) => [`moa.${k}`, gv.f32(c[k] as number)] as [string, GgufValue];
  const b = (k: keyof MoaHfConfig) => [`moa.${k}`, gv.bool(c[k] as boolean)] as [string, GgufValue];
  const out: [string, GgufValue][] = [
    u('vocab_size'), u('dim'), u('num_layers'), u('max_position_embeddings'), u('attn_heads'), u('mqa_q_heads'),
    u('mixer_hidden'), u('ffn_hidden'), ['moa.metric', gv.str(c.metric)], b('use_balls'), u('router_hidden'),
    u('router_topk'), f('router_temperature'), u('conv_kernel'), u('conv_mult'), u('lr_rank'), u('n_branches'),
    u('branch_topk'), f('branch_temperature'), u('r_basis'), f('theta_base'), b('enable_v_energy'),
    f('energy_amplification'), b('discrepancy_modulation'), b('enable_feature_gates'), b('enable_router_gates'),
    f('layer_norm_eps'), f('alpha_init'), b('learn_alpha'), f('radius_init'), b('learn_radius'),
    f('origin_init_scale'), f('maha_init'), f('layer_scale_init_value'),
  ];
  if (c.ff_mult !== undefined) out.push(u('ff_mult'));
  return out;
}
