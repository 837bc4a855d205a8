/**
 * The loss curve as a standalone SVG: training loss per step, held-out loss
 * per evaluation, curriculum phase boundaries as dashed verticals, axes with
 * ticks and labels. Written atomically to the run dir at every checkpoint and
 * at the end, so it can be opened in a browser while a run goes on.
 *
 * Hand-written rather than drawn with a plotting library: it is one line
 * chart of a few hundred lines of output, and a dependency (and its browser
 * or canvas requirements) would outweigh it.
 */
import { writeFileAtomic } from './atomic-file.ts';
import type { MetricsRecord } from './metrics-log.ts';

export interface LossPlotOptions {
  title?: string;
  /** Right end of the x axis (the run's total steps); default: the last step logged. */
  totalSteps?: number;
  /** Most vertices of the train polyline; longer runs are averaged in buckets. */
  maxPoints?: number;
  width?: number;
  height?: number;
}

interface Point {
  x: number;
  y: number;
}

const MARGIN = { left: 70, right: 24, top: 40, bottom: 56 };

function esc(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

/** Short decimal for a tick label (no float noise like 0.30000000000000004). */
function fmt(v: number): string {
  if (v === 0) return '0';
  const a = Math.abs(v);
  if (a >= 1e6 || a < 1e-3) return v.toExponential(1);
  return String(Number(v.toPrecision(4)));
}

/** Tick values at a 1-2-5 spacing covering [lo, hi], about `count` of them. */
export function niceTicks(lo: number, hi: number, count = 6, integer = false): number[] {
  if (!(hi > lo)) return [lo];
  const raw = (hi - lo) / Math.max(1, count);
  const mag = 10 ** Math.floor(Math.log10(raw));
  let step = [1, 2, 5, 10].map((m) => m * mag).find((s) => s >= raw) ?? 10 * mag;
  if (integer) step = Math.max(1, Math.round(step));
  const ticks: number[] = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) ticks.push(Number(v.toPrecision(12)));
  return ticks;
}

/** Bucket means, so a 100k-step run still draws as ≤ maxPoints vertices. */
export function downsample(points: readonly Point[], maxPoints: number): Point[] {
  if (points.length <= maxPoints) return [...points];
  const out: Point[] = [];
  const per = points.length / maxPoints;
  for (let b = 0; b < maxPoints; b++) {
    const from = Math.floor(b * per);
    const to = Math.floor((b + 1) * per);
    let sx = 0;
    let sy = 0;
    for (let i = from; i < to; i++) {
      sx += points[i]!.x;
      sy += points[i]!.y;
    }
    out.push({ x: sx / (to - from), y: sy / (to - from) });
  }
  return out;
}

/** Steps at which the phase changed (steps completed before the new phase's first update), with its name. */
export function phaseBoundaries(records: readonly MetricsRecord[]): { step: number; phase: string }[] {
  const out: { step: number; phase: string }[] = [];
  let prev: string | undefined;
  for (const r of records) {
    if (r.type !== 'train') continue;
    if (r.phase !== prev) out.push({ step: r.step - 1, phase: r.phase });
    prev = r.phase;
  }
  return out;
}

