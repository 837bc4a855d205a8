/**
 * Per-tensor relative-norm error of the C trainer's gradients against a golden folder written by
 * chimera_torch.py golden (what test/training/trainer-golden*.test.ts assert), for the README's numbers.
 *
 *   node --import tsx scripts/reference/trainer-vs-golden.ts test/golden/chimera-all [golden|golden-noquant]
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { initLibrary } from '../../engine/binding/library.ts';
import { NativeTrainer } from '../../engine/training/native-trainer.ts';

const [dir, stem = 'golden'] = process.argv.slice(2);
if (!dir) {
  console.error('usage: trainer-vs-golden.ts GOLDEN_DIR [golden|golden-noquant]');
  process.exit(2);
}
initLibrary(2);
const golden = JSON.parse(readFileSync(path.join(dir, `${stem}.json`), 'utf8')) as {
  loss: number;
  loops?: number;
  quant: boolean;
  tensors: { name: string; offset: number; count: number }[];
};
const bin = readFileSync(path.join(dir, `${stem}.bin`));
const floats = new Float32Array(bin.buffer, bin.byteOffset, bin.byteLength / 4);
const batch = JSON.parse(readFileSync(path.join(dir, 'batch.json'), 'utf8')) as { batch: number; seqLen: number; tokens: number[][]; targets: number[][] };
const tr = NativeTrainer.open(path.join(dir, 'model.gguf'));
if (golden.loops !== undefined) tr.loops = golden.loops;
tr.setQuant(golden.quant);
const r = await tr.forwardBackward(Int32Array.from(batch.tokens.flat()), Int32Array.from(batch.targets.flat()), batch.batch, batch.seqLen);
console.log(`loss C ${r.lossSum} torch ${golden.loss} rel ${(Math.abs(r.lossSum - golden.loss) / golden.loss).toExponential(2)}`);
let worst = 0;
for (const e of golden.tensors) {
  const p = tr.params.find((q) => q.name === e.name)!;
  const a = tr.readGrad(p.index);
  const b = floats.subarray(e.offset, e.offset + e.count);
  let num = 0;
  let den = 0;
  for (let i = 0; i < a.length; i++) {
    num += (a[i]! - b[i]!) ** 2;
    den += b[i]! ** 2;
  }
  const rel = den > 0 ? Math.sqrt(num / den) : Math.sqrt(num);
  worst = Math.max(worst, rel);
  console.log(`  ${e.name.padEnd(32)} ${rel.toExponential(2)}  (‖torch‖ ${Math.sqrt(den).toExponential(2)})`);
}
console.log(`worst ${worst.toExponential(2)}`);
tr.dispose();
