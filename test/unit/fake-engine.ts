/**
 * A deterministic Engine for the HTTP layer's unit tests — never used outside
 * test/. It implements the engine contract honestly at toy scale: a
 * byte-level tokenizer (ids 0-255 are bytes, 256+ are control tokens), a
 * ChatML template, a slot/queue scheduler that throws QueueFullError, stop
 * sequences held back until they can no longer match, logprobs, prompt
 * logprobs, abort within one step, and stats. The "model" writes a fixed
 * script or a seed-dependent slice of a pangram text, one byte per token.
 * Its embeddings are the mean over positions of a per-(position, token)
 * pseudo-random vector, so equal inputs give equal vectors and different
 * inputs different ones.
 */
import { AbortedError, InvalidRequestError, QueueFullError } from '../../engine/errors.ts';
import { compileConstraint, Matcher } from '../../engine/grammar/matcher.ts';
import { DebtLedger } from '../../engine/ledger/ledger.ts';
import { argmax } from '../../engine/sampler/truncate.ts';
import type {
  ChatMessage,
  ChosenLogprob,
  Engine,
  EngineStats,
  GenerationEvent,
  GenerationRequest,
  LoadedModel,
  ModelInfo,
  StreamDecoder,
  Tokenizer,
} from '../../engine/types.ts';

const SPECIALS = ['<s>', '</s>', '<|im_start|>', '<|im_end|>'] as const;
export const BOS = 256;
export const EOS = 257;
const IM_END = 259;

const utf8 = new TextEncoder();

export class FakeTokenizer implements Tokenizer {
  readonly vocabSize = 256 + SPECIALS.length;
  readonly bosId = BOS;
  readonly eosId = EOS;
  readonly stopIds: ReadonlySet<number> = new Set([EOS, IM_END]);
  readonly specialIds: ReadonlySet<number> = new Set(SPECIALS.map((_, i) => 256 + i));

  encode(text: string, opts: { parseSpecial?: boolean } = {}): number[] {
    if (opts.parseSpecial !== true) return [...utf8.encode(text)];
    const ids: number[] = [];
    let rest = text;
    while (rest.length > 0) {
      let cut = rest.length;
      let special = -1;
      for (const [i, s] of SPECIALS.entries()) {
        const at = rest.indexOf(s);
        if (at >= 0 && at < cut) {
          cut = at;
          special = i;
        }
      }
      ids.push(...utf8.encode(rest.slice(0, cut)));
      if (special < 0) break;
      ids.push(256 + special);
      rest = rest.slice(cut + SPECIALS[special]!.length);
    }
    return ids;
  }

  decode(ids: readonly number[], opts: { skipSpecial?: boolean } = {}): string {
    const bytes: number[] = [];
    for (const id of ids) {
      if (opts.skipSpecial === true && this.specialIds.has(id)) continue;
      bytes.push(...this.tokenBytes(id));
    }
    return new TextDecoder().decode(new Uint8Array(bytes));
  }

  tokenBytes(id: number): Uint8Array {
    if (id >= 0 && id < 256) return new Uint8Array([id]);
    const special = SPECIALS[id - 256];
    if (special === undefined) throw new RangeError(`token id ${id} outside the vocabulary`);
    return utf8.encode(special);
  }

  createStreamDecoder(opts: { skipSpecial?: boolean } = {}): StreamDecoder {
    const decoder = new TextDecoder();
    return {
      push: (id) => (opts.skipSpecial === true && this.specialIds.has(id) ? '' : decoder.decode(this.tokenBytes(id), { stream: true })),
      flush: () => decoder.decode(),
    };
  }
}

const PANGRAMS = 'the quick brown fox jumps over the lazy dog. pack my box with five dozen liquor jugs. ';

export interface FakeEngineOptions {
  models?: string[];
  contextLength?: number;
  slots?: number;
  maxQueue?: number;
  /** Text the model writes for a request (then EOS). Default: endless seed-dependent text. */
  script?: (req: GenerationRequest) => string;
  /** A looping model's mean loop count for a request (the done event's meanLoops); absent: no looping. */
  meanLoops?: (req: GenerationRequest) => number;
}

