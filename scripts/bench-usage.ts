/**
 * The benchmarks' command line: every benchmark, its options and their
 * defaults in one table, from which `braid bench --help`, each
 * `braid bench <name> --help` and the parsing are all made, so the help can
 * never disagree with what is accepted. Values are checked here (an integer
 * is a decimal integer in range, never NaN); a mistake is a ConfigError,
 * which the CLI prints as one line with exit code 2.
 */
import { parseArgs } from 'node:util';
import { ConfigError } from '../server/config.ts';

type Option =
  | { kind: 'int'; min: number; max?: number; default?: number; help: string }
  | { kind: 'number'; min: number; default?: number; help: string }
  | { kind: 'ints'; min: number; default?: readonly number[]; help: string }
  | { kind: 'text'; arg: string; default?: string; help: string }
  | { kind: 'flag'; help: string };

interface Bench {
  summary: string;
  options: Readonly<Record<string, Option>>;
}

/** No default: the C program's own (kernels, moa) or one the benchmark computes. */
export const BENCHES = {
  kernels: {
    summary: 'C kernels against their scalar reference and the memory roofline (c/build/bench_kernels)',
    options: {
      threads: { kind: 'int', min: 1, max: 1024, help: 'C threads (default 2)' },
      'footprint-mb': { kind: 'int', min: 1, help: 'working set in MB (default 384)' },
      reps: { kind: 'int', min: 1, max: 31, help: 'repetitions, the median is kept (default 7)' },
      'bandwidth-only': { kind: 'flag', help: 'only the memory read bandwidth' },
    },
  },
  decode: {
    summary: 'load, prefill and decode tok/s of the default model and a seed-dims model against the bandwidth roofline',
    options: {
      threads: { kind: 'int', min: 1, max: 1024, default: 2, help: 'C threads' },
      prompt: { kind: 'int', min: 1, default: 128, help: 'prompt tokens' },
      tokens: { kind: 'int', min: 1, default: 64, help: 'decoded tokens' },
      'skip-seed-dims': { kind: 'flag', help: 'only the default model' },
      depths: { kind: 'ints', min: 1, default: [1, 2, 4], help: 'loop depths of a looping model, comma separated' },
    },
  },
  grammar: {
    summary: 'grammar mask + debt ledger time per token at a 4k and a 50k vocabulary',
    options: {
      gens: { kind: 'int', min: 1, default: 10, help: 'generations per schema' },
      tokens: { kind: 'int', min: 1, default: 64, help: 'max tokens per generation' },
    },
  },
  valve: {
    summary: 'the entropy valve against a fixed loop depth: loops saved and the perplexity it costs',
    options: {
      threads: { kind: 'int', min: 1, max: 1024, default: 2, help: 'C threads' },
      tokens: { kind: 'int', min: 1, default: 3000, help: 'held-out Brown tokens' },
      category: { kind: 'text', arg: 'letter', default: 'r', help: 'Brown corpus category' },
      seed: { kind: 'int', min: 0, max: 2 ** 32 - 1, default: 7, help: 'seed of the random model' },
      'init-range': { kind: 'number', min: 0, default: 0.5, help: 'σ of the random init' },
      'json-tokens': { kind: 'int', min: 1, default: 1500, help: 'held-out JSON tokens (grammar and debt signals)' },
    },
  },
  train: {
    summary: "training tok/s against the PyTorch reference, and GEMM against the FMA roofline",
    options: {
      steps: { kind: 'int', min: 1, default: 6, help: 'timed steps' },
      batch: { kind: 'int', min: 1, default: 8, help: 'sequences per step' },
      seq: { kind: 'int', min: 1, default: 256, help: 'tokens per sequence' },
      threads: { kind: 'int', min: 1, max: 1024, default: 2, help: 'C threads' },
      'no-peer': { kind: 'flag', help: 'skip the PyTorch reference' },
      'no-gemm': { kind: 'flag', help: 'skip the GEMM roofline' },
    },
  },
  finetune: {
    summary: 'chat latency while a fine-tuning job trains in the same server, against the idle server',
    options: {
      threads: { kind: 'int', min: 1, max: 1024, default: 2, help: 'C threads' },
      requests: { kind: 'int', min: 1, default: 80, help: 'chat requests per phase' },
      'think-ms': { kind: 'int', min: 0, default: 100, help: 'mean pause between requests' },
      'max-tokens': { kind: 'int', min: 1, default: 16, help: 'max_tokens per request' },
      epochs: { kind: 'int', min: 1, default: 100, help: "the job's epochs (it must outlast the measurement)" },
      model: { kind: 'text', arg: 'file.gguf', help: 'base model (default models/chimera-tiny.gguf)' },
    },
  },
  moa: {
    summary: 'MoA decode tok/s with the KV cache against recomputing the context (c/build/bench_moa)',
    options: {
      threads: { kind: 'int', min: 1, max: 1024, default: 2, help: 'C threads' },
      steps: { kind: 'int', min: 1, help: 'decode steps per context (default 8)' },
      contexts: { kind: 'ints', min: 1, help: 'context lengths, comma separated, at most 8 (default 128,1024,2048)' },
      f16: { kind: 'flag', help: 'F16 float matrices' },
      prune: { kind: 'flag', help: 'a pruned model' },
    },
  },
} as const satisfies Readonly<Record<string, Bench>>;

export type BenchName = keyof typeof BENCHES;

