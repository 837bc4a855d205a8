import { register } from 'tsx/esm/api'; register();
const { NativeModel } = await import('../engine/model/native-model.ts');
const { initLibrary } = await import('../engine/binding/library.ts');
initLibrary(2);
const m = await NativeModel.load(process.argv[2]);
const ctx = m.createContext(512);
const n = Number(process.argv[3] ?? 128);
const prompt = Array.from({ length: n }, (_, i) => (i * 7919 + 13) % m.nVocab);
for (let r = 0; r < 3; r++) { await ctx.reset(); const t = performance.now(); await ctx.eval(prompt); console.log('prefill', n, (performance.now() - t).toFixed(0), 'ms'); }
await ctx.dispose(); await m.dispose();
