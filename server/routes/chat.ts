/**
 * POST /v1/chat/completions. Choices of n > 1 run one after another (seed + i
 * each), streamed chunk by chunk or collected into one response.
 */
import { Hono } from 'hono';
import type { Grammar } from '../../engine/grammar/ir.ts';
import type { FinishReason, GenerationRequest, LoadedModel } from '../../engine/types.ts';
import { invalidRequest } from '../errors.ts';
import {
  checkStreamOptions,
  collect,
  requestAbort,
  samplingOptions,
  startGeneration,
  stopSequences,
  UsageTally,
  type StartedGeneration,
  type Usage,
} from '../generation.ts';
import { responseId, systemFingerprint, unixSeconds } from '../ids.ts';
import { chatLogprobs, type ChatLogprobs } from '../logprobs.ts';
import { outputGrammar, toolMode, type ToolMode } from '../constraints.ts';
import { parseToolCalls } from '../../engine/grammar/tool-calls.ts';
import { newCallId, ToolCallStream, type ChatToolCall, type ToolCallDelta } from '../tool-call-stream.ts';
import { chatPromptTokens, messageTexts, resolveMaxTokens } from '../prompt.ts';
import { checkTextCanFit } from '../text-fits.ts';
import { chatRequestSchema, type ChatRequest } from '../schemas.ts';
import { sseResponse } from '../sse.ts';
import type { AppEnv, Deps } from '../types.ts';
import { readJson, resolveModel } from '../validate.ts';

type ChatFinishReason = FinishReason | 'tool_calls';

/** Tool calls parsed out of a finished answer (null: the answer is text). */
function toolCallsOf(text: string, tools: ToolMode | null): ChatToolCall[] | null {
  if (tools === null) return null;
  const calls = parseToolCalls(text);
  return calls === null ? null : calls.map((c) => ({ id: newCallId(), type: 'function', function: c }));
}

const finishOf = (reason: FinishReason, hasCalls: boolean): ChatFinishReason => (hasCalls && reason === 'stop' ? 'tool_calls' : reason);

/**
 * The deprecated `functions` / `function_call` are refused rather than
 * dropped like other unknown fields: ignored, they would turn an expected
 * function call into a plain-text answer the client cannot tell apart.
 */
function rejectDeprecatedFunctions(body: ChatRequest): void {
  for (const [field, instead] of [['functions', 'tools'], ['function_call', 'tool_choice']] as const) {
    if (body[field] !== null && body[field] !== undefined) {
      throw invalidRequest(`'${field}' is deprecated and not supported; use '${instead}'.`, field, 'unsupported_parameter');
    }
  }
}

/**
 * Tools beside a response_format, as OpenAI allows (agent frameworks send both
 * when an agent has tools and a typed output): the answer is tool calls or
 * JSON in the format. A required or named tool_choice leaves no text answer,
 * so the format has nothing to shape there. The grammar extensions
 * (grammar_mode, GBNF) could start like a call, so they stay exclusive.
 */
function toolsAndAnswer(body: ChatRequest, tools: ToolMode, output: Grammar): Grammar {
  const extension = body.grammar !== null && body.grammar !== undefined ? 'grammar' : body.grammar_mode !== null && body.grammar_mode !== undefined ? 'grammar_mode' : null;
  if (extension !== null) {
    throw invalidRequest(`'tools' cannot be combined with '${extension}'; use response_format, or set tool_choice to 'none' to constrain a text answer.`, 'tools', 'unsupported_parameter');
  }
  return tools.forced ? tools.grammar : tools.withAnswer(output);
}

/** The per-choice engine request; everything but the seed is shared by the n choices. */
function requestFactory(
  model: LoadedModel,
  body: ChatRequest,
  signal: AbortSignal,
  tools: ToolMode | null,
): (choice: number) => GenerationRequest {
  if (body.top_logprobs !== null && body.top_logprobs !== undefined && body.logprobs !== true) {
    throw invalidRequest("'top_logprobs' requires 'logprobs' to be true.", 'top_logprobs');
  }
  const output = outputGrammar(body);
  const grammar = tools === null ? output : output === undefined ? tools.grammar : toolsAndAnswer(body, tools, output);
  checkTextCanFit(model.tokenizer, body.messages.flatMap(messageTexts), model.info.contextLength, 'messages');
  const promptTokens = chatPromptTokens(model, body.messages, true, tools === null ? null : (body.tools ?? null));
  const requested = body.max_completion_tokens ?? body.max_tokens;
  const param = body.max_completion_tokens !== null && body.max_completion_tokens !== undefined ? 'max_completion_tokens' : 'max_tokens';
  const maxTokens = resolveMaxTokens(requested, null, promptTokens.length, model.info.contextLength, param, 'messages');
  const stop = stopSequences(body.stop);
  const topLogprobs = body.logprobs === true ? (body.top_logprobs ?? 0) : null;
  // Validate sampling once up front (logit_bias ids) so errors come before any output.
  samplingOptions(body, 0, model.tokenizer);
  return (choice) => ({
    promptTokens,
    maxTokens,
    maxTokensParam: param,
    stop,
    sampling: samplingOptions(body, choice, model.tokenizer),
    continuation: choice > 0, // admitted once: a full queue does not fail choice 2 of 3
    topLogprobs,
    promptLogprobs: false,
    signal,
    ...(grammar === undefined ? {} : { grammar }),
    ...(body.mode === null || body.mode === undefined ? {} : { mode: body.mode }),
  });
}

