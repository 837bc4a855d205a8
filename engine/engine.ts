/**
 * createEngine: loads each GGUF model twice over — the weights through
 * libbraid (mapped, used in place) and the metadata + tokenizer through the TS
 * GGUF reader — and wires a scheduler per model. The result implements the
 * Engine interface of engine/types.ts that the HTTP layer uses.
 */
import { stat } from 'node:fs/promises';
import { basename } from 'node:path';
import { initLibrary, systemInfo } from './binding/library.ts';
import { defaultChatTemplate, renderChatTemplate } from './chat/template.ts';
import { InvalidRequestError } from './errors.ts';
import { generate, type GenerationContext } from './generation/generate.ts';
import { readGguf } from './gguf/reader.ts';
import { metaOptNumber, metaOptString, metaStringArray, type GgufMetadata } from './gguf/types.ts';
import { NativeModel } from './model/native-model.ts';
import { Scheduler, Slot } from './scheduler.ts';
import { loadTokenizer } from './tokenizer/load.ts';
import type {
  ChatMessage,
  Engine,
  EngineStats,
  GenerationEvent,
  GenerationRequest,
  LedgerTelemetry,
  LoadedModel,
  ModelInfo,
  Tokenizer,
} from './types.ts';

export interface EngineOptions {
  /** GGUF files to serve. */
  models: string[];
  /** C thread-pool size; default: BRAID_THREADS or the cores available. */
  threads?: number;
  /** Contexts per model, i.e. generations that run at once (default 1). */
  slots?: number;
  /** Requests that may wait for a slot before QueueFullError (default 32). */
  maxQueue?: number;
  /** Most tokens per native eval call; longer prompts are split (default 128). */
  maxBatch?: number;
}

export const ENGINE_DEFAULTS = { slots: 1, maxQueue: 32, maxBatch: 128 } as const;

/**
 * The engine createEngine returns: the Engine of engine/types.ts plus adding
 * a model while serving (fine-tuned models, engine/finetune/), so a model a
 * job produces is served without a restart.
 */
export interface ServingEngine extends Engine {
  /** Loads a GGUF with the engine's slots and limits; throws if its id is already served. */
  addModel(path: string): Promise<LoadedModel>;
}

/** Generations remembered for recentTokensPerSecond. */
const RECENT_WINDOW = 8;

class Telemetry {
  promptTokensTotal = 0;
  completionTokensTotal = 0;
  readonly ledger: LedgerTelemetry = { opened: 0, closed: 0, forced: 0, forcedSteps: 0 };
  private readonly recent: { tokens: number; ms: number }[] = [];

  record(r: { promptTokens: number; completionTokens: number; decodeMs: number; ledger?: LedgerTelemetry }): void {
    this.promptTokensTotal += r.promptTokens;
    this.completionTokensTotal += r.completionTokens;
    if (r.ledger !== undefined) {
      this.ledger.opened += r.ledger.opened;
      this.ledger.closed += r.ledger.closed;
      this.ledger.forced += r.ledger.forced;
      this.ledger.forcedSteps += r.ledger.forcedSteps;
    }
    if (r.decodeMs <= 0 || r.completionTokens === 0) return;
    this.recent.push({ tokens: r.completionTokens, ms: r.decodeMs });
    if (this.recent.length > RECENT_WINDOW) this.recent.shift();
  }

  tokensPerSecond(): number {
    const ms = this.recent.reduce((a, r) => a + r.ms, 0);
    return ms > 0 ? (this.recent.reduce((a, r) => a + r.tokens, 0) * 1000) / ms : 0;
  }
}

/** The text of a special token for chat templates ("" when absent). */
function tokenText(tok: Tokenizer, id: number | null): string {
  return id === null ? '' : tok.decode([id]);
}

class EngineModel implements LoadedModel {
  private readonly gen: GenerationContext;

  constructor(
    readonly info: ModelInfo,
    readonly tokenizer: Tokenizer,
    private readonly chatTemplate: string,
    readonly native: NativeModel,
    readonly scheduler: Scheduler,
    telemetry: Telemetry,
  ) {
    this.gen = {
      tokenizer,
      scheduler,
      contextLength: info.contextLength,
      nVocab: info.nVocab,
      loopMax: native.loopMax,
      onFinished: (r) => telemetry.record(r),
    };
  }

  applyChatTemplate(messages: ChatMessage[], opts: { addGenerationPrompt: boolean }): string {
    return renderChatTemplate(this.chatTemplate, messages, {
      addGenerationPrompt: opts.addGenerationPrompt,
      bosToken: tokenText(this.tokenizer, this.tokenizer.bosId),
      eosToken: tokenText(this.tokenizer, this.tokenizer.eosId),
    });
  }

  generate(req: GenerationRequest): AsyncGenerator<GenerationEvent, void, undefined> {
    return generate(this.gen, req);
  }

  async embed(tokens: number[], signal: AbortSignal, continuation = false): Promise<Float32Array> {
    if (tokens.length === 0) throw new InvalidRequestError('the input is empty', 'input');
    if (tokens.length > this.info.contextLength) {
      throw new InvalidRequestError(
        `this model's context length is ${this.info.contextLength} tokens, but the input has ${tokens.length}`,
        'input',
        'context_length_exceeded',
      );
    }
    const lease = await this.scheduler.acquire(tokens, signal, 1, continuation);
    try {
      const hidden = await lease.slot.hidden(tokens, signal);
      return meanRows(hidden, tokens.length, this.info.nEmbd);
    } finally {
      lease.release();
    }
  }
}

