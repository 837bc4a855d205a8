/**
 * Reading a logits golden of the PyTorch reference (scripts/reference/chimera_torch.py logits:
 * logits.json + logits.bin) and comparing the C library's prefill logits with it, run by run
 * (loop count, prompt). Used by reference-all.test.ts and scripts/reference/c-vs-logits-golden.ts.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import type { NativeModel } from '../../engine/model/native-model.ts';

export interface LogitsRun {
  loops: number;
  sequence: number;
  offset: number;
  count: number;
  /** First position where the reference saw an int8 rounding within nearTie of a .5 boundary. */
  firstNearTie: number;
}
export interface LogitsGolden {
  vocab: number;
  quant: boolean;
  latentInit: string;
  sequences: number[][];
  runs: LogitsRun[];
  logits: Float32Array;
}

export function loadLogitsGolden(dir: string): LogitsGolden {
  const index = JSON.parse(readFileSync(path.join(dir, 'logits.json'), 'utf8')) as Omit<LogitsGolden, 'logits'>;
  const bin = readFileSync(path.join(dir, 'logits.bin'));
  return { ...index, logits: new Float32Array(bin.buffer, bin.byteOffset, bin.byteLength / 4) };
}

export interface RunError {
  loops: number;
  sequence: number;
  length: number;
  firstNearTie: number;
  /** max over positions < firstNearTie of max_v |C − torch| / max |torch logit of the run| (0 if none) */
  before: number;
  /** the same over positions ≥ firstNearTie */
  after: number;
  /** the per-position errors (max_v |C − torch| / max |torch logit of the run|) */
  perPosition: number[];
}

/** C prefill logits (fresh context, one eval of the whole prompt, all positions) vs every run. */
export async function compareLogitsGolden(model: NativeModel, g: LogitsGolden): Promise<RunError[]> {
  const V = g.vocab;
  const ctx = model.createContext(256);
  const out: RunError[] = [];
  try {
    for (const run of g.runs) {
      const seq = g.sequences[run.sequence]!;
      await ctx.reset();
      const ours = await ctx.eval(seq, { allLogits: true, loops: run.loops });
      const ref = g.logits.subarray(run.offset, run.offset + run.count);
      if (ours.length !== ref.length) throw new Error(`run loops ${run.loops} prompt ${run.sequence}: ${ours.length} logits, golden ${ref.length}`);
      let scale = 0;
      for (const v of ref) scale = Math.max(scale, Math.abs(v));
      let before = 0;
      let after = 0;
      const perPosition: number[] = [];
      for (let t = 0; t < seq.length; t++) {
        let m = 0;
        for (let v = 0; v < V; v++) m = Math.max(m, Math.abs(ours[t * V + v]! - ref[t * V + v]!));
        perPosition.push(m / scale);
        if (t < run.firstNearTie) before = Math.max(before, m / scale);
        else after = Math.max(after, m / scale);
      }
      out.push({ loops: run.loops, sequence: run.sequence, length: seq.length, firstNearTie: run.firstNearTie, before, after, perPosition });
    }
  } finally {
    await ctx.dispose();
  }
  return out;
}
