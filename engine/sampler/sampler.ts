/**
 * One request's sampler: penalties and logit_bias on a copy of the logits,
 * log-probabilities for the client, then greedy or seeded random choice.
 */
import { InvalidRequestError } from '../errors.ts';
import type { SamplingOptions } from '../types.ts';
import { logSoftmax, topK } from './logprobs.ts';
import {
  TokenHistory,
  applyLogitBias,
  applyPresenceFrequency,
  applyRepetitionPenalty,
} from './penalties.ts';
import { Prng, randomSeed } from './prng.ts';
import { argmax, drawToken } from './truncate.ts';

export interface SampledToken {
  id: number;
  /** Present when logprobs were asked for. */
  logprob?: number;
  /** The k most likely alternatives, most likely first (when logprobs were asked for). */
  topLogprobs?: { id: number; logprob: number }[];
}

export class Sampler {
  private readonly history: TokenHistory;
  private readonly rng: Prng;

  /**
   * logprobsK: null for no logprobs, else how many alternatives to report.
   */
  constructor(
    private readonly opts: SamplingOptions,
    promptTokens: readonly number[],
    private readonly logprobsK: number | null,
  ) {
    this.history = new TokenHistory(promptTokens);
    this.rng = new Prng(opts.seed ?? randomSeed());
  }

  /**
   * Chooses the next token from the model's logits (not modified). `constrain`
   * (grammar mask, debt-ledger pressure) runs first on the working copy,
   * before penalties and logit_bias.
   */
  sample(logits: Float32Array, constrain?: (processed: Float32Array) => void): SampledToken {
    const o = this.opts;
    const processed = Float32Array.from(logits);
    constrain?.(processed);
    applyRepetitionPenalty(processed, this.history.recentIds(), o.repetitionPenalty);
    applyPresenceFrequency(processed, this.history.generatedCounts, o.presencePenalty, o.frequencyPenalty);
    applyLogitBias(processed, o.logitBias);

    // Drawn every step, greedy or not, so the random stream does not depend on
    // which steps happened to be greedy.
    const u = this.rng.next();
    const id = o.temperature <= 0 ? argmax(processed) : drawToken(processed, o, u);
    if (id < 0) throw new InvalidRequestError('logit_bias bans every token', 'logit_bias');

    if (this.logprobsK === null) return { id };
    // Reported logprobs are the log-softmax of the logits after penalties and
    // logit_bias but before temperature and truncation: they describe the
    // model's (adjusted) belief, not the sampling knobs.
    const lp = logSoftmax(processed);
    return { id, logprob: lp[id]!, topLogprobs: topK(lp, this.logprobsK) };
  }

  /** Records a token as generated (feeds the penalties of later steps). */
  accept(id: number): void {
    this.history.push(id);
  }
}

/** logprob of `id` and the k best alternatives under raw logits (prompt logprobs). */
export function rawLogprobs(
  logits: Float32Array,
  id: number,
  k: number,
): { logprob: number; topLogprobs: { id: number; logprob: number }[] } {
  const lp = logSoftmax(logits);
  return { logprob: lp[id] ?? -Infinity, topLogprobs: topK(lp, k) };
}
