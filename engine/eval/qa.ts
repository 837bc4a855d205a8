/**
 * Question answering through the serving path: a question becomes the prompt
 * a one-message /v1/chat/completions request would get (chat template,
 * special tokens recognised, BOS prepended when missing — server/prompt.ts
 * chatPromptTokens), and the answer is the engine's greedy generation
 * (temperature 0) of at most maxTokens, stopped by the end-of-turn token.
 */
import type { ArithmeticProblem } from '../training/data/arithmetic.ts';
import type { ExpectedSense } from '../training/data/wordnet-chats.ts';
import type { FinishReason, LoadedModel, SamplingOptions } from '../types.ts';
import { rate, scoreArithmetic, scoreDefinition, type ArithmeticScore, type DefinitionScore } from './scoring.ts';

/** The server's sampling for `temperature: 0` and nothing else set. */
const GREEDY: SamplingOptions = {
  temperature: 0,
  topP: 1,
  topK: 0,
  minP: 0,
  presencePenalty: 0,
  frequencyPenalty: 0,
  repetitionPenalty: 1,
  logitBias: new Map(),
  seed: 0,
};

/** The prompt tokens of a chat request with one user message (server/prompt.ts chatPromptTokens). */
export function chatPromptIds(model: LoadedModel, question: string): number[] {
  const tok = model.tokenizer;
  const rendered = model.applyChatTemplate([{ role: 'user', content: question }], { addGenerationPrompt: true });
  const ids = tok.encode(rendered, { parseSpecial: true });
  return tok.bosId === null || ids[0] === tok.bosId ? ids : [tok.bosId, ...ids];
}

export interface Answer {
  text: string;
  completionTokens: number;
  finishReason: FinishReason;
}

/** `stop`: text stop sequences, as a request's `stop` (not included in the answer). */
export async function greedyAnswer(
  model: LoadedModel,
  question: string,
  maxTokens: number,
  signal: AbortSignal,
  stop: readonly string[] = [],
): Promise<Answer> {
  let text = '';
  const gen = model.generate({
    promptTokens: chatPromptIds(model, question),
    maxTokens,
    stop: [...stop],
    sampling: GREEDY,
    topLogprobs: null,
    promptLogprobs: false,
    signal,
  });
  for await (const ev of gen) {
    if (ev.kind === 'delta') text += ev.text;
    else return { text, completionTokens: ev.completionTokens, finishReason: ev.finishReason };
  }
  throw new Error('generation ended without a done event');
}

export interface DefinitionItem {
  word: string;
  question: string;
  expected: ExpectedSense[];
  /** The reference answer, as training phrases it. */
  reference: string;
}

export interface DefinitionResult extends DefinitionItem, DefinitionScore {
  got: string;
  completionTokens: number;
}

export interface ArithmeticItem {
  problem: ArithmeticProblem;
  question: string;
  reference: string;
}

export interface ArithmeticResult extends ArithmeticItem, ArithmeticScore {
  answer: string;
  completionTokens: number;
}

/** Asks every item in order (one context: the engine serialises them anyway). */
async function askAll<I extends { question: string }, R>(
  model: LoadedModel,
  items: readonly I[],
  gen: { maxTokens: number; signal: AbortSignal; stop?: readonly string[] },
  score: (item: I, a: Answer) => R,
): Promise<R[]> {
  const out: R[] = [];
  for (const item of items) out.push(score(item, await greedyAnswer(model, item.question, gen.maxTokens, gen.signal, gen.stop)));
  return out;
}

/**
 * Definition answers end at their "Example:" line: only the lines before it
 * are scored (definitionPart), and stopping there spares a trained model's
 * example sentence, which would often run into maxTokens anyway.
 */
const DEFINITION_STOP = ['\nExample:'];

export function askDefinitions(model: LoadedModel, items: readonly DefinitionItem[], maxTokens: number, signal: AbortSignal): Promise<DefinitionResult[]> {
  return askAll(model, items, { maxTokens, signal, stop: DEFINITION_STOP }, (it, a) => ({
    ...it,
    ...scoreDefinition(a.text, it.word, it.expected, it.reference),
    got: a.text,
    completionTokens: a.completionTokens,
  }));
}

export function askArithmetic(model: LoadedModel, items: readonly ArithmeticItem[], maxTokens: number, signal: AbortSignal): Promise<ArithmeticResult[]> {
  return askAll(model, items, { maxTokens, signal }, (it, a) => ({
    ...it,
    ...scoreArithmetic(a.text, it.problem.result, it.reference),
    answer: a.text,
    completionTokens: a.completionTokens,
  }));
}

export interface DefinitionSummary {
  n: number;
  /** Share with content-word F1 ≥ RECOGNISED_F1. */
  recognised: number;
  meanOverlap: number;
  /** Share whose first line starts with "<word> (<leading pos>):". */
  posExact: number;
  /** Share whose definition lines equal the reference's. */
  exact: number;
}

export function summarizeDefinitions(rs: readonly DefinitionResult[]): DefinitionSummary {
  return {
    n: rs.length,
    recognised: rate(rs.map((r) => r.recognised)),
    meanOverlap: rs.length === 0 ? 0 : rs.reduce((a, r) => a + r.overlap, 0) / rs.length,
    posExact: rate(rs.map((r) => r.posExact)),
    exact: rate(rs.map((r) => r.exact)),
  };
}

export interface ArithmeticSummary {
  n: number;
  /** Share whose extracted number equals the result. */
  correct: number;
  /** Share whose whole answer equals the reference. */
  exact: number;
  /** Per operator: items and share correct. */
  byOp: Record<string, { n: number; correct: number }>;
}

export function summarizeArithmetic(rs: readonly ArithmeticResult[]): ArithmeticSummary {
  const byOp: Record<string, { n: number; correct: number }> = {};
  for (const op of ['+', '-', '*']) {
    const of = rs.filter((r) => r.problem.op === op);
    if (of.length > 0) byOp[op] = { n: of.length, correct: rate(of.map((r) => r.correct)) };
  }
  return { n: rs.length, correct: rate(rs.map((r) => r.correct)), exact: rate(rs.map((r) => r.exact)), byOp };
}
