/**
 * Checks a checkpoint's tensors against what the config says the model has,
 * and reports every problem at once (unknown, missing, mis-shaped, not a
 * float dtype), so one run of `braid convert` tells the user everything that
 * is wrong with a folder instead of the first thing.
 */
import { FLOAT_DTYPES, type SafetensorInfo } from './safetensors.ts';

export interface ExpectedTensor {
  hf: string;
  shape: readonly number[];
}

export class CheckpointMismatchError extends Error {
  constructor(
    readonly unknown: string[],
    readonly missing: string[],
    readonly misShaped: string[],
    readonly wrongDtype: string[],
  ) {
    const parts: string[] = [];
    const list = (what: string, names: string[]) => names.length && parts.push(`${what} (${names.length}): ${names.join(', ')}`);
    list('unknown tensors', unknown);
    list('missing tensors', missing);
    list('tensors with the wrong shape', misShaped);
    list('tensors with a non-float dtype', wrongDtype);
    super(`the checkpoint does not match its config.json:\n  ${parts.join('\n  ')}`);
    this.name = 'CheckpointMismatchError';
  }
}

const fmt = (s: readonly number[]) => `[${s.join(', ')}]`;

/**
 * Returns the found tensor of every expected name, in the expected order.
 * `optional` names may be present or not (checked only for dtype); anything
 * else not expected is unknown.
 */
export function matchTensors(
  expected: readonly ExpectedTensor[],
  found: ReadonlyMap<string, SafetensorInfo>,
  optional: readonly string[] = [],
): SafetensorInfo[] {
  const unknown: string[] = [];
  const missing: string[] = [];
  const misShaped: string[] = [];
  const wrongDtype: string[] = [];
  const want = new Map(expected.map((e) => [e.hf, e]));
  for (const [name, t] of found) {
    if (!want.has(name) && !optional.includes(name)) unknown.push(name);
    else if (!FLOAT_DTYPES.includes(t.dtype)) wrongDtype.push(`${name} is ${t.dtype}`);
  }
  const out: SafetensorInfo[] = [];
  for (const e of expected) {
    const t = found.get(e.hf);
    if (!t) {
      missing.push(`${e.hf} ${fmt(e.shape)}`);
      continue;
    }
    if (t.shape.length !== e.shape.length || t.shape.some((d, i) => d !== e.shape[i])) {
      misShaped.push(`${e.hf} is ${fmt(t.shape)}, expected ${fmt(e.shape)}`);
    }
    out.push(t);
  }
  if (unknown.length || missing.length || misShaped.length || wrongDtype.length) {
    throw new CheckpointMismatchError(unknown, missing, misShaped, wrongDtype);
  }
  return out;
}
