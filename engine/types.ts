/**
 * The engine's public surface: what the HTTP layer (server/) sees. Plain typed
 * values in, plain typed values and async generators out; no koffi, no HTTP.
 */
import type { Grammar } from './grammar/ir.ts';
import type { LedgerTelemetry } from './ledger/ledger.ts';
import type { ValveMode } from './valve/valve.ts';

export type { Grammar } from './grammar/ir.ts';
export type { LedgerTelemetry } from './ledger/ledger.ts';

/** Byte-level BPE tokenizer read from a GGUF file (engine/tokenizer/). */
export interface Tokenizer {
  readonly vocabSize: number;
  readonly bosId: number | null;
  readonly eosId: number;
  /** Ids that end generation (eos, end-of-turn markers of the chat template). */
  readonly stopIds: ReadonlySet<number>;
  /** Control tokens (never produced by encode unless parseSpecial). */
  readonly specialIds: ReadonlySet<number>;
  /** parseSpecial: recognise special-token text like "<|im_start|>" (chat templates do). */
  encode(text: string, opts?: { parseSpecial?: boolean }): number[];
  /** Decodes to a string; invalid UTF-8 becomes U+FFFD. skipSpecial drops control tokens. */
  decode(ids: readonly number[], opts?: { skipSpecial?: boolean }): string;
  /** The raw bytes a token stands for (control tokens: their UTF-8 text). */
  tokenBytes(id: number): Uint8Array;
  /** Incremental decoder: never emits half a multi-byte character. */
  createStreamDecoder(opts?: { skipSpecial?: boolean }): StreamDecoder;
}

export interface StreamDecoder {
  /** Adds a token; returns the text that became complete (possibly ""). */
  push(id: number): string;
  /** Returns what is left at the end (incomplete bytes become U+FFFD). */
  flush(): string;
}

export interface ChatMessage {
  role: 'system' | 'developer' | 'user' | 'assistant' | 'tool';
  content: string;
  name?: string;
}

export interface SamplingOptions {
  /** 0 means greedy. */
  temperature: number;
  topP: number;
  /** 0 means disabled. */
  topK: number;
  minP: number;
  presencePenalty: number;
  frequencyPenalty: number;
  /** 1 means disabled (multiplicative, as in CTRL / llama.cpp). */
  repetitionPenalty: number;
  /** token id → bias added to the logit (-100 bans, +100 forces). */
  logitBias: ReadonlyMap<number, number>;
  /** Fixed seed → reproducible output; undefined → random. */
  seed: number | undefined;
}

export interface GenerationRequest {
  promptTokens: number[];
  /** Most tokens to generate (the server resolves max_tokens / max_completion_tokens / defaults). */
  maxTokens: number;
  /** A later part of an admitted request (choice i > 0 of n): queued but never refused as queue_full. */
  continuation?: boolean;
  /** The request field maxTokens came from, named by a too-small-budget error (default max_tokens). */
  maxTokensParam?: 'max_tokens' | 'max_completion_tokens';
  /** Text stop sequences (OpenAI `stop`): not included in the output. */
  stop: string[];
  sampling: SamplingOptions;
  /** null: no logprobs; k >= 0: the chosen token's logprob plus the k most likely alternatives. */
  topLogprobs: number | null;
  /** Also report logprobs of the prompt tokens (completions `echo` + `logprobs`). */
  promptLogprobs: boolean;
  /** Aborting stops generation within one step and frees the context. */
  signal: AbortSignal;
  /**
   * Constrains the output to a grammar (engine/grammar/): every step masks the
   * tokens it rejects, and the debt ledger keeps the output completable within
   * maxTokens. Absent: unconstrained.
   */
  grammar?: Grammar;
  /**
   * Entropy-valve mode (engine/valve/): the loop depth policy of a Parcae looping model —
   * fast (1 loop), balanced (≤ 2, default), reasoning (≤ 4). Ignored by models without looping.
   */
  mode?: ValveMode;
}

export interface TokenLogprob {
  id: number;
  token: string;
  bytes: number[];
  logprob: number;
}

export interface ChosenLogprob extends TokenLogprob {
  topLogprobs: TokenLogprob[];
}

export type FinishReason = 'stop' | 'length';

export type GenerationEvent =
  /**
   * Text released to the client. Text that might be the start of a stop
   * sequence is held back until it is known not to be; `logprobs` lists the
   * tokens whose text this delta completes (when logprobs were requested).
   */
  | { kind: 'delta'; text: string; logprobs: ChosenLogprob[] }
  | {
      kind: 'done';
      finishReason: FinishReason;
      promptTokens: number;
      completionTokens: number;
      /** When promptLogprobs was requested: one entry per prompt token (the first is null). */
      promptLogprobs?: (ChosenLogprob | null)[];
      /** Wall-clock timings for telemetry. */
      timings: { queuedMs: number; prefillMs: number; decodeMs: number };
      /** With a grammar: the debt ledger's obligations opened, closed and forced. */
      ledger?: LedgerTelemetry;
      /** Parcae looping models only: mean loop count of the steps whose logits were sampled. */
      meanLoops?: number;
    };

export interface ModelInfo {
  /** The id clients use in `model`. */
  id: string;
  path: string;
  architecture: string;
  /** Unix seconds (file mtime). */
  created: number;
  /** e.g. "random-init (untrained)". */
  provenance: string;
  nVocab: number;
  nEmbd: number;
  nLayer: number;
  contextLength: number;
  tensorBytes: number;
}

export interface LoadedModel {
  readonly info: ModelInfo;
  readonly tokenizer: Tokenizer;
  /** Renders the model's chat template (adds the assistant prompt when asked). */
  applyChatTemplate(messages: ChatMessage[], opts: { addGenerationPrompt: boolean }): string;
  /**
   * Queues and runs one generation. Throws QueueFullError (engine/errors.ts)
   * synchronously-on-first-next if the queue is at its cap.
   */
  generate(req: GenerationRequest): AsyncGenerator<GenerationEvent, void, undefined>;
  /** Mean-pooled final hidden state (for embeddings). */
  /** continuation: a later input of an admitted batch, queued but never refused as queue_full. */
  embed(tokens: number[], signal: AbortSignal, continuation?: boolean): Promise<Float32Array>;
}

export interface EngineStats {
  queueDepth: number;
  activeGenerations: number;
  promptTokensTotal: number;
  completionTokensTotal: number;
  /** Completion tokens per second over the most recent generation(s). */
  recentTokensPerSecond: number;
  /** Debt-ledger totals over every constrained generation so far. */
  ledger: LedgerTelemetry;
}

export interface Engine {
  models(): LoadedModel[];
  get(id: string): LoadedModel | undefined;
  stats(): EngineStats;
  systemInfo(): Record<string, unknown>;
  dispose(): Promise<void>;
}
