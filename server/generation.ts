/**
 * From validated request fields to engine calls: sampling options, per-choice
 * seeds, the request-scoped AbortSignal, and the two ways of consuming a
 * generation (collect everything, or start it and stream its events).
 */
import type { Context } from 'hono';
import type {
  ChosenLogprob,
  FinishReason,
  GenerationEvent,
  GenerationRequest,
  LoadedModel,
  SamplingOptions,
  Tokenizer,
} from '../engine/types.ts';
import { invalidRequest } from './errors.ts';
import type { SamplingFields } from './schemas.ts';

/**
 * One AbortController per request, aborted when the client disconnects (the
 * node adapter aborts the request's signal when the socket closes before the
 * response finished). Streaming routes also abort it from the SSE onAbort.
 */
export function requestAbort(c: Context): AbortController {
  const controller = new AbortController();
  const signal = c.req.raw.signal;
  if (signal.aborted) controller.abort(signal.reason);
  else signal.addEventListener('abort', () => controller.abort(signal.reason), { once: true });
  return controller;
}

/**
 * Choice i of n gets seed + i, so n > 1 gives distinct samples while the
 * whole response stays reproducible for a fixed seed. OpenAI takes any int64
 * seed but the sampler's Prng takes safe integers, so a sum outside them is
 * reduced modulo 2^53 (exactly, in BigInt): still distinct per choice.
 */
export function choiceSeed(seed: number, choiceIndex: number): number {
  const sum = seed + choiceIndex;
  if (Number.isSafeInteger(sum)) return sum;
  const space = 2n ** 53n;
  return Number((((BigInt(seed) + BigInt(choiceIndex)) % space) + space) % space);
}

/** The engine's sampling options for choice i of a request. */
export function samplingOptions(fields: SamplingFields, choiceIndex: number, tokenizer: Tokenizer): SamplingOptions {
  const logitBias = new Map<number, number>();
  for (const [key, bias] of Object.entries(fields.logit_bias ?? {})) {
    const id = Number(key);
    if (!Number.isSafeInteger(id) || id >= tokenizer.vocabSize) {
      throw invalidRequest(`Invalid 'logit_bias': token id ${key} is outside the vocabulary (size ${tokenizer.vocabSize}).`, 'logit_bias', 'invalid_token_id');
    }
    logitBias.set(id, bias);
  }
  const seed = fields.seed === null || fields.seed === undefined ? undefined : choiceSeed(fields.seed, choiceIndex);
  return {
    temperature: fields.temperature ?? 1,
    topP: fields.top_p ?? 1,
    topK: fields.top_k ?? 0,
    minP: fields.min_p ?? 0,
    presencePenalty: fields.presence_penalty ?? 0,
    frequencyPenalty: fields.frequency_penalty ?? 0,
    repetitionPenalty: fields.repetition_penalty ?? 1,
    logitBias,
    seed,
  };
}

/** OpenAI's `stop`: a string or up to four; empty strings would stop immediately, so they are dropped. */
export function stopSequences(stop: string | string[] | null | undefined): string[] {
  if (stop === null || stop === undefined) return [];
  return (typeof stop === 'string' ? [stop] : stop).filter((s) => s !== '');
}

/** Cross-field rule shared by both endpoints. */
export function checkStreamOptions(fields: SamplingFields): boolean {
  const includeUsage = fields.stream_options?.include_usage === true;
  if (fields.stream_options !== null && fields.stream_options !== undefined && fields.stream !== true) {
    throw invalidRequest("The 'stream_options' parameter is only allowed when 'stream' is enabled.", 'stream_options');
  }
  return includeUsage;
}

export interface ChoiceResult {
  text: string;
  logprobs: ChosenLogprob[];
  finishReason: FinishReason;
  promptTokens: number;
  completionTokens: number;
  promptLogprobs: (ChosenLogprob | null)[] | undefined;
  /** Parcae looping models: mean loop count of the sampled steps. */
  meanLoops: number | undefined;
}

/** OpenAI usage plus braid's extension field for looping models. */
export interface Usage {
  prompt_tokens: number;
  completion_tokens: number;
  total_tokens: number;
  /** Parcae looping models only: mean loop count per generated token over all choices. */
  braid_mean_loops?: number;
}

/**
 * Usage of one response: token counts plus, when any choice came from a looping model, the
 * mean loop count over all sampled steps (each choice's mean weighted by its completion tokens).
 */
export class UsageTally {
  private prompt = 0;
  private completion = 0;
  private loopSteps = 0;
  private loopSum = 0;
  private looping = false;

  addPrompt(tokens: number): void {
    this.prompt += tokens;
  }

  addChoice(completionTokens: number, meanLoops: number | undefined): void {
    this.completion += completionTokens;
    if (meanLoops === undefined) return;
    this.looping = true;
    this.loopSteps += completionTokens;
    this.loopSum += meanLoops * completionTokens;
  }

  usage(): Usage {
    const u: Usage = {
      prompt_tokens: this.prompt,
      completion_tokens: this.completion,
      total_tokens: this.prompt + this.completion,
    };
    if (this.looping && this.loopSteps > 0) u.braid_mean_loops = this.loopSum / this.loopSteps;
    return u;
  }
}

/** Runs a generation to the end (non-streaming responses). */
export async function collect(model: LoadedModel, req: GenerationRequest): Promise<ChoiceResult> {
  let text = '';
  const logprobs: ChosenLogprob[] = [];
  for await (const event of model.generate(req)) {
    if (event.kind === 'delta') {
      text += event.text;
      logprobs.push(...event.logprobs);
    } else {
      return {
        text,
        logprobs,
        finishReason: event.finishReason,
        promptTokens: event.promptTokens,
        completionTokens: event.completionTokens,
        promptLogprobs: event.promptLogprobs,
        meanLoops: event.meanLoops,
      };
    }
  }
  throw new Error('engine generation ended without a done event');
}

export interface StartedGeneration {
  events: AsyncIterable<GenerationEvent>;
  /** Releases the engine's generation (its slot) even if events was never iterated. */
  close(): Promise<void>;
}

/**
 * Pulls the first event before any response byte is sent, so that a full
 * queue (QueueFullError on the first next()) or an invalid request still
 * becomes a proper HTTP status rather than an error inside an SSE stream.
 */
export async function startGeneration(model: LoadedModel, req: GenerationRequest): Promise<StartedGeneration> {
  const gen = model.generate(req);
  const first = await gen.next();
  async function* events(): AsyncGenerator<GenerationEvent, void, undefined> {
    if (first.done === true) return;
    yield first.value;
    yield* gen;
  }
  return {
    events: events(),
    close: async () => {
      await gen.return(undefined);
    },
  };
}
