/**
 * How a fine-tuning job shares the CPU with inference (docs/api.md, "Sharing
 * the CPU"). The C thread pool is process-global and runs one parallel-for at
 * a time, so a training call and a decode step already interleave; what is
 * left to decide is when training may start its next native call.
 *
 * The policy: before every heavy trainer call (a forward/backward of one
 * micro-batch, an evaluation batch, an optimizer update, a MeZO step) the job waits until no
 * generation or embedding is running or queued on any model and none has
 * been for `quietMs`. A request that arrives while a training call runs
 * shares the cores with that one call only (each call is one sequence of
 * `sequence_length` tokens, a few to a few tens of milliseconds on the models
 * braid trains). So that a busy server cannot starve a job forever, after
 * `maxWaitMs` of continuous waiting one call goes ahead anyway.
 *
 * The wait polls the engine's counters every `pollMs`: the engine has no idle
 * event, and a few-millisecond timer costs nothing next to a training call.
 */
import type { LossSum, Trainer } from '../training/train-loop.ts';

/** What the gate reads of the engine (Engine.stats() has both). */
export interface InferenceLoad {
  stats(): { activeGenerations: number; queueDepth: number };
}

export interface GateOptions {
  quietMs: number;
  maxWaitMs: number;
  pollMs: number;
}

/** What training waits at: the InferenceGate itself, or its proxy in the training worker. */
export interface Gate {
  wait(signal?: AbortSignal): Promise<void>;
}

export const GATE_DEFAULTS: GateOptions = { quietMs: 200, maxWaitMs: 10_000, pollMs: 3 };

export class InferenceGate implements Gate {
  private readonly o: GateOptions;
  private lastBusy = -Infinity;
  private waited = 0;
  private waitingSince: number | null = null;
  /** Calls let through by the starvation guard. */
  forced = 0;

  constructor(
    private readonly load: InferenceLoad,
    options: Partial<GateOptions> = {},
    private readonly now: () => number = () => performance.now(),
  ) {
    this.o = { ...GATE_DEFAULTS, ...options };
  }

  /** Time training spent held back, over the gate's life, the wait in progress included. */
  get waitedMs(): number {
    return this.waited + (this.waitingSince === null ? 0 : this.now() - this.waitingSince);
  }

  /** Changes the policy while a job runs (the benchmark compares it with never yielding). */
  configure(options: Partial<GateOptions>): void {
    Object.assign(this.o, options);
  }

  busy(): boolean {
    const s = this.load.stats();
    const busy = s.activeGenerations > 0 || s.queueDepth > 0;
    if (busy) this.lastBusy = this.now();
    return busy;
  }

  /** Resolves when training may make its next call (or the signal fires: the caller then stops). */
  async wait(signal?: AbortSignal): Promise<void> {
    const start = this.now();
    this.waitingSince = start;
    while (signal?.aborted !== true) {
      const t = this.now();
      if (!this.busy() && t - this.lastBusy >= this.o.quietMs) break;
      if (t - start >= this.o.maxWaitMs) {
        this.forced++;
        break;
      }
      await new Promise((resolve) => setTimeout(resolve, this.o.pollMs));
    }
    this.waitingSince = null;
    this.waited += this.now() - start;
  }
}

/** Observers of the gated calls (the job reports held-out losses from them). */
export interface TrainerHooks {
  /** Before each forward/backward: an evaluation that was running is complete. */
  training?(): void;
  evaluated?(r: LossSum): void;
}

/**
 * A Trainer (the interface engine/training/train-loop.ts drives) whose native
 * calls each wait at the gate first: forward/backward, evaluation and the
 * AdamW update (a pass over every parameter and its moments, as long as a
 * small forward/backward). The loop saves a checkpoint right after an update,
 * so the synchronous state copy also starts at a quiet moment.
 */
export class GatedTrainer implements Trainer {
  constructor(
    private readonly inner: Trainer,
    private readonly gate: Gate,
    private readonly signal?: AbortSignal,
    private readonly hooks: TrainerHooks = {},
  ) {}

  get step(): number {
    return this.inner.step;
  }

  get params(): Trainer['params'] {
    return this.inner.params;
  }

  setAdamW(o: Parameters<Trainer['setAdamW']>[0]): void {
    this.inner.setAdamW(o);
  }

  async forwardBackward(tokens: Int32Array, targets: Int32Array, batch: number, seqLen: number): Promise<LossSum> {
    this.hooks.training?.();
    await this.gate.wait(this.signal);
    return this.inner.forwardBackward(tokens, targets, batch, seqLen);
  }

  async evaluate(tokens: Int32Array, targets: Int32Array, batch: number, seqLen: number): Promise<LossSum> {
    await this.gate.wait(this.signal);
    const r = await this.inner.evaluate(tokens, targets, batch, seqLen);
    this.hooks.evaluated?.(r);
    return r;
  }

  async update(lr: number, gradScale: number): Promise<{ gradNorm: number }> {
    await this.gate.wait(this.signal);
    return this.inner.update(lr, gradScale);
  }

  exportTensor(index: number): Uint8Array {
    return this.inner.exportTensor(index);
  }

  saveState(): Uint8Array {
    return this.inner.saveState();
  }

  loadState(blob: Uint8Array): void | Promise<void> {
    return this.inner.loadState(blob);
  }
}
