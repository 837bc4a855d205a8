/**
 * POST /v1/completions (the legacy text API). Prompts may be text or token
 * ids, one or many; each prompt gets n choices, indexed prompt * n + i.
 * `echo` + `logprobs` returns the prompt tokens' log-probabilities too, which
 * makes perplexity measurable over HTTP.
 */
import { Hono } from 'hono';
import type { ChosenLogprob, FinishReason, GenerationRequest, LoadedModel } from '../../engine/types.ts';
import { outputGrammar } from '../constraints.ts';
import { invalidRequest } from '../errors.ts';
import { checkStreamOptions, collect, requestAbort, samplingOptions, startGeneration, stopSequences, UsageTally } from '../generation.ts';
import { responseId, systemFingerprint, unixSeconds } from '../ids.ts';
import { LegacyLogprobsBuilder, type LegacyLogprobs } from '../logprobs.ts';
import { checkTokenIds, resolveMaxTokens, withBos } from '../prompt.ts';
import { checkTextCanFit } from '../text-fits.ts';
import { completionRequestSchema, type CompletionRequest } from '../schemas.ts';
import { sseResponse } from '../sse.ts';
import type { AppEnv, Deps } from '../types.ts';
import { readJson, resolveModel } from '../validate.ts';

/** OpenAI's default for this endpoint. */
const DEFAULT_MAX_TOKENS = 16;

interface Prompt {
  /** What `echo` returns: the text as sent, or the decoded ids. */
  text: string;
  tokens: number[];
  /** We prepended BOS: its (null) logprob entry is not echoed, since its text is not in `text`. */
  addedBos: boolean;
}

function normalizePrompts(model: LoadedModel, prompt: CompletionRequest['prompt']): Prompt[] {
  const tok = model.tokenizer;
  const fromText = (text: string, i: number): Prompt => {
    checkTextCanFit(tok, [text], model.info.contextLength, typeof prompt === 'string' ? 'prompt' : `prompt[${i}]`);
    const ids = tok.encode(text);
    const tokens = withBos(tok, ids);
    return { text, tokens, addedBos: tokens.length !== ids.length };
  };
  const fromIds = (ids: number[], param: string): Prompt => {
    checkTokenIds(tok, ids, param);
    return { text: tok.decode(ids), tokens: ids, addedBos: false };
  };
  let prompts: Prompt[];
  if (typeof prompt === 'string') prompts = [fromText(prompt, 0)];
  else if (prompt.every((p): p is string => typeof p === 'string')) prompts = prompt.map(fromText);
  else if (prompt.every((p): p is number => typeof p === 'number')) prompts = [fromIds(prompt, 'prompt')];
  else prompts = (prompt as number[][]).map((ids, i) => fromIds(ids, `prompt[${i}]`));
  for (const [i, p] of prompts.entries()) {
    if (p.tokens.length === 0) throw invalidRequest(`Prompt ${i} is empty (it has no tokens).`, 'prompt');
  }
  return prompts;
}

function checkOptions(body: CompletionRequest): void {
  if (body.suffix !== null && body.suffix !== undefined && body.suffix !== '') {
    throw invalidRequest("'suffix' is not supported: braid's models have no fill-in-the-middle mode.", 'suffix', 'unsupported_parameter');
  }
  const n = body.n ?? 1;
  if (body.best_of !== null && body.best_of !== undefined && body.best_of !== n) {
    throw invalidRequest(`'best_of' must be omitted or equal to 'n' (${n}): this server does not rank candidates.`, 'best_of', 'unsupported_parameter');
  }
  if (body.stream === true && body.echo === true && body.logprobs !== null && body.logprobs !== undefined) {
    throw invalidRequest("'echo' with 'logprobs' is not supported when streaming; send the request with stream: false.", 'echo', 'unsupported_parameter');
  }
}

