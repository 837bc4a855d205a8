/**
 * Random initialisation of a Chimera model, written straight to GGUF with the
 * tensor names, shapes and types of docs/format.md.
 *
 * Deterministic for a seed: every tensor draws from its own generator seeded
 * by (seed, tensor name), so the bytes of a tensor do not depend on the order
 * or number of the others. Data is produced in chunks while the file is being
 * written, so a 2560-wide, 28-layer model never sits in memory.
 *
 * Ternary (BT2) weights are sampled as codes directly rather than drawing
 * N(0, σ²) floats and quantising them: the absmean scale of N(0, σ²) is
 * σ·sqrt(2/π), and |z| < 0.5·sqrt(2/π) has probability erf(0.5/sqrt(π)) ≈ 0.31,
 * so codes are 0 with p ≈ 0.31 and ±1 with ≈ 0.345 each. One 16-bit draw
 * picks four codes (a whole byte) through a lookup table.
 */
import { endianness } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { GgmlType, ggmlTensorBytes, type GgufValue } from '../gguf/types.ts';
import { writeGguf, type GgufTensorSpec, type TensorChunks } from '../gguf/writer.ts';
import { readTokenizerSpec, tokenizerMetadata, type TokenizerSpec } from '../tokenizer/spec.ts';
import { chimeraMetadata, isMoeLayer, validateChimeraConfig, type ChimeraConfig } from './chimera-config.ts';

export const DEFAULT_TOKENIZER_PATH = join(
  dirname(fileURLToPath(import.meta.url)),
  '../../models/tokenizer/braid-bpe-4k.json',
);

export interface RandomInitOptions {
  /** Embedded tokenizer; default: the committed models/tokenizer/braid-bpe-4k.json. */
  tokenizer?: TokenizerSpec;
  /** σ of the normal initialisers (HF `initializer_range`); default 0.02. */
  initializerRange?: number;
  /**
   * Storage of the float matrices a decode step reads (token_embd, W_rg, Parcae B and C,
   * GDN W_a/W_b, the SK encoders and energy heads, the MoE router): 'f32' (default) or
   * 'f16' (IEEE half, GGUF type 1; docs/format.md allows either per tensor). Values are
   * drawn in f32 and rounded to the nearest half.
   */
  floatMatrices?: FloatMatrixType;
}

export type FloatMatrixType = 'f32' | 'f16';

/** How one tensor's values are drawn. */
type Init =
  | { kind: 'normal'; std: number }
  | { kind: 'uniform'; lo: number; hi: number }
  | { kind: 'const'; value: number }
  | { kind: 'a_log' }
  | { kind: 'dt_bias' }
  /** value i is values[i % values.length] */
  | { kind: 'values'; values: readonly number[] }
  /** n values evenly spaced from lo to hi (xLSTM's forget-gate bias) */
  | { kind: 'linspace'; lo: number; hi: number; n: number }
  | { kind: 'ternary'; scale: number }
  /** the identity matrix (square [n, n]) */
  | { kind: 'identity' };

export interface PlannedTensor {
  name: string;
  type: number;
  /** GGUF order: [cols, rows]. */
  dims: number[];
  init: Init;
}

