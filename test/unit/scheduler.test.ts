import { describe, expect, it } from 'vitest';
import { AbortedError, QueueFullError } from '../../engine/errors.ts';
import type { NativeContext } from '../../engine/model/native-context.ts';
import { Scheduler, Slot } from '../../engine/scheduler.ts';

/** The scheduler only asks a context whether it is usable and disposes it. */
function fakeSlot(): Slot {
  const ctx = { usable: true, dispose: async () => {} };
  return new Slot(ctx as unknown as NativeContext);
}

const never = new AbortController().signal;

describe('Scheduler', () => {
  it('hands slots out immediately while free, then queues FIFO', async () => {
    const s = new Scheduler([fakeSlot()], 8);
    const first = await s.acquire([1], never);
    expect(s.active).toBe(1);
    const order: string[] = [];
    const waits = ['a', 'b', 'c'].map((name) =>
      s.acquire([1], never).then((lease) => {
        order.push(name);
        return lease;
      }),
    );
    expect(s.queueDepth).toBe(3);
    first.release();
    first.release(); // idempotent: must not hand the slot out twice
    const a = await waits[0]!;
    expect(order).toEqual(['a']);
    a.release();
    (await waits[1]!).release();
    (await waits[2]!).release();
    expect(order).toEqual(['a', 'b', 'c']);
    expect(s.active).toBe(0);
    expect(s.queueDepth).toBe(0);
  });

  it('throws QueueFullError with a retry hint when the queue is at its cap', async () => {
    const s = new Scheduler([fakeSlot()], 1);
    const held = await s.acquire([1], never);
    const queued = s.acquire([1], never);
    const err = await s.acquire([1], never).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(QueueFullError);
    expect((err as QueueFullError).retryAfterSeconds).toBeGreaterThanOrEqual(1);
    held.release();
    (await queued).release();
  });

  it('a continuation of an admitted request queues past the cap instead of failing', async () => {
    const s = new Scheduler([fakeSlot()], 1);
    const held = await s.acquire([1], never);
    const queued = s.acquire([1], never);
    await expect(s.acquire([1], never)).rejects.toBeInstanceOf(QueueFullError);
    const continued = s.acquire([1], never, 1, true);
    expect(s.queueDepth).toBe(2);
    held.release();
    (await queued).release();
    (await continued).release();
    expect(s.active).toBe(0);
  });

  it('a request aborted while queued leaves the queue and does not get a slot', async () => {
    const s = new Scheduler([fakeSlot()], 4);
    const held = await s.acquire([1], never);
    const ac = new AbortController();
    const doomed = s.acquire([1], ac.signal);
    const next = s.acquire([1], never);
    ac.abort();
    await expect(doomed).rejects.toBeInstanceOf(AbortedError);
    expect(s.queueDepth).toBe(1);
    held.release();
    const lease = await next;
    expect(s.active).toBe(1);
    lease.release();
    await expect(s.acquire([1], ac.signal)).rejects.toBeInstanceOf(AbortedError);
  });

  it('dispose rejects queued requests', async () => {
    const s = new Scheduler([fakeSlot()], 4);
    await s.acquire([1], never);
    const queued = s.acquire([1], never);
    await s.dispose();
    await expect(queued).rejects.toBeInstanceOf(AbortedError);
    await expect(s.acquire([1], never)).rejects.toBeInstanceOf(AbortedError);
  });
});

describe('Slot.reusableLength', () => {
  it('is 0 for a fresh slot (nothing to reuse)', () => {
    expect(fakeSlot().reusableLength([1, 2, 3])).toBe(0);
  });
});
