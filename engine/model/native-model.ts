/**
 * A loaded libbraid model: immutable weights mapped from a GGUF file, shared by
 * every context created from it. dispose() frees it; a finaliser only warns.
 */
import { native, type ModelHandle } from '../binding/native.ts';
import { NativeContext } from './native-context.ts';

const leaks = new FinalizationRegistry<string>((path) => {
  console.warn(`braid: a NativeModel for ${path} was garbage-collected without dispose(); its mapping leaked`);
});

export class NativeModel {
  readonly nVocab: number;
  readonly nEmbd: number;
  readonly nLayer: number;
  /** Bytes of tensor data mapped from the file. */
  readonly tensorBytes: number;
  /** chimera.loop.max of a Parcae looping model (§2.11), 0 if it does not loop. */
  readonly loopMax: number;
  /** general.architecture: "chimera" or "moa". */
  readonly architecture: string;
  /**
   * Whether a context can drop its last tokens (braid_context_rewind): a MoA context's state is a
   * KV cache of rows per position; a Chimera context's recurrent state cannot forget a token.
   */
  readonly canRewind: boolean;
  private handle: ModelHandle | null;
  private readonly contexts = new Set<NativeContext>();

  private constructor(
    readonly path: string,
    handle: ModelHandle,
  ) {
    const n = native();
    this.handle = handle;
    this.nVocab = n.modelNVocab(handle);
    this.nEmbd = n.modelNEmbd(handle);
    this.nLayer = n.modelNLayer(handle);
    this.tensorBytes = n.modelTensorBytes(handle);
    this.loopMax = n.modelLoopMax(handle);
    const described = JSON.parse(n.modelDescribe(handle)) as { architecture?: unknown };
    this.architecture = typeof described.architecture === 'string' ? described.architecture : 'unknown';
    this.canRewind = this.architecture === 'moa';
    leaks.register(this, path, this);
  }

  /** Maps the file off the event loop. */
  static async load(path: string): Promise<NativeModel> {
    return new NativeModel(path, await native().modelLoad(path));
  }

  /** braid_model_describe(): architecture and hyper-parameters. */
  describe(): Record<string, unknown> {
    return JSON.parse(native().modelDescribe(this.live())) as Record<string, unknown>;
  }

  /** A new sequence context whose eval calls carry at most maxBatch tokens each. */
  createContext(maxBatch: number): NativeContext {
    const ctx = new NativeContext(this, native().contextNew(this.live(), maxBatch), maxBatch, () =>
      this.contexts.delete(ctx),
    );
    this.contexts.add(ctx);
    return ctx;
  }

  get disposed(): boolean {
    return this.handle === null;
  }

  /**
   * Frees the weights. Contexts still alive are disposed first (each waits for
   * its in-flight call), since they point into the model.
   */
  async dispose(): Promise<void> {
    if (this.handle === null) return;
    await Promise.all([...this.contexts].map((c) => c.dispose()));
    native().modelFree(this.handle);
    this.handle = null;
    leaks.unregister(this);
  }

  /** The native handle; throws after dispose(). */
  live(): ModelHandle {
    if (this.handle === null) throw new Error(`model ${this.path} has been disposed`);
    return this.handle;
  }
}
