/**
 * NativeTrainer: one model being trained, as a typed object over the C
 * trainer (engine/binding/trainer.ts). The math (forward, backward, AdamW,
 * quantization) is in C; the policy (schedules, data, checkpoints) lives in
 * the other engine/training files and drives this object.
 */
import { trainerNative, type TrainerHandle } from '../binding/trainer.ts';

export interface TrainerParamInfo {
  index: number;
  /** The GGUF tensor name. */
  name: string;
  rows: number;
  cols: number;
  /** The tensor's type in the source file; the export writes the same type. */
  ggufType: number;
  /** Whether AdamW decays it (matrices other than the embedding). */
  decay: boolean;
}

export interface AdamWOptions {
  beta1: number;
  beta2: number;
  eps: number;
  weightDecay: number;
  /** Global gradient-norm clip; 0 = off. */
  clip: number;
}

export interface LossSum {
  /** Summed token cross-entropy in nats. */
  lossSum: number;
  /** Tokens that carried a target. */
  count: number;
}

export class NativeTrainer {
  readonly params: readonly TrainerParamInfo[];
  readonly vocabSize: number;
  #handle: TrainerHandle | null;
  #busy = false;

  private constructor(handle: TrainerHandle) {
    const n = trainerNative();
    this.#handle = handle;
    this.vocabSize = n.nVocab(handle);
    const params: TrainerParamInfo[] = [];
    for (let i = 0; i < n.nParams(handle); i++) params.push({ index: i, ...n.paramInfo(handle, i) });
    this.params = params;
  }

  /** Every GGUF tensor becomes an FP32 master weight (BT2 dequantized, F16 widened). */
  static open(ggufPath: string): NativeTrainer {
    return new NativeTrainer(trainerNative().create(ggufPath));
  }

  get step(): number {
    return trainerNative().step(this.#live());
  }

  setAdamW(o: AdamWOptions): void {
    trainerNative().setAdamW(this.#live(), o.beta1, o.beta2, o.eps, o.weightDecay, o.clip);
  }

  /** Parcae loop count of the following passes (1..loop max; looping models start at their default). */
  get loops(): number {
    return trainerNative().loops(this.#live());
  }

  set loops(n: number) {
    trainerNative().setLoops(this.#live(), n);
  }

  /** true (default): quantization-aware forward; false: plain FP32 (gradient checks). */
  setQuant(on: boolean): void {
    trainerNative().setQuant(this.#live(), on);
  }

  /** Accumulates the gradient of the summed cross-entropy over targets ≠ −1. */
  forwardBackward(tokens: Int32Array, targets: Int32Array, batch: number, seqLen: number): Promise<LossSum> {
    return this.#exclusive(() => trainerNative().forwardBackward(this.#live(), tokens, targets, batch, seqLen));
  }

  evaluate(tokens: Int32Array, targets: Int32Array, batch: number, seqLen: number): Promise<LossSum> {
    return this.#exclusive(() => trainerNative().evaluate(this.#live(), tokens, targets, batch, seqLen));
  }

  /** Scales the accumulated gradients, clips, one AdamW step at lr, zeroes the gradients. */
  async update(lr: number, gradScale: number): Promise<{ gradNorm: number }> {
    const gradNorm = await this.#exclusive(() => trainerNative().update(this.#live(), lr, gradScale));
    return { gradNorm };
  }

  /**
   * One MeZO step (forward-only zeroth-order SGD, Malladi et al. 2023): the loss at w ± eps·z,
   * z ~ N(0, I) from seed, then w ← w − lr(ĝz + λw). sparsity > 0 = sparse MeZO (only the
   * smaller-|w| fraction 1 − sparsity of each tensor moves). Returns the mean of the two losses.
   */
  mezoStep(tokens: Int32Array, targets: Int32Array, batch: number, seqLen: number, o: { lr: number; eps: number; sparsity?: number; seed: number }): Promise<LossSum> {
    return this.#exclusive(() =>
      trainerNative().mezoStep(this.#live(), tokens, targets, batch, seqLen, o.lr, o.eps, o.sparsity ?? 0, o.seed),
    );
  }

  zeroGrad(): void {
    trainerNative().zeroGrad(this.#live());
  }

  readParam(index: number): Float32Array {
    const p = this.#param(index);
    const out = new Float32Array(p.rows * p.cols);
    trainerNative().paramRead(this.#live(), index, out);
    return out;
  }

  writeParam(index: number, data: Float32Array): void {
    const p = this.#param(index);
    if (data.length !== p.rows * p.cols) throw new RangeError(`${p.name} holds ${p.rows * p.cols} floats, got ${data.length}`);
    trainerNative().paramWrite(this.#live(), index, data);
  }

  readGrad(index: number): Float32Array {
    const p = this.#param(index);
    const out = new Float32Array(p.rows * p.cols);
    trainerNative().gradRead(this.#live(), index, out);
    return out;
  }

  /** The tensor's bytes in its GGUF type (BT2 quantized exactly like the training forward). */
  exportTensor(index: number): Uint8Array {
    this.#param(index);
    return trainerNative().exportTensor(this.#live(), index);
  }

  /** Weights, AdamW moments and step; versioned and CRC-checked by C. */
  saveState(): Uint8Array {
    return trainerNative().stateSave(this.#live());
  }

  /** Throws (and changes nothing) on a blob from another model or a corrupt one. */
  loadState(blob: Uint8Array): Promise<void> {
    return this.#exclusive(() => trainerNative().stateLoad(this.#live(), blob));
  }

  dispose(): void {
    if (this.#handle === null) return;
    if (this.#busy) throw new Error('NativeTrainer.dispose while a call is running');
    trainerNative().free(this.#handle);
    this.#handle = null;
  }

  #live(): TrainerHandle {
    if (this.#handle === null) throw new Error('NativeTrainer used after dispose()');
    return this.#handle;
  }

  #param(index: number): TrainerParamInfo {
    const p = this.params[index];
    if (!p) throw new RangeError(`parameter index ${index} out of range [0, ${this.params.length})`);
    return p;
  }

  /** One native call at a time per trainer (the C object is not reentrant). */
  async #exclusive<T>(fn: () => Promise<T>): Promise<T> {
    if (this.#busy) throw new Error('NativeTrainer: another call is still running');
    this.#busy = true;
    try {
      return await fn();
    } finally {
      this.#busy = false;
    }
  }
}