/** The tensor list of docs/format.md for a config, in file order. Inits: ARCHITECTURES.md. */
export function chimeraTensorPlan(
  c: ChimeraConfig,
  initializerRange = 0.02,
  floatMatrices: FloatMatrixType = 'f32',
): PlannedTensor[] {
  const D = c.embeddingLength;
  const I = c.feedForwardLength;
  const HK = c.headCount * c.headDim;
  const HV = c.headCount * c.valueDim;
  const H = c.headCount;
  const K = c.convKernel;
  const F32 = GgmlType.F32;
  const BT2 = GgmlType.BT2;
  // the float matrices a decode step reads (docs/format.md: F32 or F16); vectors and
  // per-head gate matrices of XM/TM stay F32
  const FM = floatMatrices === 'f16' ? GgmlType.F16 : F32;
  const normal: Init = { kind: 'normal', std: initializerRange };
  const ones: Init = { kind: 'const', value: 1 };
  const zeros: Init = { kind: 'const', value: 0 };
  const ternary: Init = { kind: 'ternary', scale: initializerRange * Math.sqrt(2 / Math.PI) };
  const conv: Init = { kind: 'uniform', lo: -0.5, hi: 0.5 };
  // Shapes below are [rows, cols] (or [n, rows, cols]) as in docs/format.md; dims reverse them.
  const t = (name: string, type: number, shape: number[], init: Init): PlannedTensor => ({
    name,
    type,
    dims: [...shape].reverse(),
    init,
  });
  const plan: PlannedTensor[] = [
    t('token_embd.weight', FM, [c.vocabSize, D], normal),
    t('output_norm.weight', F32, [D], ones),
  ];
  if (c.ngram) {
    // Initialised like the token embedding it is added to. Always F16: the table is most of a small
    // model's file, and its rows are only added to the input (the trainer reads them rounded too).
    plan.push(t('token_ngram.weight', GgmlType.F16, [c.ngram.rows, D], normal));
  }
  if (c.spanGate) {
    // §2.13: h ⊙ σ(W_rg [h ; σ(w_risk·h)]); N(0, initializer_range) like every reference Linear.
    plan.push(t('output_risk.weight', F32, [D], normal), t('output_gate.weight', FM, [D, D + 1], normal));
  }
  const gdn = (b: string): PlannedTensor[] => [
    t(`${b}gdn_q.weight`, BT2, [HK, D], ternary),
    t(`${b}gdn_k.weight`, BT2, [HK, D], ternary),
    t(`${b}gdn_v.weight`, BT2, [HV, D], ternary),
    t(`${b}gdn_g.weight`, BT2, [HV, D], ternary),
    t(`${b}gdn_o.weight`, BT2, [D, HV], ternary),
    t(`${b}gdn_a.weight`, FM, [H, D], normal),
    t(`${b}gdn_b.weight`, FM, [H, D], normal),
    t(`${b}gdn_a_log`, F32, [H], { kind: 'a_log' }),
    t(`${b}gdn_dt_bias`, F32, [H], { kind: 'dt_bias' }),
    t(`${b}gdn_conv_q.weight`, F32, [HK, K], conv),
    t(`${b}gdn_conv_k.weight`, F32, [HK, K], conv),
    t(`${b}gdn_conv_v.weight`, F32, [HV, K], conv),
    t(`${b}gdn_o_norm.weight`, F32, [c.valueDim], ones),
  ];
  if (c.looping) {
    // §2.11 (official Parcae): prelude RMSNorm 1, A_log = 0, dt_bias with exp(−softplus(dt_bias)) = √(1/5)
    // (Δ = ln(5)/2 ≈ 0.805), B = I; C (no init given) = I, so at init the coda reads h unchanged.
    const delta = Math.log(5) / 2;
    plan.push(
      t('parcae.prelude_norm.weight', F32, [D], ones),
      t('parcae.a_log', F32, [D], zeros),
      t('parcae.dt_bias', F32, [D], { kind: 'const', value: Math.log(Math.expm1(delta)) }),
      t('parcae.b.weight', FM, [D, D], { kind: 'identity' }),
      t('parcae.c.weight', FM, [D, D], { kind: 'identity' }),
    );
  }
  c.layerTypes.forEach((type, n) => {
    const b = `blk.${n}.`;
    plan.push(t(`${b}attn_norm.weight`, F32, [D], ones));
    if (type === 'GD') plan.push(...gdn(b));
    if (type === 'XM' && c.xlstm) {
      // §2.6: xLSTM's gate-bias init (b_i = −10, b_f = linspace(3, 6, H)), not FULL's reset to 0.
      const x = c.xlstm;
      const XH = x.headCount * x.headDim;
      plan.push(
        t(`${b}xm_q.weight`, BT2, [XH, D], ternary),
        t(`${b}xm_k.weight`, BT2, [XH, D], ternary),
        t(`${b}xm_v.weight`, BT2, [XH, D], ternary),
        t(`${b}xm_og.weight`, BT2, [XH, D], ternary),
        t(`${b}xm_o.weight`, BT2, [D, XH], ternary),
        t(`${b}xm_i.weight`, F32, [x.headCount, D], normal),
        t(`${b}xm_f.weight`, F32, [x.headCount, D], normal),
        t(`${b}xm_i.bias`, F32, [x.headCount], { kind: 'const', value: -10 }),
        t(`${b}xm_f.bias`, F32, [x.headCount], { kind: 'linspace', lo: 3, hi: 6, n: x.headCount }),
        t(`${b}xm_norm.weight`, F32, [x.headDim], ones),
        t(`${b}xm_norm.bias`, F32, [x.headDim], zeros),
      );
    }
    if (type === 'TM' && c.titans) {
      // §2.8-P recommended inits: gate biases b_α = −4, b_η = +2, b_θ = 0; P_k, P_v N(0, 0.02);
      // W1⁰, W2⁰ Xavier-uniform.
      const m = c.titans;
      const TH = m.headCount * m.headDim;
      const xavier = Math.sqrt(6 / (m.memoryDim + m.headDim));
      plan.push(
        t(`${b}tm_q.weight`, BT2, [TH, D], ternary),
        t(`${b}tm_k.weight`, BT2, [TH, D], ternary),
        t(`${b}tm_v.weight`, BT2, [TH, D], ternary),
        t(`${b}tm_o.weight`, BT2, [D, TH], ternary),
        t(`${b}tm_km.weight`, BT2, [TH, TH], ternary),
        t(`${b}tm_vm.weight`, BT2, [TH, TH], ternary),
        t(`${b}tm_alpha.weight`, F32, [m.headCount, D], normal),
        t(`${b}tm_eta.weight`, F32, [m.headCount, D], normal),
        t(`${b}tm_theta.weight`, F32, [m.headCount, D], normal),
        t(`${b}tm_alpha.bias`, F32, [m.headCount], { kind: 'const', value: -4 }),
        t(`${b}tm_eta.bias`, F32, [m.headCount], { kind: 'const', value: 2 }),
        t(`${b}tm_theta.bias`, F32, [m.headCount], zeros),
        t(`${b}tm_persist_k`, F32, [m.headCount, m.persistentSlots, m.headDim], normal),
        t(`${b}tm_persist_v`, F32, [m.headCount, m.persistentSlots, m.headDim], normal),
        t(`${b}tm_mem_w1`, F32, [m.headCount, m.memoryDim, m.headDim], { kind: 'uniform', lo: -xavier, hi: xavier }),
        t(`${b}tm_mem_w2`, F32, [m.headCount, m.headDim, m.memoryDim], { kind: 'uniform', lo: -xavier, hi: xavier }),
      );
    }
    if (type === 'SK' && c.tsp) {
      // §2.9: inner GDN (same names as GD), encoders and energy heads N(0, initializer_range),
      // energy weights λ = [1, 0.3, 0.2, 0.4, 0.3].
      const S = c.tsp.sketchDim;
      plan.push(
        ...gdn(b),
        t(`${b}sk_sketch.weight`, FM, [S, D], normal),
        t(`${b}sk_role.weight`, FM, [S, D], normal),
        t(`${b}sk_filler.weight`, FM, [S, D], normal),
        t(`${b}sk_energy.weight`, FM, [5, D], normal),
        t(`${b}sk_energy_lambda`, F32, [5], { kind: 'values', values: [1.0, 0.3, 0.2, 0.4, 0.3] }),
      );
    }
    plan.push(t(`${b}ffn_norm.weight`, F32, [D], ones));
    const moe = c.moe;
    if (moe && isMoeLayer(c, n)) {
      // §2.10: router N(0, D^-1/2) as FULL's raw Parameter; selection bias 0 (moved by the trainer's load rule).
      const E = moe.expertCount;
      const Ie = moe.feedForwardLength;
      const Ish = moe.sharedExpertCount * Ie;
      plan.push(
        t(`${b}ffn_gate_inp.weight`, FM, [E, D], { kind: 'normal', std: 1 / Math.sqrt(D) }),
        t(`${b}exp_probs_b.bias`, F32, [E], zeros),
        t(`${b}ffn_gate_exps.weight`, BT2, [E, Ie, D], ternary),
        t(`${b}ffn_up_exps.weight`, BT2, [E, Ie, D], ternary),
        t(`${b}ffn_down_exps.weight`, BT2, [E, D, Ie], ternary),
      );
      if (Ish > 0) {
        plan.push(
          t(`${b}ffn_gate_shexp.weight`, BT2, [Ish, D], ternary),
          t(`${b}ffn_up_shexp.weight`, BT2, [Ish, D], ternary),
          t(`${b}ffn_down_shexp.weight`, BT2, [D, Ish], ternary),
        );
      }
    } else {
      plan.push(
        t(`${b}ffn_gate.weight`, BT2, [I, D], ternary),
        t(`${b}ffn_up.weight`, BT2, [I, D], ternary),
        t(`${b}ffn_down.weight`, BT2, [D, I], ternary),
      );
    }
  });
  return plan;
}

