/**
 * The C library's logits against a logits golden (chimera_torch.py logits), per kernel table:
 * per run (loop count, prompt) the max over positions of max|Δlogit| / max|logit|, split at the
 * run's first near-tie (what test/model/reference-all.test.ts asserts), for the README's numbers.
 *
 *   node --import tsx scripts/reference/c-vs-logits-golden.ts test/golden/chimera-all
 */
import path from 'node:path';
import { initLibrary, setIsa, systemInfo, type IsaName } from '../../engine/binding/library.ts';
import { NativeModel } from '../../engine/model/native-model.ts';
import { compareLogitsGolden, loadLogitsGolden } from '../../test/model/logits-golden.ts';

const dir = process.argv[2];
if (!dir) {
  console.error('usage: c-vs-logits-golden.ts GOLDEN_DIR');
  process.exit(2);
}
initLibrary(1);
const golden = loadLogitsGolden(dir);
const model = await NativeModel.load(path.join(dir, 'model.gguf'));
let maxBefore = 0;
let maxAfter = 0;
for (const isa of systemInfo().isa_available.filter((n): n is IsaName => n === 'ref' || n === 'avx2' || n === 'avx512')) {
  setIsa(isa);
  const rows = await compareLogitsGolden(model, golden);
  console.log(`isa ${isa}:`);
  for (const r of rows) {
    maxBefore = Math.max(maxBefore, r.before);
    maxAfter = Math.max(maxAfter, r.after);
    console.log(`  loops ${r.loops} prompt ${r.sequence} (len ${r.length}, first near-tie ${r.firstNearTie}): ` +
      `before ${r.before.toExponential(2)}  after ${r.after.toExponential(2)}` +
      (r.after > 1e-5 ? `\n    per position: ${r.perPosition.map((e) => e.toExponential(0)).join(' ')}` : ''));
  }
}
console.log(`all tables: max rel error before the first near-tie ${maxBefore.toExponential(2)}, from it on ${maxAfter.toExponential(2)}`);
await model.dispose();