/** FNV-1a over numbers: a stable stand-in for "what the model computes from its input". */
function hash(values: readonly number[]): number {
  let h = 0x811c9dc5;
  for (const v of values) {
    h ^= v & 0xffffffff;
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h;
}

export class FakeEngine implements Engine {
  readonly tokenizer = new FakeTokenizer();
  /** Every request the engine received, for asserting what the server passed. */
  readonly requests: GenerationRequest[] = [];
  /** Every token list embed() received. */
  readonly embedRequests: number[][] = [];
  private readonly loaded: LoadedModel[];
  private readonly slots: number;
  private readonly maxQueue: number;
  private active = 0;
  private readonly waiting: (() => void)[] = [];
  private paused: { promise: Promise<void>; release: () => void } | null = null;
  private promptTotal = 0;
  private completionTotal = 0;
  private tokensPerSecond = 0;
  disposed = false;

  constructor(private readonly opts: FakeEngineOptions = {}) {
    this.slots = opts.slots ?? 1;
    this.maxQueue = opts.maxQueue ?? 8;
    this.loaded = (opts.models ?? ['fake-model']).map((id) => this.makeModel(id));
  }

  models(): LoadedModel[] {
    return this.loaded;
  }
  get(id: string): LoadedModel | undefined {
    return this.loaded.find((m) => m.info.id === id);
  }
  /** Debt-ledger totals of the constrained generations (as the real engine reports them). */
  private readonly ledgerTotals = { opened: 0, closed: 0, forced: 0, forcedSteps: 0 };

  stats(): EngineStats {
    return {
      queueDepth: this.waiting.length,
      activeGenerations: this.active,
      promptTokensTotal: this.promptTotal,
      completionTokensTotal: this.completionTotal,
      recentTokensPerSecond: this.tokensPerSecond,
      ledger: { ...this.ledgerTotals },
    };
  }
  systemInfo(): Record<string, unknown> {
    return { isa: 'fake', threads: 1 };
  }
  async dispose(): Promise<void> {
    this.disposed = true;
  }

  /** Generations stop before their next token until resume() (tests of /health and disconnects). */
  pause(): void {
    if (this.paused !== null) return;
    let release!: () => void;
    const promise = new Promise<void>((resolve) => {
      release = resolve;
    });
    this.paused = { promise, release };
  }
  resume(): void {
    this.paused?.release();
    this.paused = null;
  }

  private makeModel(id: string): LoadedModel {
    const info: ModelInfo = {
      id,
      path: `/fake/${id}.gguf`,
      architecture: 'fake',
      created: 1_700_000_000,
      provenance: 'test double (fake engine)',
      nVocab: this.tokenizer.vocabSize,
      nEmbd: 8,
      nLayer: 1,
      contextLength: this.opts.contextLength ?? 4096,
      tensorBytes: 0,
    };
    return {
      info,
      tokenizer: this.tokenizer,
      applyChatTemplate: (messages: ChatMessage[], o: { addGenerationPrompt: boolean }) =>
        '<s>' +
        messages.map((m) => `<|im_start|>${m.role}\n${m.content}<|im_end|>\n`).join('') +
        (o.addGenerationPrompt ? '<|im_start|>assistant\n' : ''),
      generate: (req: GenerationRequest) => this.generate(req),
      embed: (tokens: number[], signal: AbortSignal, continuation?: boolean) => this.embed(info, tokens, signal, continuation === true),
    };
  }

  private async embed(info: ModelInfo, tokens: number[], signal: AbortSignal, continuation: boolean): Promise<Float32Array> {
    if (tokens.length === 0) throw new InvalidRequestError('the input is empty', 'input');
    if (tokens.length > info.contextLength) {
      throw new InvalidRequestError(`the input has ${tokens.length} tokens (context ${info.contextLength})`, 'input', 'context_length_exceeded');
    }
    this.embedRequests.push([...tokens]);
    await this.acquire(signal, continuation);
    try {
      await nextTick();
      if (signal.aborted) throw new AbortedError();
      const acc = new Float64Array(info.nEmbd);
      for (const [t, id] of tokens.entries()) {
        for (let c = 0; c < acc.length; c++) acc[c] = acc[c]! + (hash([t, id, c]) / 2 ** 32 - 0.5);
      }
      return Float32Array.from(acc, (x) => x / tokens.length);
    } finally {
      this.release();
    }
  }

  private async acquire(signal: AbortSignal, continuation = false): Promise<void> {
    if (this.active < this.slots) {
      this.active++;
      return;
    }
    if (!continuation && this.waiting.length >= this.maxQueue) throw new QueueFullError('the request queue is full', 2);
    await new Promise<void>((resolve, reject) => {
      const wake = (): void => {
        signal.removeEventListener('abort', onAbort);
        this.active++;
        resolve();
      };
      const onAbort = (): void => {
        this.waiting.splice(this.waiting.indexOf(wake), 1);
        reject(new AbortedError());
      };
      this.waiting.push(wake);
      signal.addEventListener('abort', onAbort, { once: true });
    });
  }

  private release(): void {
    this.active--;
    this.waiting.shift()?.();
  }

  /** The token ids the model "writes": a script ends with EOS, the default text runs to maxTokens. */
  private output(req: GenerationRequest): number[] {
    if (req.grammar !== undefined) return this.constrained(req, this.unconstrained(req));
    return this.unconstrained(req);
  }

  /**
   * Under a grammar the "model" prefers its own next byte, but the real
   * grammar engine and debt ledger decide what is allowed (greedy choice).
   */
  private constrained(req: GenerationRequest, wanted: number[]): number[] {
    const ledger = new DebtLedger(new Matcher(compileConstraint(req.grammar!, this.tokenizer)), this.tokenizer, req.maxTokens, undefined, req.maxTokensParam);
    const out: number[] = [];
    const logits = new Float32Array(this.tokenizer.vocabSize);
    for (let i = 0; i < req.maxTokens; i++) {
      logits.fill(0);
      const want = wanted[i];
      if (want !== undefined) logits[want] = 10;
      ledger.constrain(logits, req.maxTokens - i);
      const id = argmax(logits);
      out.push(id);
      if (this.tokenizer.stopIds.has(id)) break;
      ledger.accept(id);
    }
    const t = ledger.telemetry();
    this.ledgerTotals.opened += t.opened;
    this.ledgerTotals.closed += t.closed;
    this.ledgerTotals.forced += t.forced;
    this.ledgerTotals.forcedSteps += t.forcedSteps;
    return out;
  }

  private unconstrained(req: GenerationRequest): number[] {
    if (this.opts.script !== undefined) return [...utf8.encode(this.opts.script(req)), EOS];
    const s = req.sampling;
    const seed = s.temperature === 0 ? 0 : (s.seed ?? Math.floor(Math.random() * 2 ** 31));
    const start = hash([...req.promptTokens, seed]) % PANGRAMS.length;
    const text = (PANGRAMS.slice(start) + PANGRAMS.repeat(Math.ceil(req.maxTokens / PANGRAMS.length) + 1)).slice(0, req.maxTokens);
    return [...utf8.encode(text)];
  }

  private logprob(id: number, k: number): ChosenLogprob {
    const entry = (t: number, lp: number) => ({ id: t, token: this.tokenizer.decode([t]), bytes: [...this.tokenizer.tokenBytes(t)], logprob: lp });
    const chosen = -0.1 - (id % 7) * 0.25;
    const top = Array.from({ length: k }, (_, j) => entry(j === 0 ? id : (id + j) % 256, j === 0 ? chosen : chosen - j));
    return { ...entry(id, chosen), topLogprobs: top };
  }

  private async *generate(req: GenerationRequest): AsyncGenerator<GenerationEvent, void, undefined> {
    this.requests.push(req);
    const queuedAt = performance.now();
    await this.acquire(req.signal, req.continuation === true);
    const started = performance.now();
    try {
      this.promptTotal += req.promptTokens.length;
      const ids = this.output(req);
      const decoder = this.tokenizer.createStreamDecoder({ skipSpecial: true });
      let pending = '';
      let pendingLogprobs: ChosenLogprob[] = [];
      let produced = 0;
      let finishReason: 'stop' | 'length' = 'length';
      for (const id of ids) {
        if (produced >= req.maxTokens) break;
        if (this.paused !== null) await abortable(this.paused.promise, req.signal);
        await nextTick();
        if (req.signal.aborted) throw new AbortedError();
        if (this.tokenizer.stopIds.has(id)) {
          finishReason = 'stop';
          break;
        }
        produced++;
        this.completionTotal++;
        pending += decoder.push(id);
        if (req.topLogprobs !== null) pendingLogprobs.push(this.logprob(id, req.topLogprobs));
        const hit = firstStop(pending, req.stop);
        if (hit !== null) {
          pending = pending.slice(0, hit);
          finishReason = 'stop';
          break;
        }
        const keep = heldBack(pending, req.stop);
        const out = pending.slice(0, pending.length - keep);
        if (out !== '') {
          yield { kind: 'delta', text: out, logprobs: pendingLogprobs };
          pending = pending.slice(out.length);
          pendingLogprobs = [];
        }
      }
      pending += finishReason === 'length' ? decoder.flush() : '';
      if (pending !== '' || pendingLogprobs.length > 0) yield { kind: 'delta', text: pending, logprobs: pendingLogprobs };
      const decodeMs = performance.now() - started;
      this.tokensPerSecond = decodeMs > 0 ? (produced * 1000) / decodeMs : 0;
      yield {
        kind: 'done',
        finishReason,
        promptTokens: req.promptTokens.length,
        completionTokens: produced,
        ...(req.promptLogprobs
          ? { promptLogprobs: req.promptTokens.map((id, i) => (i === 0 ? null : this.logprob(id, req.topLogprobs ?? 0))) }
          : {}),
        ...(this.opts.meanLoops !== undefined && produced > 0 ? { meanLoops: this.opts.meanLoops(req) } : {}),
        timings: { queuedMs: started - queuedAt, prefillMs: 0, decodeMs },
      };
    } finally {
      this.release();
    }
  }
}

const nextTick = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

function abortable(promise: Promise<void>, signal: AbortSignal): Promise<void> {
  if (signal.aborted) return Promise.reject(new AbortedError());
  return new Promise((resolve, reject) => {
    const onAbort = (): void => reject(new AbortedError());
    signal.addEventListener('abort', onAbort, { once: true });
    promise.then(() => {
      signal.removeEventListener('abort', onAbort);
      resolve();
    }, reject);
  });
}

function firstStop(text: string, stops: readonly string[]): number | null {
  let best: number | null = null;
  for (const s of stops) {
    const at = text.indexOf(s);
    if (at >= 0 && (best === null || at < best)) best = at;
  }
  return best;
}

/** Length of the longest suffix of text that is a proper prefix of some stop sequence. */
function heldBack(text: string, stops: readonly string[]): number {
  let keep = 0;
  for (const s of stops) {
    for (let len = Math.min(s.length - 1, text.length); len > keep; len--) {
      if (text.endsWith(s.slice(0, len))) {
        keep = len;
        break;
      }
    }
  }
  return keep;
}
