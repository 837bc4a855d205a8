/**
 * Per-model scheduling: a fixed set of context slots and a capped FIFO queue
 * of requests waiting for one. A slot keeps its context between requests and
 * remembers which tokens its state has consumed, so a prompt that extends that
 * history (the next turn of a chat) only evaluates the new suffix.
 *
 * A MoA context (KV cache) can also rewind, so a prompt that shares only a prefix with the
 * history (an edited or regenerated turn) drops the rest and evaluates from the fork.
 *
 * Parcae looping models: a token's contribution to the state depends on the loop count it was
 * evaluated with (docs/architecture.md), so the history is (token, loops) pairs and a prefix is
 * reused only if both match. Non-looping models always use 1.
 */
import { AbortedError, QueueFullError } from './errors.ts';
import type { NativeContext } from './model/native-context.ts';

/** One context plus the knowledge of what its recurrent state contains. */
export class Slot {
  /** Tokens the state has consumed since its last reset; null when unknown (reset before use). */
  private history: number[] | null = [];
  /** Loop count each history token was evaluated with (parallel to history). */
  private historyLoops: number[] = [];
  /** Logits after the last token of history, when known (lets an identical prompt skip prefill). */
  private lastLogits: Float32Array | null = null;

  constructor(readonly ctx: NativeContext) {}

  /**
   * How many leading tokens of `prompt` the current state already covers (0 if unusable), when
   * the prompt is to be evaluated with `loops` loops per token. A context that can rewind (MoA's
   * KV cache) keeps the longest common prefix and drops the rest of its history; a recurrent one
   * only reuses a history that is a whole prefix of the prompt.
   */
  reusableLength(prompt: readonly number[], loops = 1): number {
    const h = this.history;
    if (h === null || h.length === 0 || !this.ctx.usable) return 0;
    if (this.ctx.model.canRewind) {
      const most = Math.min(h.length, prompt.length);
      let n = 0;
      while (n < most && h[n] === prompt[n] && this.historyLoops[n] === loops) n++;
      // The prompt's last logits are needed: known only when it is exactly the history.
      if (n === prompt.length && (n !== h.length || this.lastLogits === null)) n--;
      return n;
    }
    if (h.length > prompt.length) return 0;
    for (let i = 0; i < h.length; i++) if (h[i] !== prompt[i] || this.historyLoops[i] !== loops) return 0;
    if (h.length === prompt.length && this.lastLogits === null) return 0;
    return h.length;
  }

  /**
   * Brings the state to "after prompt" and returns the logits of its last token
   * ([n_vocab]), or of every prompt token ([n][n_vocab]) when allLogits, which
   * always evaluates from scratch. `reused` is how many tokens were skipped.
   */
  async prefill(
    prompt: readonly number[],
    opts: { allLogits: boolean; signal: AbortSignal; loops?: number },
  ): Promise<{ logits: Float32Array; reused: number }> {
    const loops = opts.loops ?? 1;
    const reused = opts.allLogits ? 0 : this.reusableLength(prompt, loops);
    if (reused === prompt.length && this.lastLogits !== null) return { logits: this.lastLogits, reused };
    if (reused === 0) await this.reset();
    else if (this.history !== null && reused < this.history.length) await this.rewindTo(reused);
    const logits = await this.run(prompt.slice(reused), opts.allLogits, opts.signal, loops);
    return { logits, reused };
  }

  /** Feeds tokens that continue the sequence (with `loops` loops each); returns the last token's logits. */
  append(tokens: readonly number[], signal: AbortSignal, loops = 1): Promise<Float32Array> {
    return this.run(tokens, false, signal, loops);
  }

  /** Final hidden states of `tokens` evaluated from a fresh state ([n][n_embd]). */
  async hidden(tokens: readonly number[], signal: AbortSignal): Promise<Float32Array> {
    await this.reset();
    try {
      const h = await this.ctx.evalHidden(tokens, signal);
      this.history = [...tokens];
      this.historyLoops = tokens.map(() => this.ctx.loops);
      return h;
    } catch (e) {
      this.history = null;
      throw e;
    }
  }

  /** Keeps the first n tokens of the history (rewindable contexts only). */
  private async rewindTo(n: number): Promise<void> {
    const h = this.history;
    if (h === null) throw new Error('slot state is unknown; prefill from scratch first');
    this.history = null; // unknown until the call succeeds
    this.lastLogits = null;
    await this.ctx.rewind(h.length - n);
    this.history = h.slice(0, n);
    this.historyLoops = this.historyLoops.slice(0, n);
  }

  private async reset(): Promise<void> {
    this.history = null;
    this.lastLogits = null;
    await this.ctx.reset();
    this.history = [];
    this.historyLoops = [];
  }