// ---- deterministic random numbers -------------------------------------------

/** FNV-1a of a string: mixes the tensor name into its generator's seed. */
function fnv1a(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193);
  return h >>> 0;
}

/** sfc32 (Chris Doty-Humphrey's small fast counter): 32-bit, fast in JS, good statistics. */
function sfc32(seed: number, stream: number): () => number {
  let a = seed | 0;
  let b = stream | 0;
  let c = 0x9e3779b9;
  let d = 1;
  const next = () => {
    const t = (((a + b) | 0) + d) | 0;
    d = (d + 1) | 0;
    a = b ^ (b >>> 9);
    b = (c + (c << 3)) | 0;
    c = (c << 21) | (c >>> 11);
    c = (c + t) | 0;
    return t >>> 0;
  };
  for (let i = 0; i < 16; i++) next(); // decorrelate nearby seeds
  return next;
}

const TWO_32 = 4294967296;

/** Uniform in (0, 1), never 0 (Box-Muller takes its log). */
function uniform(next: () => number): number {
  return (next() + 0.5) / TWO_32;
}

/** erf by its Maclaurin series; only needed near 0.28, where it converges in a few terms. */
function erfSmall(x: number): number {
  let term = x;
  let sum = x;
  for (let n = 1; n < 30; n++) {
    term *= (-x * x) / n;
    sum += term / (2 * n + 1);
  }
  return (2 / Math.sqrt(Math.PI)) * sum;
}

