/** The evaluation report as text: numbers first, then a few examples of every question set. */
import type { ArithmeticResult, ArithmeticSummary, DefinitionResult, DefinitionSummary } from './qa.ts';
import type { EvalReport } from './run.ts';
import { definitionPart, RECOGNISED_F1 } from './scoring.ts';

const pct = (x: number) => `${(100 * x).toFixed(1)}%`;
const sec = (ms: number) => `${(ms / 1000).toFixed(1)} s`;

/** An answer on one line, as a JSON string (so newlines and blank answers are visible), long text cut. */
function oneLine(s: string, max = 110): string {
  const t = JSON.stringify(s);
  return t.length > max ? `${t.slice(0, max - 1)}…` : t;
}

function definitionLines(label: string, s: DefinitionSummary, rs: readonly DefinitionResult[], examples: number): string[] {
  const out = [
    `  ${label.padEnd(9)} n=${String(s.n).padStart(3)}  recognisable ${pct(s.recognised).padStart(6)}  mean F1 ${s.meanOverlap.toFixed(3)}  ` +
      `pos prefix ${pct(s.posExact).padStart(6)}  exact ${pct(s.exact).padStart(6)}`,
  ];
  // Recognised answers first, so a mostly-wrong model still shows what "right" looked like, if anything.
  const shown = [...rs.filter((r) => r.recognised), ...rs.filter((r) => !r.recognised)].slice(0, examples);
  for (const r of shown) {
    out.push(`    Q: ${r.question}`);
    out.push(`       expected: ${oneLine(definitionPart(r.reference))}`);
    out.push(`       got:      ${oneLine(r.got)}   [F1 ${r.overlap.toFixed(2)}${r.recognised ? ', recognisable' : ''}]`);
  }
  return out;
}

function arithmeticLines(label: string, s: ArithmeticSummary, rs: readonly ArithmeticResult[], examples: number): string[] {
  const ops = Object.entries(s.byOp)
    .map(([op, v]) => `${op} ${pct(v.correct)} of ${v.n}`)
    .join(', ');
  const out = [`  ${label.padEnd(9)} n=${String(s.n).padStart(3)}  correct ${pct(s.correct).padStart(6)}  exact ${pct(s.exact).padStart(6)}  (${ops})`];
  const shown = [...rs.filter((r) => r.correct), ...rs.filter((r) => !r.correct)].slice(0, examples);
  for (const r of shown) {
    out.push(`    Q: ${r.question}  expected: ${r.reference}  got: ${oneLine(r.answer, 60)}${r.correct ? '  ✓' : ''}`);
  }
  return out;
}

export function formatReport(r: EvalReport, examples = 3): string {
  const m = r.model;
  const t = r.text;
  // per-token perplexity over the same tokens: e^(nats/token) = 2^(bpb · bytes/token)
  const perplexity = (bpb: number): number => 2 ** ((bpb * t.bytes) / t.tokens);
  const best = Math.min(...t.baselines.map((b) => b.bpb));
  const lines = [
    `model       ${m.id}  (${m.path})`,
    `            ${m.provenance}; ${m.nLayer} layers × ${m.nEmbd}, ${m.nVocab} logits` +
      (m.trainerHeldOutBpb === null ? '' : `; trainer's held-out bpb ${m.trainerHeldOutBpb.toFixed(4)}`),
    '',
    `held-out text: ${t.files.length} Brown files never trained on, ${t.tokens} tokens, ${t.bytes} UTF-8 bytes`,
    `  model                 ${t.model.bpb.toFixed(4)} bpb  perplexity ${perplexity(t.model.bpb).toFixed(1)}  (${t.model.natsPerToken.toFixed(4)} nats/token; windows of ${r.settings.window}, state ${t.state})`,
  ];
  for (const b of t.baselines)
    lines.push(`  ${b.name.padEnd(21)} ${b.bpb.toFixed(4)} bpb  perplexity ${perplexity(b.bpb).toFixed(1)}  (${b.params}, tuned on ${t.baselineTrain.devFiles} dev files)`);
  lines.push(
    `  baselines counted on ${t.baselineTrain.files} Brown train files (${t.baselineTrain.tokens} tokens); model / best baseline = ${(t.model.bpb / best).toFixed(3)}`,
    '',
    `definitions: "What does <word> mean?", greedy, ≤ ${r.settings.definitionTokens} tokens; recognisable = content-word F1 ≥ ${RECOGNISED_F1}`,
    ...definitionLines('held-out', r.definitions.heldOut, r.definitions.heldOutResults, examples),
    ...definitionLines('trained', r.definitions.trained, r.definitions.trainedResults, examples),
    '',
    `arithmetic: "What is a op b?", greedy, ≤ ${r.settings.arithmeticTokens} tokens; correct = the number after the last "=" equals the result`,
    ...arithmeticLines('held-out', r.arithmetic.heldOut, r.arithmetic.heldOutResults, examples),
    ...arithmeticLines('trained', r.arithmetic.trained, r.arithmetic.trainedResults, examples),
    '',
    `time        ${sec(r.timings.totalMs)} (load ${sec(r.timings.loadMs)}, text ${sec(r.timings.textMs)}, baselines ${sec(r.timings.baselinesMs)}, ` +
      `definitions ${sec(r.timings.definitionsMs)}, arithmetic ${sec(r.timings.arithmeticMs)}); sample seed ${r.settings.seed}, ` +
      `limit ${r.settings.limit} per set`,
  );
  return lines.join('\n');
}