export function completionRoutes({ engine }: Deps): Hono<AppEnv> {
  return new Hono<AppEnv>().post('/v1/completions', async (c) => {
    const body = await readJson(c, completionRequestSchema);
    const model = resolveModel(engine, body.model);
    checkOptions(body);
    const includeUsage = checkStreamOptions(body);
    const prompts = normalizePrompts(model, body.prompt);
    const n = body.n ?? 1;
    const echo = body.echo === true;
    const topLogprobs = body.logprobs ?? null;
    const stop = stopSequences(body.stop);
    const maxTokens = prompts.map((p) =>
      resolveMaxTokens(body.max_tokens, DEFAULT_MAX_TOKENS, p.tokens.length, model.info.contextLength, 'max_tokens', 'prompt'),
    );
    samplingOptions(body, 0, model.tokenizer); // validates logit_bias before any work
    const grammar = outputGrammar(body);
    const abort = requestAbort(c);
    const requestFor = (p: number, i: number): GenerationRequest => ({
      promptTokens: prompts[p]!.tokens,
      maxTokens: maxTokens[p]!,
      stop,
      sampling: samplingOptions(body, i, model.tokenizer),
      topLogprobs,
      promptLogprobs: echo && topLogprobs !== null,
      signal: abort.signal,
      ...(grammar === undefined ? {} : { grammar }),
      ...(body.mode === null || body.mode === undefined ? {} : { mode: body.mode }),
    });
    const head = {
      id: responseId('cmpl'),
      object: 'text_completion' as const,
      created: unixSeconds(),
      model: model.info.id,
      system_fingerprint: systemFingerprint(model.info),
    };
    if (body.stream !== true) {
      const choices = [];
      const tally = new UsageTally();
      for (const [p, prompt] of prompts.entries()) {
        tally.addPrompt(prompt.tokens.length);
        for (let i = 0; i < n; i++) {
          const r = await collect(model, requestFor(p, i));
          tally.addChoice(r.completionTokens, r.meanLoops);
          let logprobs: LegacyLogprobs | null = null;
          if (topLogprobs !== null) {
            const builder = new LegacyLogprobsBuilder(echo ? 0 : prompt.text.length);
            if (echo) addPromptLogprobs(builder, model, prompt, r.promptLogprobs);
            for (const t of r.logprobs) builder.add(t);
            logprobs = builder.take();
          }
          choices.push({ text: (echo ? prompt.text : '') + r.text, index: p * n + i, logprobs, finish_reason: r.finishReason });
        }
      }
      return c.json({ ...head, choices, usage: tally.usage() });
    }

    const chunk = (choices: { text: string; index: number; logprobs: LegacyLogprobs | null; finish_reason: FinishReason | null }[], extra = {}) => ({
      ...head,
      choices,
      ...(includeUsage ? { usage: null } : {}),
      ...extra,
    });
    // Started before the first byte so a full queue is a 503, not an error event.
    const first = await startGeneration(model, requestFor(0, 0));
    return sseResponse(c, abort, async (send) => {
      const tally = new UsageTally();
      for (const [p, prompt] of prompts.entries()) {
        tally.addPrompt(prompt.tokens.length);
        for (let i = 0; i < n; i++) {
          const index = p * n + i;
          const gen = p === 0 && i === 0 ? first : await startGeneration(model, requestFor(p, i));
          const builder = new LegacyLogprobsBuilder(prompt.text.length);
          try {
            if (echo) await send(chunk([{ text: prompt.text, index, logprobs: null, finish_reason: null }]));
            for await (const event of gen.events) {
              if (event.kind === 'delta') {
                if (event.text === '' && event.logprobs.length === 0) continue;
                for (const t of event.logprobs) builder.add(t);
                await send(chunk([{ text: event.text, index, logprobs: topLogprobs === null ? null : builder.take(), finish_reason: null }]));
              } else {
                tally.addChoice(event.completionTokens, event.meanLoops);
                await send(chunk([{ text: '', index, logprobs: null, finish_reason: event.finishReason }]));
              }
            }
          } finally {
            await gen.close();
          }
        }
      }
      if (includeUsage) await send(chunk([], { usage: tally.usage() }));
    });
  });
}

/** Echoed prompt tokens: the first scored one has no context, so its logprob is null. */
function addPromptLogprobs(
  builder: LegacyLogprobsBuilder,
  model: LoadedModel,
  prompt: Prompt,
  entries: (ChosenLogprob | null)[] | undefined,
): void {
  if (entries === undefined) throw new Error('engine returned no prompt logprobs although they were requested');
  entries.forEach((entry, pos) => {
    if (pos === 0 && prompt.addedBos) return;
    if (entry === null) builder.addUnscored(model.tokenizer.decode([prompt.tokens[pos] ?? 0]));
    else builder.add(entry);
  });
}