type ValueOf<O> = O extends { kind: 'flag' }
  ? boolean
  : O extends { kind: 'text' }
    ? O extends { default: string }
      ? string
      : string | undefined
    : O extends { kind: 'ints' }
      ? O extends { default: readonly number[] }
        ? number[]
        : number[] | undefined
      : O extends { default: number }
        ? number
        : number | undefined;

/** The parsed options of benchmark N, typed from the table (a default means never undefined). */
export type BenchValues<N extends BenchName> = { -readonly [K in keyof (typeof BENCHES)[N]['options']]: ValueOf<(typeof BENCHES)[N]['options'][K]> };

export function isBenchName(name: string): name is BenchName {
  return Object.hasOwn(BENCHES, name);
}

function optionLines(options: Readonly<Record<string, Option>>): string[] {
  return Object.entries(options).map(([name, o]) => {
    const arg = o.kind === 'flag' ? '' : o.kind === 'ints' ? ' <n,n,...>' : o.kind === 'text' ? ` <${o.arg}>` : ' <n>';
    const dflt = 'default' in o && o.default !== undefined ? ` (default ${Array.isArray(o.default) ? o.default.join(',') : String(o.default)})` : '';
    return `  --${`${name}${arg}`.padEnd(24)} ${o.help}${dflt}`;
  });
}

/** `braid bench --help`: every benchmark with its options. */
export function benchHelp(): string {
  const parts = Object.entries(BENCHES).map(([name, b]: [string, Bench]) => [`${name}: ${b.summary}`, ...optionLines(b.options)].join('\n'));
  return (
    `Usage: braid bench <name> [options]   (braid bench <name> --help for one)\n\n` +
    'Benchmarks (slow; each prints its figures beside a ratio measured in the same run):\n\n' +
    `${parts.join('\n\n')}\n`
  );
}

/** `braid bench <name> --help`. */
export function benchNameHelp(name: BenchName): string {
  const b: Bench = BENCHES[name];
  return `Usage: braid bench ${name} [options]\n\n${b.summary}\n\nOptions:\n${optionLines(b.options).join('\n')}\n  ${'-h, --help'.padEnd(26)} this help\n`;
}

function parseNumber(flag: string, raw: string, o: Option): number {
  const integer = o.kind === 'int' || o.kind === 'ints';
  const pattern = integer ? /^\s*-?\d+\s*$/ : /^\s*[+-]?(\d+\.?\d*|\.\d+)(e[+-]?\d+)?\s*$/i;
  const n = pattern.test(raw) ? Number(raw) : Number.NaN;
  const min = 'min' in o ? o.min : 0;
  const max = o.kind === 'int' && o.max !== undefined ? o.max : integer ? Number.MAX_SAFE_INTEGER : Number.MAX_VALUE;
  if (!Number.isFinite(n) || (integer && !Number.isSafeInteger(n)) || n < min || n > max) {
    throw new ConfigError(`${flag}: expected ${integer ? 'an integer' : 'a number'} from ${min} to ${max}, got '${raw}'`);
  }
  return n;
}

/** A comma-separated list of at most 8 (the C benchmarks' limit) integers. */
function parseList(flag: string, raw: string, o: Option): number[] {
  const list = raw.split(',').map((part) => parseNumber(flag, part, o));
  if (list.length > 8) throw new ConfigError(`${flag}: at most 8 values, got ${list.length}`);
  return list;
}

/** Parses `braid bench <name> [options]`; `help: true` for -h / --help. Throws ConfigError naming the option. */
export function parseBenchArgs<N extends BenchName>(name: N, args: readonly string[]): { help: true } | { help: false; values: BenchValues<N> } {
  const table: Readonly<Record<string, Option>> = BENCHES[name].options;
  const options: Record<string, { type: 'string' | 'boolean'; short?: string }> = { help: { type: 'boolean', short: 'h' } };
  for (const [flag, o] of Object.entries(table)) options[flag] = { type: o.kind === 'flag' ? 'boolean' : 'string' };
  let raw: Record<string, string | boolean | (string | boolean)[] | undefined>;
  try {
    ({ values: raw } = parseArgs({ args: [...args], options, strict: true, allowPositionals: false }));
  } catch (err) {
    // parseArgs's messages run on ("To specify a positional argument ..."): the first sentence is the point.
    const first = (err instanceof Error ? err.message : String(err)).split(/\.\s/)[0];
    throw new ConfigError(`${name}: ${first} (braid bench ${name} --help lists the options)`);
  }
  if (raw.help === true) return { help: true };
  const values: Record<string, unknown> = {};
  for (const [flag, o] of Object.entries(table)) {
    const v = raw[flag];
    const at = `${name} --${flag}`;
    if (o.kind === 'flag') values[flag] = v === true;
    else if (typeof v !== 'string') values[flag] = o.default === undefined ? undefined : Array.isArray(o.default) ? [...o.default] : o.default;
    else if (o.kind === 'text') values[flag] = v;
    else if (o.kind === 'ints') values[flag] = parseList(at, v, o);
    else values[flag] = parseNumber(at, v, o);
  }
  return { help: false, values: values as BenchValues<N> };
}

/** Back to argv for a C program (`--name value`, a flag alone), which takes neither `--x=1` nor a bad value. */
export function toArgv(values: Readonly<Record<string, unknown>>): string[] {
  const argv: string[] = [];
  for (const [flag, v] of Object.entries(values)) {
    if (v === undefined || v === false) continue;
    argv.push(`--${flag}`);
    if (v !== true) argv.push(Array.isArray(v) ? v.join(',') : String(v));
  }
  return argv;
}