export function renderLossPlot(records: readonly MetricsRecord[], opts: LossPlotOptions = {}): string {
  const W = opts.width ?? 800;
  const H = opts.height ?? 450;
  const pw = W - MARGIN.left - MARGIN.right;
  const ph = H - MARGIN.top - MARGIN.bottom;
  const train = downsample(
    records.flatMap((r) => (r.type === 'train' ? [{ x: r.step, y: r.loss }] : [])),
    opts.maxPoints ?? 1000,
  );
  const evals = records.flatMap((r) => (r.type === 'eval' ? [{ x: r.step, y: r.loss }] : []));
  const phases = phaseBoundaries(records);
  const all = [...train, ...evals];

  const lastStep = all.reduce((m, p) => Math.max(m, p.x), 0);
  const x1 = Math.max(opts.totalSteps ?? lastStep, lastStep, 1);
  let y0 = all.reduce((m, p) => Math.min(m, p.y), Infinity);
  let y1 = all.reduce((m, p) => Math.max(m, p.y), -Infinity);
  if (all.length === 0) [y0, y1] = [0, 1];
  if (y1 - y0 < 1e-6) [y0, y1] = [y0 - 0.5, y1 + 0.5];
  const pad = (y1 - y0) * 0.05;
  y0 = Math.max(0, y0 - pad);
  y1 += pad;

  const sx = (x: number): number => MARGIN.left + (x / x1) * pw;
  const sy = (y: number): number => MARGIN.top + ph - ((y - y0) / (y1 - y0)) * ph;
  const xy = (p: Point): string => `${sx(p.x).toFixed(1)},${sy(p.y).toFixed(1)}`;

  const out: string[] = [];
  out.push(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="12">`,
    `<rect x="0" y="0" width="${W}" height="${H}" fill="white"/>`,
    `<text x="${W / 2}" y="22" text-anchor="middle" font-size="15">${esc(opts.title ?? 'training loss')}</text>`,
  );

  // Grid, ticks and tick labels.
  out.push('<g class="axes" stroke="#ccc" stroke-width="1">');
  for (const t of niceTicks(0, x1, 8, true)) {
    out.push(`<line x1="${sx(t).toFixed(1)}" y1="${MARGIN.top}" x2="${sx(t).toFixed(1)}" y2="${MARGIN.top + ph + 5}"/>`);
  }
  for (const t of niceTicks(y0, y1, 6)) {
    out.push(`<line x1="${MARGIN.left - 5}" y1="${sy(t).toFixed(1)}" x2="${MARGIN.left + pw}" y2="${sy(t).toFixed(1)}"/>`);
  }
  out.push('</g>', '<g class="tick-labels" fill="#333">');
  for (const t of niceTicks(0, x1, 8, true)) {
    out.push(`<text x="${sx(t).toFixed(1)}" y="${MARGIN.top + ph + 19}" text-anchor="middle">${fmt(t)}</text>`);
  }
  for (const t of niceTicks(y0, y1, 6)) {
    out.push(`<text x="${MARGIN.left - 8}" y="${(sy(t) + 4).toFixed(1)}" text-anchor="end">${fmt(t)}</text>`);
  }
  out.push('</g>');
  out.push(
    `<rect x="${MARGIN.left}" y="${MARGIN.top}" width="${pw}" height="${ph}" fill="none" stroke="#333"/>`,
    `<text x="${MARGIN.left + pw / 2}" y="${H - 14}" text-anchor="middle">step</text>`,
    `<text x="18" y="${MARGIN.top + ph / 2}" text-anchor="middle" transform="rotate(-90 18 ${MARGIN.top + ph / 2})">loss (nats/token)</text>`,
  );

  // Phase boundaries (the first phase starts at 0 and needs no line, only its label).
  out.push('<g class="phases" stroke="#999" stroke-dasharray="4 3">');
  for (const b of phases) {
    if (b.step > 0) out.push(`<line x1="${sx(b.step).toFixed(1)}" y1="${MARGIN.top}" x2="${sx(b.step).toFixed(1)}" y2="${MARGIN.top + ph}"/>`);
  }
  out.push('</g>', '<g class="phase-labels" fill="#666" font-size="11">');
  for (const b of phases) out.push(`<text x="${(sx(b.step) + 4).toFixed(1)}" y="${MARGIN.top + 13}">${esc(b.phase)}</text>`);
  out.push('</g>');

  if (train.length > 0) {
    out.push(`<polyline class="train" fill="none" stroke="#1f77b4" stroke-width="1.5" points="${train.map(xy).join(' ')}"/>`);
  }
  if (evals.length > 0) {
    out.push(`<polyline class="eval" fill="none" stroke="#d62728" stroke-width="1.5" points="${evals.map(xy).join(' ')}"/>`);
    out.push('<g class="eval-points" fill="#d62728">');
    for (const p of evals) out.push(`<circle cx="${sx(p.x).toFixed(1)}" cy="${sy(p.y).toFixed(1)}" r="3"/>`);
    out.push('</g>');
  }
  if (all.length === 0) {
    out.push(`<text x="${MARGIN.left + pw / 2}" y="${MARGIN.top + ph / 2}" text-anchor="middle" fill="#999">no steps yet</text>`);
  }

  // Legend.
  const lx = MARGIN.left + pw - 150;
  out.push(
    '<g class="legend">',
    `<line x1="${lx}" y1="${MARGIN.top + 28}" x2="${lx + 24}" y2="${MARGIN.top + 28}" stroke="#1f77b4" stroke-width="2"/>`,
    `<text x="${lx + 30}" y="${MARGIN.top + 32}">train</text>`,
    `<line x1="${lx}" y1="${MARGIN.top + 46}" x2="${lx + 24}" y2="${MARGIN.top + 46}" stroke="#d62728" stroke-width="2"/>`,
    `<text x="${lx + 30}" y="${MARGIN.top + 50}">held-out</text>`,
    '</g>',
    '</svg>',
    '',
  );
  return out.join('\n');
}

export async function writeLossPlot(file: string, records: readonly MetricsRecord[], opts: LossPlotOptions = {}): Promise<void> {
  await writeFileAtomic(file, renderLossPlot(records, opts));
}