/** 65536-entry table: a uniform 16-bit draw → one BT2 byte (four codes) with the right odds. */
function ternaryByteTable(): Uint8Array {
  const p0 = erfSmall(0.5 / Math.sqrt(Math.PI));
  const pCode = [(1 - p0) / 2, p0, (1 - p0) / 2]; // code = w + 1
  const table = new Uint8Array(65536);
  let cum = 0;
  let slot = 0;
  for (let byte = 0; byte < 256; byte++) {
    let p = 1;
    for (let k = 0; k < 4; k++) p *= pCode[(byte >> (2 * k)) & 3] ?? 0;
    if (p === 0) continue;
    cum += p;
    const end = byte === 0b10101010 ? 65536 : Math.round(cum * 65536);
    table.fill(byte, slot, end);
    slot = end;
  }
  return table;
}

const CHUNK_VALUES = 1 << 20;

function* floatChunks(count: number, fill: (out: Float32Array) => void): Generator<Uint8Array> {
  for (let done = 0; done < count; ) {
    const n = Math.min(CHUNK_VALUES, count - done);
    const out = new Float32Array(n);
    fill(out);
    done += n;
    yield new Uint8Array(out.buffer);
  }
}

const f32Bits = new Float32Array(1);
const u32Bits = new Uint32Array(f32Bits.buffer);

/** IEEE half bits of an f32 value, round to nearest even (overflow → ±inf), as C's float_to_half. */
export function floatToHalf(v: number): number {
  f32Bits[0] = v;
  const x = u32Bits[0]!;
  const sign = (x >>> 16) & 0x8000;
  const exp = (x >>> 23) & 0xff;
  const mant = x & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0);
  const e = exp - 112; // rebias 127 → 15
  if (e >= 0x1f) return sign | 0x7c00;
  if (e <= 0) {
    // subnormal half (or 0): value = m · 2^-24 with m = (1.mant · 2^23) >> (14 - e)
    if (e < -10) return sign;
    const full = mant | 0x800000;
    const shift = 14 - e;
    let h = full >>> shift;
    const rem = full & ((1 << shift) - 1);
    const half = 1 << (shift - 1);
    if (rem > half || (rem === half && h & 1)) h++;
    return sign | h;
  }
  let h = (e << 10) | (mant >>> 13);
  const rem = mant & 0x1fff;
  if (rem > 0x1000 || (rem === 0x1000 && h & 1)) h++; // a carry rolls into the exponent (up to inf)
  return sign | h;
}

/** f32 chunks (as bytes) → the same values as IEEE half. */
function* halfChunks(chunks: Iterable<Uint8Array>): Generator<Uint8Array> {
  for (const c of chunks) {
    const f = new Float32Array(c.buffer, c.byteOffset, c.byteLength / 4);
    const h = new Uint16Array(f.length);
    for (let i = 0; i < f.length; i++) h[i] = floatToHalf(f[i]!);
    yield new Uint8Array(h.buffer);
  }
}

function tensorData(p: PlannedTensor, seed: number, table: Uint8Array): () => TensorChunks {
  const f32 = floatTensorData(p, seed, table);
  return p.type === GgmlType.F16 ? () => halfChunks(f32()) : f32;
}

