/**
 * The C library's logits at every position for a few token sequences, for
 * comparison with the PyTorch reference (chimera_torch.py compare).
 *
 *   node --import tsx scripts/reference/c-logits.ts MODEL.gguf OUT_PREFIX [ISA] [SEED]
 *
 * Writes OUT_PREFIX.tokens.json (a list of token lists: fixed edge cases,
 * pseudo-random sequences of 7, 33 and 128 tokens, 48 single tokens) and OUT_PREFIX.bin (their
 * [n, V] float32 logits, concatenated, each sequence from a fresh context, one
 * prefill eval with all_logits). ISA: ref | avx2 | avx512 (default: the
 * library's choice). One library thread.
 */
import { writeFileSync } from 'node:fs';
import { activeIsa, initLibrary, setIsa, type IsaName } from '../../engine/binding/library.ts';
import { NativeModel } from '../../engine/model/native-model.ts';

const [modelPath, prefix, isa, seedArg] = process.argv.slice(2);
if (!modelPath || !prefix) {
  console.error('usage: c-logits.ts MODEL.gguf OUT_PREFIX [ref|avx2|avx512] [SEED]');
  process.exit(2);
}
initLibrary(1);
if (isa) setIsa(isa as IsaName);
const model = await NativeModel.load(modelPath);
const V = model.nVocab;
let s = Number(seedArg ?? 12345) >>> 0;
const next = (): number => {
  s = (Math.imul(s, 1103515245) + 12345) >>> 0;
  return s % V;
};
const random = (n: number): number[] => Array.from({ length: n }, next);
// 48 one-token sequences too: position 0 has no recurrence behind it, so a systematic
// formula difference would show on every one of them, an int8 rounding flip on a few
const seqs = [[0], [V - 1, 1, 2], random(7), random(33), random(128), ...random(48).map((t) => [t])];
const ctx = model.createContext(256);
const parts: Float32Array[] = [];
for (const seq of seqs) {
  await ctx.reset();
  parts.push(await ctx.eval(seq, { allLogits: true }));
}
const total = parts.reduce((n, p) => n + p.length, 0);
const all = new Float32Array(total);
let at = 0;
for (const p of parts) {
  all.set(p, at);
  at += p.length;
}
writeFileSync(`${prefix}.tokens.json`, JSON.stringify(seqs) + '\n');
writeFileSync(`${prefix}.bin`, new Uint8Array(all.buffer));
console.log(`c-logits: ${seqs.length} sequences, ${total / V} positions, isa ${activeIsa()} -> ${prefix}.bin`);
await model.dispose();
