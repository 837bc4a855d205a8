/**
 * The policy that lets a fine-tuning job yield to inference (engine/finetune/gate.ts),
 * on a simulated clock that advances one poll interval per look at the load:
 *  - idle: the call goes ahead at once;
 *  - busy: it waits until the engine has been idle for quietMs;
 *  - busy without end: one call goes ahead after maxWaitMs (counted as forced);
 *  - an aborted signal never waits;
 *  - GatedTrainer waits before every native call and reports evaluations.
 */
import { describe, expect, it } from 'vitest';
import { GatedTrainer, InferenceGate } from '../../engine/finetune/gate.ts';
import type { Trainer } from '../../engine/training/train-loop.ts';

const POLL = 5;

/** A load whose clock moves POLL ms per stats() call; busy while `busy(t)` holds. */
function scripted(busy: (t: number) => boolean) {
  let t = 0;
  let polls = 0;
  return {
    now: () => t,
    polls: () => polls,
    load: {
      stats: () => {
        polls++;
        const s = { activeGenerations: busy(t) ? 1 : 0, queueDepth: 0 };
        t += POLL;
        return s;
      },
    },
  };
}

describe('InferenceGate', () => {
  it('lets a call through at once when nothing runs', async () => {
    const s = scripted(() => false);
    const gate = new InferenceGate(s.load, { quietMs: 20, maxWaitMs: 1000, pollMs: 0 }, s.now);
    await gate.wait();
    expect(s.polls()).toBe(1);
    expect(gate.forced).toBe(0);
  });

  it('waits for the end of the inference load plus the quiet time', async () => {
    const s = scripted((t) => t < 50);
    const gate = new InferenceGate(s.load, { quietMs: 20, maxWaitMs: 1000, pollMs: 0 }, s.now);
    await gate.wait();
    // Busy at t = 0..45 (10 polls); the last busy look is at 45, so the first quiet enough look is at 65.
    expect(s.polls()).toBe(15);
    expect(s.now()).toBe(75);
    expect(gate.forced).toBe(0);
    expect(gate.waitedMs).toBeGreaterThanOrEqual(65);
  });

  it('goes ahead after maxWaitMs when inference never stops', async () => {
    const s = scripted(() => true);
    const gate = new InferenceGate(s.load, { quietMs: 20, maxWaitMs: 100, pollMs: 0 }, s.now);
    await gate.wait();
    expect(gate.forced).toBe(1);
    expect(s.now()).toBeGreaterThanOrEqual(100);
    expect(s.now()).toBeLessThan(120);
  });

  it('does not wait once aborted', async () => {
    const s = scripted(() => true);
    const gate = new InferenceGate(s.load, { quietMs: 20, maxWaitMs: 100, pollMs: 0 }, s.now);
    const stop = new AbortController();
    stop.abort();
    await gate.wait(stop.signal);
    expect(s.polls()).toBe(0);
  });
});

describe('GatedTrainer', () => {
  it('waits at the gate before forward/backward, evaluate and update, and reports evaluations', async () => {
    const calls: string[] = [];
    const inner: Trainer = {
      step: 0,
      params: [],
      setAdamW: () => undefined,
      forwardBackward: async () => (calls.push('fb'), { lossSum: 2, count: 1 }),
      evaluate: async () => (calls.push('eval'), { lossSum: 3, count: 2 }),
      update: async () => (calls.push('update'), { gradNorm: 1 }),
      exportTensor: () => new Uint8Array(0),
      saveState: () => new Uint8Array(0),
      loadState: () => undefined,
    };
    const gate = { wait: async () => void calls.push('gate') } as unknown as InferenceGate;
    const seen: number[] = [];
    const t = new GatedTrainer(inner, gate, undefined, { training: () => calls.push('training'), evaluated: (r) => seen.push(r.lossSum / r.count) });
    const x = new Int32Array(1);
    await t.forwardBackward(x, x, 1, 1);
    await t.update(1e-3, 1);
    await t.evaluate(x, x, 1, 1);
    expect(calls).toEqual(['training', 'gate', 'fb', 'gate', 'update', 'gate', 'eval']);
    expect(seen).toEqual([1.5]);
  });
});