  private async run(tokens: readonly number[], allLogits: boolean, signal: AbortSignal, loops: number): Promise<Float32Array> {
    if (this.history === null) throw new Error('slot state is unknown; prefill from scratch first');
    const before = this.history;
    this.history = null; // unknown until the call succeeds
    this.lastLogits = null;
    const looping = this.ctx.model.loopMax > 0;
    if (!looping && loops !== 1) throw new Error(`a model without looping runs 1 loop, not ${loops}`);
    let logits: Float32Array;
    try {
      logits = await this.ctx.eval(tokens, looping ? { allLogits, signal, loops } : { allLogits, signal });
    } catch (e) {
      // A cancelled MoA eval keeps the pieces that completed: the history is what nPast covers.
      if (this.ctx.usable && this.ctx.model.canRewind) {
        const kept = tokens.slice(0, this.ctx.nPast - before.length);
        before.push(...kept);
        for (let i = 0; i < kept.length; i++) this.historyLoops.push(loops);
        this.history = before;
      }
      throw e;
    }
    before.push(...tokens);
    for (let i = 0; i < tokens.length; i++) this.historyLoops.push(loops);
    this.history = before;
    this.lastLogits = allLogits ? logits.slice(logits.length - this.ctx.nVocab) : logits;
    return logits;
  }
}

/** A slot handed to one request; release() gives it back (idempotent). */
export interface Lease {
  readonly slot: Slot;
  release(): void;
}

interface Waiter {
  signal: AbortSignal;
  resolve(lease: Lease): void;
  reject(e: Error): void;
  onAbort(): void;
}

/** Recent request durations kept for the Retry-After estimate. */
const DURATION_WINDOW = 16;

export class Scheduler {
  private readonly free: Slot[];
  private readonly waiting: Waiter[] = [];
  private activeCount = 0;
  private readonly durationsMs: number[] = [];
  private closed = false;

  constructor(
    private readonly slots: readonly Slot[],
    private readonly maxQueue: number,
  ) {
    if (slots.length < 1) throw new Error('a scheduler needs at least one slot');
    this.free = [...slots];
  }

  get queueDepth(): number {
    return this.waiting.length;
  }

  get active(): number {
    return this.activeCount;
  }

  /**
   * Waits for a slot, preferring one whose state already covers the start of
   * `prompt`. Throws QueueFullError when maxQueue requests already wait, and
   * AbortedError if the signal fires while queued (the request leaves the queue).
   * A continuation — a later part of a request already admitted (choice i > 0
   * of n, input i > 0 of an embeddings batch) — queues like any other but is
   * never refused: admission is decided once per request, so a full queue
   * cannot fail one halfway through, after work was done for it.
   */
  acquire(prompt: readonly number[], signal: AbortSignal, loops = 1, continuation = false): Promise<Lease> {
    if (this.closed) return Promise.reject(new AbortedError('the engine is shutting down'));
    if (signal.aborted) return Promise.reject(new AbortedError());
    if (this.free.length > 0) {
      let best = 0;
      let bestLen = -1;
      this.free.forEach((s, i) => {
        const n = s.reusableLength(prompt, loops);
        if (n > bestLen) [best, bestLen] = [i, n];
      });
      const [slot] = this.free.splice(best, 1);
      return Promise.resolve(this.lease(slot!));
    }
    if (!continuation && this.waiting.length >= this.maxQueue) {
      return Promise.reject(
        new QueueFullError(
          `the model is busy: ${this.waiting.length} requests are already queued; retry later`,
          this.retryAfterSeconds(),
        ),
      );
    }
    return new Promise<Lease>((resolve, reject) => {
      const w: Waiter = {
        signal,
        resolve,
        reject,
        onAbort: () => {
          const i = this.waiting.indexOf(w);
          if (i >= 0) this.waiting.splice(i, 1);
          reject(new AbortedError('request aborted while queued'));
        },
      };
      signal.addEventListener('abort', w.onAbort, { once: true });
      this.waiting.push(w);
    });
  }

  /** Rejects everything queued and frees the contexts (after in-flight calls settle). */
  async dispose(): Promise<void> {
    this.closed = true;
    for (const w of this.waiting.splice(0)) {
      w.signal.removeEventListener('abort', w.onAbort);
      w.reject(new AbortedError('the engine is shutting down'));
    }
    await Promise.all(this.slots.map((s) => s.ctx.dispose()));
  }

  private lease(slot: Slot): Lease {
    this.activeCount++;
    const started = performance.now();
    let released = false;
    return {
      slot,
      release: () => {
        if (released) return;
        released = true;
        this.activeCount--;
        this.durationsMs.push(performance.now() - started);
        if (this.durationsMs.length > DURATION_WINDOW) this.durationsMs.shift();
        this.handOver(slot);
      },
    };
  }

  private handOver(slot: Slot): void {
    const next = this.waiting.shift();
    if (next === undefined || this.closed) {
      this.free.push(slot);
      return;
    }
    next.signal.removeEventListener('abort', next.onAbort);
    next.resolve(this.lease(slot));
  }

  /** Rough wait for a new request: queued work spread over the slots, at least 1 s. */
  private retryAfterSeconds(): number {
    const n = this.durationsMs.length;
    const avgMs = n === 0 ? 1000 : this.durationsMs.reduce((a, b) => a + b, 0) / n;
    return Math.max(1, Math.ceil((avgMs * (this.waiting.length + 1)) / this.slots.length / 1000));
  }
}
