/**
 * Evaluates a Chimera GGUF on the built-in held-out sets (engine/eval/run.ts):
 * held-out Brown bits per byte against unigram / bigram / trigram baselines, WordNet
 * definitions and arithmetic for held-out and trained items.
 *
 *   node --import tsx scripts/eval-model.ts [--model models/chimera-tiny.gguf] [--json out.json]
 *        [--limit 40] [--text-tokens n] [--window 256] [--fresh-windows] [--seed 1] [--threads n]
 *        [--examples 3]
 *
 * Deterministic for fixed flags and thread count. Progress goes to stderr,
 * the report to stdout.
 */
import { writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { formatReport } from '../engine/eval/report.ts';
import { EVAL_DEFAULTS, evaluateModel } from '../engine/eval/run.ts';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');

const USAGE = `usage: node --import tsx scripts/eval-model.ts [options]
  --model <file.gguf>   model to evaluate (default: models/chimera-tiny.gguf)
  --json <file>         also write the full report, every answer included, as JSON
  --limit <n>           questions per set: held-out / trained × definitions / arithmetic (${EVAL_DEFAULTS.limit})
  --text-tokens <n>     held-out Brown tokens scored for bits per byte (default: all)
  --window <n>          tokens per eval window (${EVAL_DEFAULTS.window})
  --fresh-windows       reset the recurrent state at every window (default: carried through a file)
  --seed <n>            seed of the question samples (${EVAL_DEFAULTS.seed})
  --threads <n>         C threads (BRAID_THREADS, else the cores available)
  --examples <n>        examples printed per set (3)`;

/** An integer flag ≥ min, or the fallback when absent. */
function intArg(name: string, v: string | undefined, fallback: number, min = 1): number {
  if (v === undefined) return fallback;
  const n = Number(v);
  if (!Number.isInteger(n) || n < min) throw new RangeError(`--${name} must be an integer >= ${min}, got ${v}`);
  return n;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      model: { type: 'string' },
      json: { type: 'string' },
      limit: { type: 'string' },
      'text-tokens': { type: 'string' },
      window: { type: 'string' },
      'fresh-windows': { type: 'boolean' },
      seed: { type: 'string' },
      threads: { type: 'string' },
      examples: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
    strict: true,
  });
  if (values.help === true) {
    console.log(USAGE);
    return;
  }
  // Every flag is checked before the minutes of work start.
  const threads = values.threads === undefined ? undefined : intArg('threads', values.threads, 0);
  const examples = intArg('examples', values.examples, 3, 0);
  const report = await evaluateModel({
    modelPath: resolve(values.model ?? join(root, 'models/chimera-tiny.gguf')),
    limit: intArg('limit', values.limit, EVAL_DEFAULTS.limit),
    textTokens: intArg('text-tokens', values['text-tokens'], EVAL_DEFAULTS.textTokens),
    window: intArg('window', values.window, EVAL_DEFAULTS.window),
    carry: values['fresh-windows'] !== true,
    definitionTokens: EVAL_DEFAULTS.definitionTokens,
    arithmeticTokens: EVAL_DEFAULTS.arithmeticTokens,
    seed: intArg('seed', values.seed, EVAL_DEFAULTS.seed, 0),
    ...(threads === undefined ? {} : { threads }),
    log: (line) => process.stderr.write(`eval: ${line}\n`),
  });
  console.log(formatReport(report, examples));
  if (values.json !== undefined) {
    writeFileSync(values.json, `${JSON.stringify(report, null, 2)}\n`);
    console.log(`\nwrote ${values.json}`);
  }
}

main().catch((e: unknown) => {
  console.error(e instanceof Error ? `eval-model: ${e.message}` : e);
  process.exit(1);
});
