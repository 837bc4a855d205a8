/**
 * One sequence on a NativeModel: recurrent state plus scratch in C. At most one
 * native call runs per context at a time (C requires it); a second concurrent
 * call is a programming error and throws. An AbortSignal becomes
 * braid_context_abort, polled by C between layers.
 */
import { AbortedError, InvalidRequestError, NativeError } from '../errors.ts';
import { native, Status, type ContextHandle } from '../binding/native.ts';
import type { NativeModel } from './native-model.ts';

/**
 * Parcae adaptive exit for one eval (braid_context_set_loop_exit): each token stops looping once
 * mean|h_k − h_{k−1}| < threshold after at least minLoops iterations; the eval's loop count is
 * the cap. Seed `looping.adaptive_exit_threshold` is 0.01.
 */
export interface LoopExit {
  threshold: number;
  minLoops: number;
}

const leaks = new FinalizationRegistry<string>((path) => {
  console.warn(`braid: a NativeContext of ${path} was garbage-collected without dispose(); its memory leaked`);
});

export class NativeContext {
  readonly nVocab: number;
  readonly nEmbd: number;
  private handle: ContextHandle | null;
  private busy = false;
  /** After a failed or aborted eval the C state is undefined until reset/loadState. */
  private poisoned = false;
  private disposing: Promise<void> | null = null;
  private idle: (() => void) | null = null;
  private lastLoops = 0;
  private lastLoopSum = 0;

  /** Use NativeModel.createContext. */
  constructor(
    readonly model: NativeModel,
    handle: ContextHandle,
    readonly maxBatch: number,
    private readonly onDispose: () => void,
  ) {
    this.handle = handle;
    this.nVocab = model.nVocab;
    this.nEmbd = model.nEmbd;
    leaks.register(this, model.path, this);
  }

  /** Tokens consumed since the last reset. */
  get nPast(): number {
    return native().contextNPast(this.live());
  }

  /** False after an eval failed or was aborted (a MoA context stays usable after an abort), until reset() or loadState(). */
  get usable(): boolean {
    return !this.poisoned && this.handle !== null;
  }

  /**
   * Evaluates tokens that continue the sequence, in pieces of at most maxBatch.
   * Returns [n][n_vocab] logits when allLogits, else the last token's [n_vocab].
   * Throws AbortedError if the signal fires (the state must then be reset).
   * `loops`: Parcae loop count for every token of this call (looping models; 1..loopMax); absent
   * keeps the context's current count (chimera.loop.default after creation or reset).
   * `exit`: adaptive exit for this call (looping models; loops is then the cap); absent = off.
   * After the call, lastEval says how many iterations its tokens actually ran.
   */
  eval(
    tokens: readonly number[],
    opts: { allLogits?: boolean; signal?: AbortSignal; loops?: number; exit?: LoopExit } = {},
  ): Promise<Float32Array> {
    const all = opts.allLogits ?? false;
    const V = this.nVocab;
    const loops = opts.loops;
    if (loops !== undefined && (!Number.isInteger(loops) || loops < 1 || loops > Math.max(1, this.model.loopMax))) {
      throw new InvalidRequestError(`loop count ${loops} is outside 1..${Math.max(1, this.model.loopMax)}`);
    }
    const exit = opts.exit;
    const looping = this.model.loopMax > 0;
    if (exit !== undefined) {
      if (!looping) throw new InvalidRequestError('adaptive exit needs a looping model');
      const { threshold: th, minLoops: min } = exit;
      if (!Number.isFinite(th) || th < 0) throw new InvalidRequestError(`exit threshold ${th} is not a finite number >= 0`);
      if (!Number.isInteger(min) || min < 1 || min > this.model.loopMax) {
        throw new InvalidRequestError(`exit minLoops ${min} is outside 1..${this.model.loopMax}`);
      }
    }
    this.lastLoops = 0;
    this.lastLoopSum = 0;
    // Without allLogits every piece writes its last token's logits to the same
    // buffer, so the final piece's survive.
    return this.evalPieces(tokens, opts.signal, all ? tokens.length * V : V, async (ctx, piece, out, at) => {
      if (loops !== undefined && at === 0) native().contextSetLoops(ctx, loops);
      if (looping && at === 0) native().contextSetLoopExit(ctx, exit?.threshold ?? 0, exit?.minLoops ?? 1);
      await native().contextEval(ctx, piece, all, all ? out.subarray(at * V, (at + piece.length) * V) : out);
      this.lastLoops = native().contextLastLoops(ctx);
      this.lastLoopSum += native().contextLastLoopSum(ctx);
    });
  }

  /**
   * Loop iterations of the last eval: `last` for its last token, `sum` over all its tokens (with
   * adaptive exit, below loops × tokens). 1 per token on a model without looping.
   */
  get lastEval(): { last: number; sum: number } {
    return { last: this.lastLoops, sum: this.lastLoopSum };
  }

  /** The loop count the next eval uses when it passes none. */
  get loops(): number {
    return native().contextLoops(this.live());
  }

  /** Final-norm hidden states [n][n_embd] (embeddings). Same rules as eval. */
  evalHidden(tokens: readonly number[], signal?: AbortSignal): Promise<Float32Array> {
    const D = this.nEmbd;
    const looping = this.model.loopMax > 0;
    return this.evalPieces(tokens, signal, tokens.length * D, (ctx, piece, out, at) => {
      if (looping && at === 0) native().contextSetLoopExit(ctx, 0, 1); // no adaptive exit, as in eval without `exit`
      return native().contextEvalHidden(ctx, piece, out.subarray(at * D, (at + piece.length) * D));
    });
  }

