/**
 * The whole native surface of libbraid (c/include/braid.h) in one typed file.
 * This is the only module that imports koffi. Model-heavy calls (load, eval,
 * eval_hidden, state save/load/copy, reset) run through koffi's `.async` on a
 * worker thread and return Promises, so the event loop keeps serving while C
 * computes; quick getters stay synchronous.
 *
 * Error text. braid_last_error() is thread-local in C, and an async call runs
 * on a koffi worker thread, so reading it afterwards from the JS thread would
 * return that thread's (unrelated, usually empty) message. Therefore:
 *  - synchronous calls read braid_last_error() right away (same thread);
 *  - a failed braid_model_load is repeated synchronously to obtain its text
 *    (loading only maps the file and checks the header, so a failure is cheap
 *    and deterministic);
 *  - other async failures use braid_context_last_error(ctx) when the library
 *    exports it (a per-context copy of the message, requested from the C side),
 *    and otherwise a message naming the call and the status.
 */
import { fileURLToPath } from 'node:url';
import koffi, { type LibraryHandle } from 'koffi';
import { NativeError } from '../errors.ts';

/** Status codes of braid.h. */
export const Status = {
  OK: 0,
  ERR_INVALID_ARG: -1,
  ERR_IO: -2,
  ERR_FORMAT: -3,
  ERR_NOMEM: -4,
  ERR_UNSUPPORTED: -5,
  ERR_CAPACITY: -6,
  ABORTED: -7,
  ERR_STATE: -8,
} as const;

/** Instruction-set ids of braid.h. */
export const Isa = { REF: 0, AVX2: 1, AVX512: 2 } as const;

/** Opaque handles: koffi 3 represents pointers as bigint; the brand keeps them apart. */
export type ModelHandle = bigint & { readonly __brand: 'braid_model' };
export type ContextHandle = bigint & { readonly __brand: 'braid_context' };

export type LogFn = (level: number, message: string) => void;

export function statusName(status: number): string {
  for (const [name, value] of Object.entries(Status)) if (value === status) return `BRAID_${name}`;
  return `status ${status}`;
}

export interface Native {
  /** The file that was loaded. */
  readonly path: string;
  /** True when braid_context_last_error exists (exact messages for failed async calls). */
  readonly hasContextErrors: boolean;

  lastError(): string;
  init(nThreads: number): void;
  threadCount(): number;
  isaGet(): number;
  isaSet(isa: number): void;
  systemInfo(): string;
  /**
   * Installs a log sink (null restores silence). koffi runs the callback on the
   * JS thread and the calling C thread waits for it, so a sink must not be set
   * while a synchronous call could log from pool threads.
   */
  logSet(fn: LogFn | null): void;

  modelLoad(path: string): Promise<ModelHandle>;
  modelFree(model: ModelHandle): void;
  modelNVocab(model: ModelHandle): number;
  modelNEmbd(model: ModelHandle): number;
  modelNLayer(model: ModelHandle): number;
  modelTensorBytes(model: ModelHandle): number;
  modelDescribe(model: ModelHandle): string;
  /** chimera.loop.max of a Parcae looping model, 0 if it does not loop. */
  modelLoopMax(model: ModelHandle): number;

