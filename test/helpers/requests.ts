/**
 * Generation requests for tests that drive the engine directly: sampling with
 * every transform off (greedy unless a test sets a temperature) and a request
 * builder whose fields a test overrides.
 */
import type { GenerationRequest, SamplingOptions } from '../../engine/types.ts';

export const greedySampling: SamplingOptions = {
  temperature: 0,
  topP: 1,
  topK: 0,
  minP: 0,
  presencePenalty: 0,
  frequencyPenalty: 0,
  repetitionPenalty: 1,
  logitBias: new Map(),
  seed: undefined,
};

export function generationRequest(promptTokens: number[], over: Partial<GenerationRequest> = {}): GenerationRequest {
  return {
    promptTokens,
    maxTokens: 16,
    stop: [],
    sampling: greedySampling,
    topLogprobs: 0, // so that deltas carry the token ids
    promptLogprobs: false,
    signal: new AbortController().signal,
    ...over,
  };
}