  /** Forgets the sequence. */
  reset(): Promise<void> {
    return this.exclusive(async (ctx) => {
      await native().contextReset(ctx);
      this.poisoned = false;
    });
  }

  /** The sequence state as a checksummed blob (docs/format.md). */
  saveState(): Promise<Uint8Array> {
    return this.exclusive(async (ctx) => {
      if (this.poisoned) throw new Error('context state is undefined after a failed eval; reset it first');
      const buf = new Uint8Array(native().contextStateSize(ctx));
      await native().contextStateSave(ctx, buf);
      return buf;
    });
  }

  /** Restores a blob from saveState (of a context of the same model). */
  loadState(blob: Uint8Array): Promise<void> {
    return this.exclusive(async (ctx) => {
      await native().contextStateLoad(ctx, blob);
      this.poisoned = false;
    });
  }

  /** Makes this context continue exactly where `src` is. */
  copyFrom(src: NativeContext): Promise<void> {
    if (src.model !== this.model) throw new Error('braid_context_copy needs two contexts of the same model');
    return src.exclusive(() =>
      this.exclusive(async (ctx) => {
        if (src.poisoned) throw new Error('source context state is undefined after a failed eval');
        await native().contextCopy(ctx, src.live());
        this.poisoned = false;
      }),
    );
  }

  /**
   * Drops the last n tokens, so the next eval continues after the first nPast − n (exactly as if
   * they had never been evaluated). Only when model.canRewind (MoA); 0 <= n <= nPast.
   */
  rewind(n: number): Promise<void> {
    return this.exclusive(async (ctx) => {
      if (!this.model.canRewind) throw new Error(`a ${this.model.architecture} context cannot rewind`);
      if (this.poisoned) throw new Error('context state is undefined after a failed eval; reset it first');
      native().contextRewind(ctx, n);
    });
  }

  /** Asks a running eval to stop (it then throws AbortedError). Safe at any time. */
  abort(): void {
    if (this.handle !== null && this.busy) native().contextAbort(this.handle);
  }

  /** Frees the context, after its in-flight call (if any) settles. */
  dispose(): Promise<void> {
    this.disposing ??= (async () => {
      if (this.busy) {
        native().contextAbort(this.live());
        await new Promise<void>((resolve) => (this.idle = resolve));
      }
      native().contextFree(this.live());
      this.handle = null;
      leaks.unregister(this);
      this.onDispose();
    })();
    return this.disposing;
  }

  private live(): ContextHandle {
    if (this.handle === null) throw new Error('context has been disposed');
    return this.handle;
  }

  /** Runs one native operation with the context to itself. */
  private async exclusive<T>(op: (ctx: ContextHandle) => Promise<T>): Promise<T> {
    if (this.disposing !== null) throw new Error('context is being disposed');
    const ctx = this.live();
    if (this.busy) throw new Error('context is busy: one native call at a time');
    this.busy = true;
    try {
      return await op(ctx);
    } finally {
      this.busy = false;
      this.idle?.();
      this.idle = null;
    }
  }

  private evalPieces(
    tokens: readonly number[],
    signal: AbortSignal | undefined,
    outLength: number,
    step: (ctx: ContextHandle, piece: Int32Array, out: Float32Array, at: number) => Promise<void>,
  ): Promise<Float32Array> {
    return this.exclusive(async (ctx) => {
      if (this.poisoned) throw new Error('context state is undefined after a failed eval; reset it first');
      if (tokens.length === 0) throw new InvalidRequestError('nothing to evaluate: no tokens');
      for (const t of tokens) {
        if (!Number.isInteger(t) || t < 0 || t >= this.nVocab) {
          throw new InvalidRequestError(`token id ${t} is outside the vocabulary (0..${this.nVocab - 1})`);
        }
      }
      const ids = Int32Array.from(tokens);
      const out = new Float32Array(outLength);
      const onAbort = () => native().contextAbort(ctx);
      signal?.addEventListener('abort', onAbort);
      try {
        for (let at = 0; at < ids.length; at += this.maxBatch) {
          if (signal?.aborted) throw new AbortedError();
          const piece = ids.subarray(at, Math.min(at + this.maxBatch, ids.length));
          try {
            await step(ctx, piece, out, at);
          } finally {
            // An abort that landed after C returned would leave the flag set and
            // cancel the next, unrelated eval.
            native().contextAbortClear(ctx);
          }
        }
        return out;
      } catch (e) {
        const aborted = e instanceof AbortedError || (e instanceof NativeError && e.status === Status.ABORTED);
        // Whatever was consumed before the failure, the sequence is now not what the caller
        // thinks: require a reset. Except a cancelled MoA eval: C drops the unfinished piece
        // whole, so the cache holds exactly the pieces that completed (nPast says how many).
        if (!(aborted && this.model.canRewind)) this.poisoned = true;
        if (aborted) throw e instanceof AbortedError ? e : new AbortedError();
        throw e;
      } finally {
        signal?.removeEventListener('abort', onAbort);
      }
    });
  }
}