function floatTensorData(p: PlannedTensor, seed: number, table: Uint8Array): () => Iterable<Uint8Array> {
  return () => {
    const next = sfc32(seed, fnv1a(p.name));
    const init = p.init;
    if (init.kind === 'ternary') return ternaryChunks(p, next, table, init.scale);
    const count = p.dims.reduce((a, b) => a * b, 1);
    if (init.kind === 'identity') {
      const n = p.dims[0]!;
      let at = 0;
      return floatChunks(count, (out) => {
        for (let i = 0; i < out.length; i++, at++) out[i] = at % (n + 1) === 0 ? 1 : 0;
      });
    }
    if (init.kind === 'values' || init.kind === 'linspace') {
      const v = new Float32Array(count);
      for (let i = 0; i < count; i++) {
        v[i] =
          init.kind === 'values'
            ? (init.values[i % init.values.length] ?? 0)
            : init.n > 1
              ? init.lo + ((init.hi - init.lo) * i) / (init.n - 1)
              : init.lo;
      }
      return [new Uint8Array(v.buffer)][Symbol.iterator]();
    }
    return floatChunks(count, (out) => {
      for (let i = 0; i < out.length; i++) out[i] = sample(init, next);
    });
  };
}

function sample(init: Exclude<Init, { kind: 'ternary' | 'values' | 'linspace' | 'identity' }>, next: () => number): number {
  switch (init.kind) {
    case 'const':
      return init.value;
    case 'normal':
      // One Box-Muller draw per value: simpler than caching the pair, fast enough for F32 tensors.
      return init.std * Math.sqrt(-2 * Math.log(uniform(next))) * Math.cos(2 * Math.PI * uniform(next));
    case 'uniform':
      return init.lo + (init.hi - init.lo) * uniform(next);
    case 'a_log':
      // A = U(1, 16): the Mamba-2 / GDN decay-rate range.
      return Math.log(1 + 15 * uniform(next));
    case 'dt_bias': {
      // dt log-uniform in [1e-3, 1e-1]; the bias is softplus⁻¹(dt) = log(expm1(dt)).
      const dt = Math.exp(Math.log(1e-3) + (Math.log(1e-1) - Math.log(1e-3)) * uniform(next));
      return Math.log(Math.expm1(dt));
    }
  }
}

/** A BT2 tensor [rows, cols], or [n, rows, cols] stored as n consecutive BT2 matrices (qs then scales each). */
function* ternaryChunks(p: PlannedTensor, next: () => number, table: Uint8Array, scale: number): Generator<Uint8Array> {
  const [cols, rows, stack = 1] = p.dims as [number, number, number?];
  for (let m = 0; m < stack; m++) {
    let qs = rows * (cols / 4); // even: cols is a multiple of 128
    while (qs > 0) {
      const n = Math.min(4 * CHUNK_VALUES, qs);
      const out = new Uint8Array(n);
      for (let i = 0; i < n; i += 2) {
        const r = next();
        out[i] = table[r & 0xffff]!;
        out[i + 1] = table[r >>> 16]!;
      }
      qs -= n;
      yield out;
    }
    yield* floatChunks(rows * (cols / 128), (out) => out.fill(scale));
  }
}

/**
 * Writes a randomly initialised Chimera model to `path` (atomically). The
 * embedded tokenizer's size must not exceed config.vocabSize; a larger vocab
 * is padded with unused tokens.
 */
export async function writeRandomChimera(
  path: string,
  config: ChimeraConfig,
  seed: number,
  opts: RandomInitOptions = {},
): Promise<void> {
  validateChimeraConfig(config);
  if (!Number.isInteger(seed)) throw new Error(`seed must be an integer, got ${seed}`);
  // Float chunks are written as the platform's bytes; GGUF is little-endian.
  if (endianness() !== 'LE') throw new Error('writeRandomChimera needs a little-endian host');
  const tokenizer = opts.tokenizer ?? readTokenizerSpec(DEFAULT_TOKENIZER_PATH);
  const metadata: [string, GgufValue][] = [
    ...chimeraMetadata(config),
    ...tokenizerMetadata(tokenizer, config.vocabSize),
  ];
  const table = ternaryByteTable();
  if (opts.floatMatrices !== undefined && opts.floatMatrices !== 'f32' && opts.floatMatrices !== 'f16')
    throw new Error(`floatMatrices must be 'f32' or 'f16', got ${String(opts.floatMatrices)}`);
  const tensors: GgufTensorSpec[] = chimeraTensorPlan(config, opts.initializerRange, opts.floatMatrices).map((p) => {
    ggmlTensorBytes(p.type, p.dims); // throws early on a shape BT2 cannot hold
    return { name: p.name, type: p.type, dims: p.dims, data: tensorData(p, seed >>> 0, table) };
  });
  await writeGguf(path, { metadata, tensors });
}