  contextNew(model: ModelHandle, maxBatch: number): ContextHandle;
  contextFree(ctx: ContextHandle): void;
  /** out: [n][n_vocab] when allLogits, else [n_vocab]. */
  contextEval(ctx: ContextHandle, tokens: Int32Array, allLogits: boolean, out: Float32Array): Promise<void>;
  /** out: [n][n_embd]. */
  contextEvalHidden(ctx: ContextHandle, tokens: Int32Array, out: Float32Array): Promise<void>;
  contextNPast(ctx: ContextHandle): number;
  /** Loop count of the following evals (1..modelLoopMax; only 1 without looping). Synchronous. */
  contextSetLoops(ctx: ContextHandle, nLoops: number): void;
  contextLoops(ctx: ContextHandle): number;
  /** Parcae adaptive exit (braid.h): threshold 0 turns it off; minLoops in 1..loop max. */
  contextSetLoopExit(ctx: ContextHandle, threshold: number, minLoops: number): void;
  /** Iterations the last token of the last eval ran, and their sum over that eval's tokens. */
  contextLastLoops(ctx: ContextHandle): number;
  contextLastLoopSum(ctx: ContextHandle): number;
  contextReset(ctx: ContextHandle): Promise<void>;
  contextAbort(ctx: ContextHandle): void;
  contextAbortClear(ctx: ContextHandle): void;
  contextStateSize(ctx: ContextHandle): number;
  contextStateSave(ctx: ContextHandle, buf: Uint8Array): Promise<void>;
  contextStateLoad(ctx: ContextHandle, buf: Uint8Array): Promise<void>;
  contextCopy(dst: ContextHandle, src: ContextHandle): Promise<void>;
  /**
   * Drops the last n tokens of the sequence (KV-cache architectures, MoA; a Chimera context
   * throws BRAID_ERR_UNSUPPORTED). Synchronous: it only truncates lists.
   */
  contextRewind(ctx: ContextHandle, nTokens: number): void;
}

/** c/build/libbraid.so under the package root, unless BRAID_LIB names another file. */
export function libraryPath(): string {
  const override = process.env['BRAID_LIB'];
  if (override) return override;
  return fileURLToPath(new URL('../../c/build/libbraid.so', import.meta.url));
}

export type KoffiFunction = ReturnType<LibraryHandle['func']>;

/**
 * Arguments of async calls in flight. koffi reads typed arrays in place on the
 * worker thread, so the buffers must stay reachable until the call settles; this
 * set makes that explicit rather than relying on closure capture.
 */
const inFlight = new Set<unknown[]>();

export function callAsync(fn: KoffiFunction, args: unknown[]): Promise<number> {
  inFlight.add(args);
  return new Promise<number>((resolve, reject) => {
    fn.async(...args, (err: unknown, result: unknown) => {
      inFlight.delete(args);
      if (err) reject(err instanceof Error ? err : new Error(String(err)));
      else resolve(Number(result));
    });
  });
}

function toNumber(v: unknown): number {
  return typeof v === 'bigint' ? Number(v) : (v as number);
}

let libHandle: LibraryHandle | null = null;

/** The loaded library handle, shared with the other binding files (engine/binding/trainer.ts). */
export function libraryHandle(): LibraryHandle {
  native();
  return libHandle as LibraryHandle;
}

