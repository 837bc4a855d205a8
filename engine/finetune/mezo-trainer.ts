/**
 * MeZO fine-tuning (method "mezo", a braid extension) through the same
 * training loop as supervised jobs, so checkpoints, resume, metrics and
 * events are shared.
 *
 * The loop calls forwardBackward (the whole batch: MeZO jobs run without
 * micro-batches) and then update(lr). A MeZO step needs its learning rate
 * up front, so forwardBackward takes the step with the rate of the job's
 * schedule for that step (the loop's own pure function of the step) and
 * update() only checks that the loop asked for that same rate. The loss
 * reported is MeZO's: the mean of the losses at w ± εz. There is no gradient,
 * so the grad norm recorded is 0. A step whose batch has no target gets no
 * forwardBackward and update(0): the trainer's step advances, the weights
 * stay (train-loop.ts).
 *
 * Under QAT the C trainer moves only the float parameters (the ternary ones
 * are piecewise constant in the loss): see c/src/train_mezo.c.
 */
import type { NativeTrainer } from '../training/native-trainer.ts';
import type { LossSum, Trainer } from '../training/train-loop.ts';

export interface MezoOptions {
  epsilon: number;
  sparsity: number;
  /** The job's seed: the perturbation of step s is drawn from (seed, s), so a resumed run repeats it. */
  seed: number;
  /** The learning rate of update `step` (0-based), the loop's schedule. */
  lrAt: (step: number) => number;
}

export class MezoTrainer implements Trainer {
  private pendingLr: number | null = null;

  constructor(
    private readonly inner: NativeTrainer,
    private readonly o: MezoOptions,
  ) {}

  get step(): number {
    return this.inner.step;
  }

  get params(): NativeTrainer['params'] {
    return this.inner.params;
  }

  setAdamW(o: Parameters<Trainer['setAdamW']>[0]): void {
    // MeZO reads only the weight decay of these settings (w ← w − lr(ĝz + λw)).
    this.inner.setAdamW(o);
  }

  async forwardBackward(tokens: Int32Array, targets: Int32Array, batch: number, seqLen: number): Promise<LossSum> {
    if (this.pendingLr !== null) throw new Error('MeZO: a second forwardBackward before update (MeZO jobs take the whole batch in one call)');
    const step = this.inner.step;
    const lr = this.o.lrAt(step);
    const out = await this.inner.mezoStep(tokens, targets, batch, seqLen, {
      lr,
      eps: this.o.epsilon,
      sparsity: this.o.sparsity,
      seed: this.o.seed * 1_000_003 + step,
    });
    this.pendingLr = lr;
    return out;
  }

  evaluate(tokens: Int32Array, targets: Int32Array, batch: number, seqLen: number): Promise<LossSum> {
    return this.inner.evaluate(tokens, targets, batch, seqLen);
  }

  update(lr: number, _gradScale: number): Promise<{ gradNorm: number }> {
    const taken = this.pendingLr;
    this.pendingLr = null;
    if (taken === null) {
      // A skipped step: AdamW at rate 0 with no gradient changes no weight and counts the step.
      if (lr === 0) return this.inner.update(0, 1).then(() => ({ gradNorm: 0 }));
      return Promise.reject(new Error('MeZO: update without a step'));
    }
    if (Math.abs(taken - lr) > 1e-9 * Math.max(lr, taken)) {
      return Promise.reject(new Error(`MeZO: the step used lr ${taken}, the loop asked for ${lr} (schedules differ)`));
    }
    return Promise.resolve({ gradNorm: 0 });
  }

  exportTensor(index: number): Uint8Array {
    return this.inner.exportTensor(index);
  }

  saveState(): Uint8Array {
    return this.inner.saveState();
  }

  loadState(blob: Uint8Array): Promise<void> {
    return this.inner.loadState(blob);
  }
}
