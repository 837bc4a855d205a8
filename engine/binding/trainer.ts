/**
 * The trainer's native surface (braid.h "trainer"), bound on the library
 * handle native.ts loaded. Heavy calls (create, forward/backward, evaluate,
 * update, state load) run through koffi's `.async`; their failures read
 * braid_trainer_last_error, the trainer's own copy of the message, because
 * braid_last_error is thread-local and the call ran on a worker thread.
 */
import koffi from 'koffi';
import { NativeError } from '../errors.ts';
import { callAsync, libraryHandle, native, Status, statusName } from './native.ts';

export type TrainerHandle = bigint & { readonly __brand: 'braid_trainer' };

export interface TrainerParamNative {
  name: string;
  rows: number;
  cols: number;
  ggufType: number;
  decay: boolean;
}

export interface TrainerNative {
  create(path: string): TrainerHandle;
  free(tr: TrainerHandle): void;
  nParams(tr: TrainerHandle): number;
  nVocab(tr: TrainerHandle): number;
  paramInfo(tr: TrainerHandle, i: number): TrainerParamNative;
  paramRead(tr: TrainerHandle, i: number, out: Float32Array): void;
  paramWrite(tr: TrainerHandle, i: number, data: Float32Array): void;
  gradRead(tr: TrainerHandle, i: number, out: Float32Array): void;
  setAdamW(tr: TrainerHandle, beta1: number, beta2: number, eps: number, weightDecay: number, clip: number): void;
  setQuant(tr: TrainerHandle, on: boolean): void;
  setLoops(tr: TrainerHandle, n: number): void;
  loops(tr: TrainerHandle): number;
  forwardBackward(tr: TrainerHandle, tokens: Int32Array, targets: Int32Array, batch: number, seqLen: number): Promise<{ lossSum: number; count: number }>;
  evaluate(tr: TrainerHandle, tokens: Int32Array, targets: Int32Array, batch: number, seqLen: number): Promise<{ lossSum: number; count: number }>;
  update(tr: TrainerHandle, lr: number, gradScale: number): Promise<number>;
  mezoStep(tr: TrainerHandle, tokens: Int32Array, targets: Int32Array, batch: number, seqLen: number, lr: number, eps: number, sparsity: number, seed: number): Promise<{ lossSum: number; count: number }>;
  zeroGrad(tr: TrainerHandle): void;
  step(tr: TrainerHandle): number;
  exportTensor(tr: TrainerHandle, i: number): Uint8Array;
  stateSave(tr: TrainerHandle): Uint8Array;
  stateLoad(tr: TrainerHandle, blob: Uint8Array): Promise<void>;
}

