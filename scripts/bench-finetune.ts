/**
 * `npm run bench -- finetune [options]` — chat latency while a fine-tuning job
 * trains in the same server, against the idle latency of the same server in
 * the same run (the reference), and against the same job with the yield
 * policy switched off (engine/finetune/gate.ts: every training call goes
 * ahead at once), so the figure shows what the policy buys.
 *
 * A real server (startServer, the real engine and trainer) on an ephemeral
 * port with its own scratch data dir; the base model is the default
 * models/chimera-tiny.gguf (4 GD layers, D = 256: trainable). One client sends
 * short chat requests one after another (max_tokens 16, greedy) with a pause
 * between them (--think-ms, seeded jitter), the way an interactive user does;
 * each phase sends the same requests. The job is sized to outlast the
 * measurement and is cancelled afterwards.
 *
 * Printed: p50 / p95 / max per phase, the ratio of each p95 to the idle p95,
 * the training steps the job made during each phase and the time the gate
 * held it back.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import OpenAI, { toFile } from 'openai';
import { GATE_DEFAULTS } from '../engine/finetune/gate.ts';
import { defaultConfig } from '../server/config.ts';
import { startServer, type RunningServer } from '../server/serve.ts';
import type { BenchValues } from './bench-usage.ts';

const root = join(import.meta.dirname, '..');

const QUESTIONS = [
  'What color is the sky?',
  'Name a fruit that is yellow.',
  'How many days are in a week?',
  'What do bees make?',
  'Where does the sun rise?',
  'What is the capital of France?',
  'Say hello in a friendly way.',
  'What is two plus two?',
];

function quantile(xs: readonly number[], q: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.ceil(q * s.length) - 1)] ?? NaN;
}

/** A small chat data set the job trains on (its content does not matter to the latency). */
function trainingJsonl(): string {
  return QUESTIONS.map((q, i) =>
    JSON.stringify({ messages: [{ role: 'user', content: q }, { role: 'assistant', content: `Answer number ${i + 1}: ${q.replace('?', '.')}` }] }),
  ).join('\n');
}

interface Phase {
  name: string;
  latenciesMs: number[];
  steps: number;
  gateWaitMs: number;
  forced: number;
}

async function phase(name: string, server: RunningServer, client: OpenAI, model: string, jobId: string | null, o: { requests: number; thinkMs: number; maxTokens: number }): Promise<Phase> {
  const ft = server.fineTuning;
  const stepAt = (): number => (jobId === null ? 0 : (ft.jobs.get(jobId)?.step ?? 0));
  const step0 = stepAt();
  const wait0 = ft.gate.waitedMs;
  const forced0 = ft.gate.forced;
  let seed = 12345;
  const jitter = (): number => {
    seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
    return (seed >>> 8) % (o.thinkMs + 1);
  };
  const latenciesMs: number[] = [];
  for (let i = 0; i < o.requests; i++) {
    const t0 = performance.now();
    const r = await client.chat.completions.create({
      model,
      messages: [{ role: 'user', content: QUESTIONS[i % QUESTIONS.length]! }],
      max_tokens: o.maxTokens,
      temperature: 0,
    });
    latenciesMs.push(performance.now() - t0);
    if (r.choices.length !== 1) throw new Error('unexpected response');
    await new Promise((resolve) => setTimeout(resolve, o.thinkMs / 2 + jitter()));
  }
  if (jobId !== null && ft.jobs.get(jobId)?.status !== 'running') throw new Error(`the job stopped during the ${name} phase: make it longer (--epochs)`);
  return { name, latenciesMs, steps: stepAt() - step0, gateWaitMs: ft.gate.waitedMs - wait0, forced: ft.gate.forced - forced0 };
}

export async function benchFinetune(values: BenchValues<'finetune'>): Promise<void> {
  const o = { requests: values.requests, thinkMs: values['think-ms'], maxTokens: values['max-tokens'] };
  const modelPath = values.model ?? join(root, 'models/chimera-tiny.gguf');
  const dataDir = mkdtempSync(join(tmpdir(), 'braid-bench-finetune-'));
  const server = await startServer(defaultConfig({ host: '127.0.0.1', port: 0, models: [modelPath], threads: values.threads, dataDir }));
  try {
    const client = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: 'unused', maxRetries: 0, timeout: 120_000 });
    const model = server.engine.models()[0]!.info.id;
    const info = server.engine.systemInfo();
    console.log(`system: isa=${String(info.isa)} threads=${String(info.threads)} cpu="${String(info.cpu)}"; model ${model}; ${o.requests} requests per phase, max_tokens ${o.maxTokens}, think ${o.thinkMs / 2}–${o.thinkMs * 1.5} ms`);

    await phase('warm-up', server, client, model, null, { ...o, requests: 5 });
    const idle = await phase('idle', server, client, model, null, o);

    const file = await client.files.create({ file: await toFile(Buffer.from(trainingJsonl()), 'bench.jsonl'), purpose: 'fine-tune' });
    const job = await client.fineTuning.jobs.create({
      model,
      training_file: file.id,
      hyperparameters: { n_epochs: values.epochs, batch_size: 4 },
      braid: { sequence_length: 64 },
    } as OpenAI.FineTuning.JobCreateParams);
    const started = performance.now();
    while ((server.fineTuning.jobs.get(job.id)?.step ?? 0) < 2) {
      if (performance.now() - started > 120_000) throw new Error(`the job did not start: ${JSON.stringify(server.fineTuning.jobs.get(job.id))}`);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    const t0 = performance.now();
    const s0 = server.fineTuning.jobs.get(job.id)!.step;
    await new Promise((resolve) => setTimeout(resolve, 3000));
    const soloStepsPerS = ((server.fineTuning.jobs.get(job.id)!.step - s0) * 1000) / (performance.now() - t0);

    const gated = await phase('during job (policy on)', server, client, model, job.id, o);
    server.fineTuning.gate.configure({ quietMs: 0, maxWaitMs: 0 });
    const ungated = await phase('during job (policy off)', server, client, model, job.id, o);
    server.fineTuning.gate.configure(GATE_DEFAULTS);
    await client.fineTuning.jobs.cancel(job.id);

    const ref = quantile(idle.latenciesMs, 0.95);
    console.log(`job alone: ${soloStepsPerS.toFixed(2)} steps/s (batch 4 × 64 tokens, micro-batch 1)`);
    console.log('phase                      p50 ms   p95 ms   max ms   p95/idle p95   job steps   gate held ms   forced');
    for (const p of [idle, gated, ungated]) {
      const p95 = quantile(p.latenciesMs, 0.95);
      console.log(
        `${p.name.padEnd(25)}${quantile(p.latenciesMs, 0.5).toFixed(1).padStart(8)}${p95.toFixed(1).padStart(9)}${Math.max(...p.latenciesMs).toFixed(1).padStart(9)}` +
          `${(p95 / ref).toFixed(2).padStart(15)}${String(p.steps).padStart(12)}${p.gateWaitMs.toFixed(0).padStart(15)}${String(p.forced).padStart(9)}`,
      );
    }
    console.log(JSON.stringify({ bench: 'finetune', threads: values.threads, soloStepsPerS, phases: [idle, gated, ungated].map((p) => ({ ...p, p50: quantile(p.latenciesMs, 0.5), p95: quantile(p.latenciesMs, 0.95), latenciesMs: undefined })) }));
  } finally {
    await server.close();
    rmSync(dataDir, { recursive: true, force: true });
  }
}
