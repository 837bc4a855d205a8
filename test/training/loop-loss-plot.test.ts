/** The SVG loss plot: well-formed XML, one vertex per step (or per bucket), phase lines, escaped text. */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { downsample, niceTicks, phaseBoundaries, renderLossPlot, writeLossPlot } from '../../engine/training/loss-plot.ts';
import type { MetricsRecord } from '../../engine/training/metrics-log.ts';

const root = mkdtempSync(path.join(tmpdir(), 'braid-plot-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

/** Checks tags balance and nest (a minimal XML well-formedness check); returns the element names. */
function checkWellFormed(svg: string): string[] {
  const stack: string[] = [];
  const names: string[] = [];
  const text = svg.replace(/"[^"]*"/g, '""'); // attribute values cannot contain < or > here, but be safe
  for (const m of text.matchAll(/<(\/?)([a-zA-Z][\w-]*)([^<>]*?)(\/?)>/g)) {
    const [, close, name, , self] = m;
    if (close) expect(stack.pop()).toBe(name);
    else if (!self) stack.push(name!);
    if (!close) names.push(name!);
  }
  expect(stack).toEqual([]);
  // no stray '<' or '&' outside tags and entities
  expect(text.replace(/<[^<>]*>/g, '')).not.toMatch(/[<>]|&(?!amp;|lt;|gt;|quot;)/);
  return names;
}

function records(steps: number, evalEvery: number, phases: string[]): MetricsRecord[] {
  const out: MetricsRecord[] = [];
  for (let s = 1; s <= steps; s++) {
    const phase = phases[Math.floor(((s - 1) * phases.length) / steps)]!;
    out.push({ type: 'train', step: s, tokens: s * 100, loss: 6 * Math.exp(-s / 40) + 2, grad_norm: 1, lr: 1e-3, tok_s: 50, phase, elapsed: s });
    if (s % evalEvery === 0) out.push({ type: 'eval', step: s, tokens: s * 100, loss: 6 * Math.exp(-s / 40) + 2.2, bpb: 1, eval_tokens: 10, eval_bytes: 40, elapsed: s });
  }
  return out;
}

const pointsOf = (svg: string, cls: string): string[] =>
  new RegExp(`<polyline class="${cls}"[^>]* points="([^"]*)"`).exec(svg)?.[1]?.split(' ') ?? [];

describe('loss plot', () => {
  it('is well-formed SVG with a vertex per step and per eval, and a line per phase change', () => {
    const recs = records(120, 20, ['language', 'logic', 'transfer']);
    const svg = renderLossPlot(recs, { title: 'run <a> & "b"', totalSteps: 200 });
    const names = checkWellFormed(svg);
    expect(names[0]).toBe('svg');
    expect(pointsOf(svg, 'train')).toHaveLength(120);
    expect(pointsOf(svg, 'eval')).toHaveLength(6);
    expect(svg.match(/<circle /g)).toHaveLength(6);
    expect(svg).toContain('run &lt;a&gt; &amp; &quot;b&quot;');
    const phaseGroup = /<g class="phases"[^>]*>([\s\S]*?)<\/g>/.exec(svg)![1]!;
    expect(phaseGroup.match(/<line /g)).toHaveLength(2);
    expect(svg).toContain('>language</text>');
    expect(svg).toContain('>transfer</text>');
    expect(svg).toContain('>step</text>');
    expect(svg).toContain('loss (nats/token)');
    // every vertex lies inside the plot area
    for (const p of pointsOf(svg, 'train')) {
      const [x, y] = p.split(',').map(Number) as [number, number];
      expect(x).toBeGreaterThanOrEqual(70);
      expect(x).toBeLessThanOrEqual(800 - 24);
      expect(y).toBeGreaterThanOrEqual(40);
      expect(y).toBeLessThanOrEqual(450 - 56);
    }
  });

  it('averages long runs into at most maxPoints vertices', () => {
    const svg = renderLossPlot(records(5000, 1000, ['a']), { maxPoints: 400 });
    checkWellFormed(svg);
    expect(pointsOf(svg, 'train')).toHaveLength(400);
    const ds = downsample([{ x: 0, y: 1 }, { x: 1, y: 3 }, { x: 2, y: 5 }, { x: 3, y: 7 }], 2);
    expect(ds).toEqual([{ x: 0.5, y: 2 }, { x: 2.5, y: 6 }]);
  });

  it('renders an empty run, and is written atomically to a file', async () => {
    checkWellFormed(renderLossPlot([]));
    const file = path.join(root, 'loss.svg');
    await writeLossPlot(file, records(10, 5, ['x']));
    checkWellFormed(readFileSync(file, 'utf8'));
  });

  it('ticks are round numbers covering the range; phases start where they change', () => {
    expect(niceTicks(0, 1000, 8, true)).toEqual([0, 200, 400, 600, 800, 1000]);
    expect(niceTicks(2.13, 3.9, 6)).toEqual([2.5, 3, 3.5]);
    expect(niceTicks(0.0123, 0.0456, 4)).toEqual([0.02, 0.03, 0.04]);
    expect(niceTicks(0, 3, 8, true)).toEqual([0, 1, 2, 3]);
    expect(phaseBoundaries(records(9, 100, ['a', 'b', 'c'])).map((b) => [b.step, b.phase])).toEqual([[0, 'a'], [3, 'b'], [6, 'c']]);
  });
});