function bind(): TrainerNative {
  const n = native(); // loads the library and its opaque types first
  const lib = libraryHandle();
  koffi.opaque('braid_trainer');
  const f = {
    create: lib.func('int32_t braid_trainer_new(const char *path, _Out_ braid_trainer **out)'),
    free: lib.func('void braid_trainer_free(braid_trainer *tr)'),
    last_error: lib.func('const char *braid_trainer_last_error(const braid_trainer *tr)'),
    n_params: lib.func('int32_t braid_trainer_n_params(const braid_trainer *tr)'),
    n_vocab: lib.func('int32_t braid_trainer_n_vocab(const braid_trainer *tr)'),
    param_info: lib.func(
      'int32_t braid_trainer_param_info(const braid_trainer *tr, int32_t i, _Out_ uint8_t *name, int32_t name_cap, _Out_ int64_t *rows, _Out_ int64_t *cols, _Out_ int32_t *gguf_type, _Out_ int32_t *decay)',
    ),
    param_read: lib.func('int32_t braid_trainer_param_read(const braid_trainer *tr, int32_t i, float *out)'),
    param_write: lib.func('int32_t braid_trainer_param_write(braid_trainer *tr, int32_t i, const float *in)'),
    grad_read: lib.func('int32_t braid_trainer_grad_read(const braid_trainer *tr, int32_t i, float *out)'),
    set_adamw: lib.func(
      'int32_t braid_trainer_set_adamw(braid_trainer *tr, float beta1, float beta2, float eps, float weight_decay, float clip)',
    ),
    set_quant: lib.func('int32_t braid_trainer_set_quant(braid_trainer *tr, int32_t on)'),
    set_loops: lib.func('int32_t braid_trainer_set_loops(braid_trainer *tr, int32_t n_loops)'),
    loops: lib.func('int32_t braid_trainer_loops(const braid_trainer *tr)'),
    forward_backward: lib.func(
      'int32_t braid_trainer_forward_backward(braid_trainer *tr, const int32_t *tokens, const int32_t *targets, int32_t batch, int32_t seq_len, double *loss_sum, int64_t *n_targets)',
    ),
    evaluate: lib.func(
      'int32_t braid_trainer_evaluate(braid_trainer *tr, const int32_t *tokens, const int32_t *targets, int32_t batch, int32_t seq_len, double *loss_sum, int64_t *n_targets)',
    ),
    update: lib.func('int32_t braid_trainer_update(braid_trainer *tr, float lr, float grad_scale, float *grad_norm)'),
    zero_grad: lib.func('int32_t braid_trainer_zero_grad(braid_trainer *tr)'),
    mezo_step: lib.func(
      'int32_t braid_trainer_mezo_step(braid_trainer *tr, const int32_t *tokens, const int32_t *targets, int32_t batch, int32_t seq_len, float lr, float eps, float sparsity, uint64_t seed, double *loss_sum, int64_t *n_targets)',
    ),
    step: lib.func('int64_t braid_trainer_step(const braid_trainer *tr)'),
    export_size: lib.func('int64_t braid_trainer_export_size(const braid_trainer *tr, int32_t i)'),
    export: lib.func('int32_t braid_trainer_export(const braid_trainer *tr, int32_t i, uint8_t *out, int64_t size)'),
    state_size: lib.func('int64_t braid_trainer_state_size(const braid_trainer *tr)'),
    state_save: lib.func('int32_t braid_trainer_state_save(const braid_trainer *tr, uint8_t *buf, int64_t size)'),
    state_load: lib.func('int32_t braid_trainer_state_load(braid_trainer *tr, const uint8_t *buf, int64_t size)'),
  };

  /** Synchronous failure: braid_last_error is on this thread. */
  const check = (status: number, call: string): void => {
    if (status === Status.OK) return;
    throw new NativeError(n.lastError() || `${call} failed: ${statusName(status)}`, status);
  };
  /** Async failure: the trainer's own copy of the message. */
  const checkTr = (status: number, call: string, tr: TrainerHandle): void => {
    if (status === Status.OK) return;
    throw new NativeError(String(f.last_error(tr) ?? '') || `${call} failed: ${statusName(status)}`, status);
  };
  const num = (v: unknown): number => (typeof v === 'bigint' ? Number(v) : (v as number));

  const run = async (fn: typeof f.evaluate, call: string, tr: TrainerHandle, tokens: Int32Array, targets: Int32Array, batch: number, seqLen: number) => {
    if (tokens.length !== batch * seqLen || targets.length !== batch * seqLen) {
      throw new NativeError(`${call}: tokens and targets must hold batch·seqLen = ${batch * seqLen} ids`, Status.ERR_INVALID_ARG);
    }
    const loss = new Float64Array(1);
    const count = new BigInt64Array(1);
    const st = await callAsync(fn, [tr, tokens, targets, batch, seqLen, loss, count]);
    checkTr(st, call, tr);
    return { lossSum: loss[0]!, count: Number(count[0]!) };
  };

  return {
    create: (path) => {
      const out: [unknown] = [null];
      check(f.create(path, out), 'braid_trainer_new');
      return out[0] as TrainerHandle;
    },
    free: (tr) => f.free(tr),
    nParams: (tr) => f.n_params(tr),
    nVocab: (tr) => f.n_vocab(tr),
    paramInfo: (tr, i) => {
      const name = new Uint8Array(128);
      const rows = new BigInt64Array(1);
      const cols = new BigInt64Array(1);
      const type = new Int32Array(1);
      const decay = new Int32Array(1);
      check(f.param_info(tr, i, name, name.length, rows, cols, type, decay), 'braid_trainer_param_info');
      const end = name.indexOf(0);
      return {
        name: Buffer.from(name.subarray(0, end < 0 ? name.length : end)).toString('utf8'),
        rows: Number(rows[0]!),
        cols: Number(cols[0]!),
        ggufType: type[0]!,
        decay: decay[0] !== 0,
      };
    },
    paramRead: (tr, i, out) => check(f.param_read(tr, i, out), 'braid_trainer_param_read'),
    paramWrite: (tr, i, data) => check(f.param_write(tr, i, data), 'braid_trainer_param_write'),
    gradRead: (tr, i, out) => check(f.grad_read(tr, i, out), 'braid_trainer_grad_read'),
    setAdamW: (tr, b1, b2, eps, wd, clip) => check(f.set_adamw(tr, b1, b2, eps, wd, clip), 'braid_trainer_set_adamw'),
    setQuant: (tr, on) => check(f.set_quant(tr, on ? 1 : 0), 'braid_trainer_set_quant'),
    setLoops: (tr, n) => check(f.set_loops(tr, n), 'braid_trainer_set_loops'),
    loops: (tr) => f.loops(tr),
    forwardBackward: (tr, tokens, targets, batch, seqLen) =>
      run(f.forward_backward, 'braid_trainer_forward_backward', tr, tokens, targets, batch, seqLen),
    evaluate: (tr, tokens, targets, batch, seqLen) => run(f.evaluate, 'braid_trainer_evaluate', tr, tokens, targets, batch, seqLen),
    update: async (tr, lr, gradScale) => {
      const norm = new Float32Array(1);
      const st = await callAsync(f.update, [tr, lr, gradScale, norm]);
      checkTr(st, 'braid_trainer_update', tr);
      return norm[0]!;
    },
    mezoStep: async (tr, tokens, targets, batch, seqLen, lr, eps, sparsity, seed) => {
      if (tokens.length !== batch * seqLen || targets.length !== batch * seqLen) {
        throw new NativeError(`braid_trainer_mezo_step: tokens and targets must hold batch·seqLen = ${batch * seqLen} ids`, Status.ERR_INVALID_ARG);
      }
      const loss = new Float64Array(1);
      const count = new BigInt64Array(1);
      const st = await callAsync(f.mezo_step, [tr, tokens, targets, batch, seqLen, lr, eps, sparsity, BigInt(seed), loss, count]);
      checkTr(st, 'braid_trainer_mezo_step', tr);
      return { lossSum: loss[0]!, count: Number(count[0]!) };
    },
    zeroGrad: (tr) => check(f.zero_grad(tr), 'braid_trainer_zero_grad'),
    step: (tr) => num(f.step(tr)),
    exportTensor: (tr, i) => {
      const size = num(f.export_size(tr, i));
      if (size < 0) throw new NativeError(`parameter index ${i} out of range`, Status.ERR_INVALID_ARG);
      const out = new Uint8Array(size);
      check(f.export(tr, i, out, size), 'braid_trainer_export');
      return out;
    },
    stateSave: (tr) => {
      const out = new Uint8Array(num(f.state_size(tr)));
      check(f.state_save(tr, out, out.byteLength), 'braid_trainer_state_save');
      return out;
    },
    stateLoad: async (tr, blob) => {
      const st = await callAsync(f.state_load, [tr, blob, blob.byteLength]);
      checkTr(st, 'braid_trainer_state_load', tr);
    },
  };
}

let bound: TrainerNative | null = null;

export function trainerNative(): TrainerNative {
  bound ??= bind();
  return bound;
}