export function chatRoutes({ engine }: Deps): Hono<AppEnv> {
  return new Hono<AppEnv>().post('/v1/chat/completions', async (c) => {
    const body = await readJson(c, chatRequestSchema);
    rejectDeprecatedFunctions(body);
    const model = resolveModel(engine, body.model);
    const includeUsage = checkStreamOptions(body);
    const abort = requestAbort(c);
    const tools = toolMode(body.tools, body.tool_choice, body.parallel_tool_calls);
    const requestFor = requestFactory(model, body, abort.signal, tools);
    const n = body.n ?? 1;
    const wantLogprobs = body.logprobs === true;
    const id = responseId('chatcmpl');
    const created = unixSeconds();
    const fingerprint = systemFingerprint(model.info);
    const head = (object: 'chat.completion' | 'chat.completion.chunk') => ({
      id,
      object,
      created,
      model: model.info.id,
      system_fingerprint: fingerprint,
    });

    if (body.stream !== true) {
      const choices = [];
      const tally = new UsageTally();
      for (let i = 0; i < n; i++) {
        const r = await collect(model, requestFor(i));
        if (i === 0) tally.addPrompt(r.promptTokens); // the same prompt for every choice: counted once
        tally.addChoice(r.completionTokens, r.meanLoops);
        const calls = toolCallsOf(r.text, tools);
        choices.push({
          index: i,
          message:
            calls === null
              ? { role: 'assistant' as const, content: r.text, refusal: null }
              : { role: 'assistant' as const, content: null, refusal: null, tool_calls: calls },
          logprobs: wantLogprobs ? chatLogprobs(r.logprobs) : null,
          finish_reason: finishOf(r.finishReason, calls !== null),
        });
      }
      return c.json({ ...head('chat.completion'), choices, usage: tally.usage() });
    }

    const chunk = (
      choices: { index: number; delta: Record<string, unknown>; logprobs: ChatLogprobs | null; finish_reason: ChatFinishReason | null }[],
      extra: { usage?: Usage | null } = {},
    ) => ({ ...head('chat.completion.chunk'), choices, ...(includeUsage ? { usage: null } : {}), ...extra });

    // Started before the first byte so a full queue is a 503, not an error event.
    const first = await startGeneration(model, requestFor(0));
    return sseResponse(c, abort, async (send) => {
      const tally = new UsageTally();
      for (let i = 0; i < n; i++) {
        const gen: StartedGeneration = i === 0 ? first : await startGeneration(model, requestFor(i));
        const calls = new ToolCallStream(tools !== null, tools?.forced ?? false);
        try {
          await send(chunk([{ index: i, delta: { role: 'assistant', content: '' }, logprobs: null, finish_reason: null }]));
          const out = async (r: { content: string; deltas: ToolCallDelta[] }, logprobs: ChatLogprobs | null) => {
            if (r.content !== '' || logprobs !== null) await send(chunk([{ index: i, delta: { content: r.content }, logprobs, finish_reason: null }]));
            for (const d of r.deltas) await send(chunk([{ index: i, delta: { tool_calls: [d] }, logprobs: null, finish_reason: null }]));
          };
          for await (const event of gen.events) {
            if (event.kind === 'delta') {
              if (event.text === '' && event.logprobs.length === 0) continue;
              await out(calls.push(event.text), wantLogprobs ? chatLogprobs(event.logprobs) : null);
            } else {
              if (i === 0) tally.addPrompt(event.promptTokens);
              tally.addChoice(event.completionTokens, event.meanLoops);
              await out(calls.finish(), null);
              await send(chunk([{ index: i, delta: {}, logprobs: null, finish_reason: finishOf(event.finishReason, calls.calls.length > 0) }]));
            }
          }
        } finally {
          await gen.close();
        }
      }
      if (includeUsage) await send(chunk([], { usage: tally.usage() }));
    });
  });
}