function bind(path: string): Native {
  let lib: LibraryHandle;
  try {
    lib = koffi.load(path);
  } catch (e) {
    throw new NativeError(
      `cannot load libbraid from ${path} (build it with \`make -C c\` or set BRAID_LIB): ${(e as Error).message}`,
      Status.ERR_IO,
    );
  }
  libHandle = lib;
  koffi.opaque('braid_model');
  koffi.opaque('braid_context');
  const logProto = koffi.proto('void braid_log_fn(int32_t level, const char *message)');

  const f = {
    last_error: lib.func('const char *braid_last_error(void)'),
    init: lib.func('int32_t braid_init(int32_t n_threads)'),
    thread_count: lib.func('int32_t braid_thread_count(void)'),
    isa_get: lib.func('int32_t braid_isa_get(void)'),
    isa_set: lib.func('int32_t braid_isa_set(int32_t isa)'),
    system_info: lib.func('const char *braid_system_info(void)'),
    log_set: lib.func('void braid_log_set(braid_log_fn *fn)'),
    model_load: lib.func('int32_t braid_model_load(const char *path, _Out_ braid_model **out)'),
    model_free: lib.func('void braid_model_free(braid_model *model)'),
    model_n_vocab: lib.func('int32_t braid_model_n_vocab(const braid_model *model)'),
    model_n_embd: lib.func('int32_t braid_model_n_embd(const braid_model *model)'),
    model_n_layer: lib.func('int32_t braid_model_n_layer(const braid_model *model)'),
    model_tensor_bytes: lib.func('int64_t braid_model_tensor_bytes(const braid_model *model)'),
    model_describe: lib.func('const char *braid_model_describe(const braid_model *model)'),
    model_loop_max: lib.func('int32_t braid_model_loop_max(const braid_model *model)'),
    context_new: lib.func(
      'int32_t braid_context_new(const braid_model *model, int32_t max_batch, _Out_ braid_context **out)',
    ),
    context_free: lib.func('void braid_context_free(braid_context *ctx)'),
    context_eval: lib.func(
      'int32_t braid_context_eval(braid_context *ctx, const int32_t *tokens, int32_t n_tokens, int32_t all_logits, float *logits_out)',
    ),
    context_eval_hidden: lib.func(
      'int32_t braid_context_eval_hidden(braid_context *ctx, const int32_t *tokens, int32_t n_tokens, float *hidden_out)',
    ),
    context_n_past: lib.func('int64_t braid_context_n_past(const braid_context *ctx)'),
    context_set_loops: lib.func('int32_t braid_context_set_loops(braid_context *ctx, int32_t n_loops)'),
    context_loops: lib.func('int32_t braid_context_loops(const braid_context *ctx)'),
    context_set_loop_exit: lib.func(
      'int32_t braid_context_set_loop_exit(braid_context *ctx, float threshold, int32_t min_loops)',
    ),
    context_last_loops: lib.func('int32_t braid_context_last_loops(const braid_context *ctx)'),
    context_last_loop_sum: lib.func('int64_t braid_context_last_loop_sum(const braid_context *ctx)'),
    context_reset: lib.func('int32_t braid_context_reset(braid_context *ctx)'),
    context_abort: lib.func('void braid_context_abort(braid_context *ctx)'),
    context_abort_clear: lib.func('void braid_context_abort_clear(braid_context *ctx)'),
    context_state_size: lib.func('int64_t braid_context_state_size(const braid_context *ctx)'),
    context_state_save: lib.func(
      'int32_t braid_context_state_save(const braid_context *ctx, uint8_t *buf, int64_t buf_size)',
    ),
    context_state_load: lib.func(
      'int32_t braid_context_state_load(braid_context *ctx, const uint8_t *buf, int64_t buf_size)',
    ),
    context_copy: lib.func('int32_t braid_context_copy(braid_context *dst, const braid_context *src)'),
    context_rewind: lib.func('int32_t braid_context_rewind(braid_context *ctx, int32_t n_tokens)'),
  };
  // Optional: present once the C side keeps a per-context copy of the message.
  let contextLastError: KoffiFunction | null = null;
  try {
    contextLastError = lib.func('const char *braid_context_last_error(const braid_context *ctx)');
  } catch {
    contextLastError = null;
  }

  /** Throws for a failed synchronous call: braid_last_error is on this thread. */
  const check = (status: number, call: string): void => {
    if (status === Status.OK) return;
    const text = String(f.last_error() ?? '');
    throw new NativeError(text || `${call} failed: ${statusName(status)}`, status);
  };
  /** Throws for a failed async context call (see the file comment). */
  const checkAsync = (status: number, call: string, ctx: ContextHandle): void => {
    if (status === Status.OK) return;
    const text = contextLastError ? String(contextLastError(ctx) ?? '') : '';
    throw new NativeError(text || `${call} failed: ${statusName(status)}`, status);
  };

  let registeredLog: unknown = null;

  return {
    path,
    hasContextErrors: contextLastError !== null,
    lastError: () => String(f.last_error() ?? ''),
    init: (n) => check(f.init(n), 'braid_init'),
    threadCount: () => f.thread_count(),
    isaGet: () => f.isa_get(),
    isaSet: (isa) => check(f.isa_set(isa), 'braid_isa_set'),
    systemInfo: () => String(f.system_info()),
    logSet: (fn) => {
      const next = fn === null ? null : koffi.register(fn, koffi.pointer(logProto));
      f.log_set(next);
      if (registeredLog !== null) koffi.unregister(registeredLog as bigint);
      registeredLog = next;
    },

    modelLoad: async (p) => {
      const out: [unknown] = [null];
      const status = await callAsync(f.model_load, [p, out]);
      if (status === Status.OK && out[0]) return out[0] as ModelHandle;
      // Repeat on this thread to read the message (see the file comment).
      const again: [unknown] = [null];
      const st2 = f.model_load(p, again);
      if (st2 === Status.OK) f.model_free(again[0]);
      const text = st2 === Status.OK ? '' : String(f.last_error() ?? '');
      throw new NativeError(text || `braid_model_load(${p}) failed: ${statusName(status)}`, status);
    },
    modelFree: (m) => f.model_free(m),
    modelNVocab: (m) => f.model_n_vocab(m),
    modelNEmbd: (m) => f.model_n_embd(m),
    modelNLayer: (m) => f.model_n_layer(m),
    modelTensorBytes: (m) => toNumber(f.model_tensor_bytes(m)),
    modelDescribe: (m) => String(f.model_describe(m)),
    modelLoopMax: (m) => f.model_loop_max(m),

    contextNew: (m, maxBatch) => {
      const out: [unknown] = [null];
      check(f.context_new(m, maxBatch, out), 'braid_context_new');
      return out[0] as ContextHandle;
    },
    contextFree: (c) => f.context_free(c),
    contextEval: async (c, tokens, allLogits, out) => {
      const st = await callAsync(f.context_eval, [c, tokens, tokens.length, allLogits ? 1 : 0, out]);
      checkAsync(st, 'braid_context_eval', c);
    },
    contextEvalHidden: async (c, tokens, out) => {
      const st = await callAsync(f.context_eval_hidden, [c, tokens, tokens.length, out]);
      checkAsync(st, 'braid_context_eval_hidden', c);
    },
    contextNPast: (c) => toNumber(f.context_n_past(c)),
    contextSetLoops: (c, n) => check(f.context_set_loops(c, n), 'braid_context_set_loops'),
    contextLoops: (c) => f.context_loops(c),
    contextSetLoopExit: (c, th, min) => check(f.context_set_loop_exit(c, th, min), 'braid_context_set_loop_exit'),
    contextLastLoops: (c) => f.context_last_loops(c),
    contextLastLoopSum: (c) => toNumber(f.context_last_loop_sum(c)),
    contextReset: async (c) => checkAsync(await callAsync(f.context_reset, [c]), 'braid_context_reset', c),
    contextAbort: (c) => f.context_abort(c),
    contextAbortClear: (c) => f.context_abort_clear(c),
    contextStateSize: (c) => toNumber(f.context_state_size(c)),
    contextStateSave: async (c, buf) => {
      const st = await callAsync(f.context_state_save, [c, buf, buf.byteLength]);
      checkAsync(st, 'braid_context_state_save', c);
    },
    contextStateLoad: async (c, buf) => {
      const st = await callAsync(f.context_state_load, [c, buf, buf.byteLength]);
      checkAsync(st, 'braid_context_state_load', c);
    },
    contextCopy: async (dst, src) => {
      const st = await callAsync(f.context_copy, [dst, src]);
      checkAsync(st, 'braid_context_copy', dst);
    },
    contextRewind: (c, n) => check(f.context_rewind(c, n), 'braid_context_rewind'),
  };
}

let loaded: Native | null = null;

/** The library, loaded on first use (BRAID_LIB is read then). */
export function native(): Native {
  loaded ??= bind(libraryPath());
  return loaded;
}