/** Mean of the rows of a [n][d] matrix, accumulated in float64. */
function meanRows(m: Float32Array, n: number, d: number): Float32Array {
  const acc = new Float64Array(d);
  for (let r = 0; r < n; r++) for (let c = 0; c < d; c++) acc[c] = acc[c]! + m[r * d + c]!;
  return Float32Array.from(acc, (x) => x / n);
}

function modelId(meta: GgufMetadata, path: string): string {
  const name = metaOptString(meta, 'general.name');
  return name && name.trim().length > 0 ? name.trim() : basename(path).replace(/\.gguf$/i, '');
}

async function loadModel(
  path: string,
  opts: Required<Omit<EngineOptions, 'models' | 'threads'>>,
  telemetry: Telemetry,
): Promise<EngineModel> {
  const [file, st] = await Promise.all([readGguf(path), stat(path)]);
  const meta = file.metadata;
  const tokenizer = loadTokenizer(meta);
  const architecture = metaOptString(meta, 'general.architecture') ?? 'unknown';
  const nativeModel = await NativeModel.load(path);
  const slots: Slot[] = [];
  try {
    if (tokenizer.vocabSize > nativeModel.nVocab) {
      throw new Error(
        `${path}: the tokenizer has ${tokenizer.vocabSize} tokens but the model only ${nativeModel.nVocab} logits`,
      );
    }
    for (let i = 0; i < opts.slots; i++) slots.push(new Slot(nativeModel.createContext(opts.maxBatch)));
  } catch (e) {
    await nativeModel.dispose();
    throw e;
  }
  const info: ModelInfo = {
    id: modelId(meta, path),
    path,
    architecture,
    created: Math.floor(st.mtimeMs / 1000),
    provenance: metaOptString(meta, 'braid.provenance') ?? 'unknown',
    nVocab: nativeModel.nVocab,
    nEmbd: nativeModel.nEmbd,
    nLayer: nativeModel.nLayer,
    // Recurrent layers have no hard limit; the nominal training context is the
    // promise we make (and what bounds prompt + max_tokens). MoA's KV cache is
    // sized for max_position_embeddings, a hard limit (an eval past it fails).
    contextLength:
      metaOptNumber(meta, `${architecture}.context_length`) ??
      metaOptNumber(meta, `${architecture}.max_position_embeddings`) ??
      4096,
    tensorBytes: nativeModel.tensorBytes,
  };
  const scheduler = new Scheduler(slots, opts.maxQueue);
  return new EngineModel(
    info,
    tokenizer,
    metaOptString(meta, 'tokenizer.chat_template') ?? defaultChatTemplate(metaStringArray(meta, 'tokenizer.ggml.tokens')),
    nativeModel,
    scheduler,
    telemetry,
  );
}

function positiveInt(name: string, v: number): number {
  if (!Number.isInteger(v) || v < 1) throw new RangeError(`${name} must be a positive integer, got ${v}`);
  return v;
}

export async function createEngine(options: EngineOptions): Promise<ServingEngine> {
  if (options.models.length === 0) throw new Error('createEngine: no model files given');
  const opts = {
    slots: positiveInt('slots', options.slots ?? ENGINE_DEFAULTS.slots),
    maxQueue: Math.max(0, Math.floor(options.maxQueue ?? ENGINE_DEFAULTS.maxQueue)),
    maxBatch: positiveInt('maxBatch', options.maxBatch ?? ENGINE_DEFAULTS.maxBatch),
  };
  initLibrary(options.threads);
  const telemetry = new Telemetry();
  const models: EngineModel[] = [];
  try {
    // One at a time: loads are I/O plus page-table work, and ids must be unique.
    for (const path of options.models) {
      const m = await loadModel(path, opts, telemetry);
      if (models.some((o) => o.info.id === m.info.id)) {
        await m.scheduler.dispose();
        await m.native.dispose();
        throw new Error(`two models share the id "${m.info.id}" (${path}); give one a different general.name`);
      }
      models.push(m);
    }
  } catch (e) {
    for (const m of models) {
      await m.scheduler.dispose();
      await m.native.dispose();
    }
    throw e;
  }

  const byId = new Map(models.map((m) => [m.info.id, m]));
  let disposed: Promise<void> | null = null;
  return {
    models: () => [...models],
    get: (id) => byId.get(id),
    addModel: async (path) => {
      if (disposed !== null) throw new Error('addModel after dispose()');
      const m = await loadModel(path, opts, telemetry);
      // Checked after the load: two adds of one id may race while both load.
      if (byId.has(m.info.id)) {
        await m.scheduler.dispose();
        await m.native.dispose();
        throw new Error(`a model with the id "${m.info.id}" is already served (${path})`);
      }
      models.push(m);
      byId.set(m.info.id, m);
      return m;
    },
    stats: (): EngineStats => ({
      queueDepth: models.reduce((a, m) => a + m.scheduler.queueDepth, 0),
      activeGenerations: models.reduce((a, m) => a + m.scheduler.active, 0),
      promptTokensTotal: telemetry.promptTokensTotal,
      completionTokensTotal: telemetry.completionTokensTotal,
      recentTokensPerSecond: telemetry.tokensPerSecond(),
      ledger: { ...telemetry.ledger },
    }),
    systemInfo: () => ({ ...systemInfo(), ...opts }),
    dispose: () => {
      disposed ??= (async () => {
        for (const m of models) {
          // Queued requests are rejected; running ones get AbortedError from
          // their next eval (the contexts are aborted before being freed).
          await m.scheduler.dispose();
          await m.native.dispose();
        }
      })();
      return disposed;
    },
  };
}
