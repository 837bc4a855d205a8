/**
 * Request schemas (zod v4) for the OpenAI-compatible routes. Optional fields
 * accept null as "absent" because many clients send explicit nulls. Unknown
 * fields are stripped, matching the OpenAI API's tolerance.
 *
 * Cross-field rules that zod cannot express as one field (top_logprobs needs
 * logprobs, stream_options needs stream) live in the route helpers, which
 * report them with the right param.
 */
import { z } from 'zod';
import { GRAMMAR_MODES } from '../engine/grammar/modes.ts';
import { VALVE_MODES } from '../engine/valve/valve.ts';

const MAX_N = 8;
const MAX_STOP = 4;

const tokenId = z.int().min(0);

/**
 * OpenAI takes any int64 seed. JSON numbers past 2^53 arrive rounded, but
 * they are still integers and still reproducible, so the whole int64 range is
 * accepted (generation.ts reduces it for the sampler); fractions are not.
 */
const seedSchema = z
  .number()
  .refine(Number.isInteger, { error: 'expected an integer' })
  .refine((n) => Math.abs(n) <= 2 ** 63, { error: 'must be a 64-bit integer' });

/** Sampling and decoding fields shared by chat and completions. */
const samplingFields = {
  model: z.string().min(1),
  stream: z.boolean().nullish(),
  stream_options: z.object({ include_usage: z.boolean().nullish() }).nullish(),
  n: z.int().min(1).max(MAX_N).nullish(),
  stop: z
    .union([z.string(), z.array(z.string()).max(MAX_STOP)], { error: `expected a string or an array of up to ${MAX_STOP} strings` })
    .nullish(),
  temperature: z.number().min(0).max(2).nullish(),
  top_p: z.number().min(0).max(1).nullish(),
  seed: seedSchema.nullish(),
  logit_bias: z
    .record(z.string().regex(/^\d+$/, { error: 'keys must be token ids (decimal strings)' }), z.number().min(-100).max(100))
    .nullish(),
  presence_penalty: z.number().min(-2).max(2).nullish(),
  frequency_penalty: z.number().min(-2).max(2).nullish(),
  // Extensions beyond the OpenAI API (llama.cpp / vLLM names).
  top_k: z.int().min(0).nullish(),
  min_p: z.number().min(0).max(1).nullish(),
  repetition_penalty: z.number().gt(0).max(10).nullish(),
  // braid: entropy-valve mode of Parcae looping models (engine/valve/); ignored by other models.
  mode: z.enum(VALVE_MODES).nullish(),
};

export type SamplingFields = z.output<z.ZodObject<typeof samplingFields>>;

const textPart = z.object({
  type: z.literal('text', { error: "only 'text' content parts are supported by this server" }),
  text: z.string(),
});

const toolCallSchema = z.object({
  id: z.string(),
  type: z.literal('function'),
  function: z.object({ name: z.string(), arguments: z.string() }),
});

export const chatMessageSchema = z
  .object({
    role: z.enum(['system', 'developer', 'user', 'assistant', 'tool']),
    content: z.union([z.string(), z.array(textPart)], { error: 'expected a string or an array of text content parts' }).nullish(),
    name: z.string().nullish(),
    /** An assistant turn that called tools. */
    tool_calls: z.array(toolCallSchema).nullish(),
    /** A tool turn: which call it answers. */
    tool_call_id: z.string().nullish(),
  })
  .superRefine(checkMessageRole)
  .transform((m) => ({ ...m, content: m.content ?? null }));

/**
 * What OpenAI requires per role: only an assistant turn (which may consist of
 * tool calls) can go without content; a tool turn names the call it answers.
 * Each issue carries the field's input, so an absent field reads as missing.
 */
function checkMessageRole(
  m: { role: string; content?: string | unknown[] | null | undefined; tool_call_id?: string | null | undefined },
  ctx: z.core.$RefinementCtx,
): void {
  if (m.role !== 'assistant' && (m.content === null || m.content === undefined || (Array.isArray(m.content) && m.content.length === 0))) {
    const got = m.content === null ? 'null' : 'an empty array';
    ctx.addIssue({
      code: 'custom',
      path: ['content'],
      input: m.content,
      message: `a ${m.role} message needs content: expected a string or a non-empty array of text parts, got ${got}`,
    });
  }
  if (m.role === 'tool' && (m.tool_call_id === null || m.tool_call_id === undefined)) {
    ctx.addIssue({ code: 'custom', path: ['tool_call_id'], input: m.tool_call_id, message: 'a tool message needs the id of the tool call it answers' });
  }
}

export type ChatMessageInput = z.output<typeof chatMessageSchema>;

const jsonSchemaFormat = z.object({
  type: z.literal('json_schema'),
  json_schema: z.object({
    name: z.string().regex(/^[A-Za-z0-9_-]{1,64}$/, { error: 'expected 1-64 letters, digits, _ or -' }),
    description: z.string().nullish(),
    schema: z.record(z.string(), z.unknown()).nullish(),
    strict: z.boolean().nullish(),
  }),
});

/**
 * Output constraints (docs/structured-outputs.md): OpenAI's response_format
 * plus two extensions, grammar_mode (the seed's modes) and grammar (GBNF).
 */
const constraintFields = {
  response_format: z
    .discriminatedUnion('type', [z.object({ type: z.literal('text') }), z.object({ type: z.literal('json_object') }), jsonSchemaFormat], {
      error: "expected {type: 'text'}, {type: 'json_object'} or {type: 'json_schema', json_schema: {name, schema, strict}}",
    })
    .nullish(),
  grammar_mode: z.enum(GRAMMAR_MODES).nullish(),
  grammar: z.string().min(1).max(100_000).nullish(),
};

export type ConstraintFields = z.output<z.ZodObject<typeof constraintFields>>;

const toolSchema = z.object({
  type: z.literal('function'),
  function: z.object({
    name: z.string().regex(/^[A-Za-z0-9_-]{1,64}$/, { error: 'expected 1-64 letters, digits, _ or -' }),
    description: z.string().nullish(),
    parameters: z.record(z.string(), z.unknown()).nullish(),
    strict: z.boolean().nullish(),
  }),
});

export type ToolInput = z.output<typeof toolSchema>;

const toolChoiceSchema = z.union([
  z.enum(['none', 'auto', 'required']),
  z.object({ type: z.literal('function'), function: z.object({ name: z.string() }) }),
]);

export type ToolChoiceInput = z.output<typeof toolChoiceSchema>;

export const chatRequestSchema = z.object({
  ...samplingFields,
  ...constraintFields,
  tools: z.array(toolSchema).max(128).nullish(),
  tool_choice: toolChoiceSchema.nullish(),
  parallel_tool_calls: z.boolean().nullish(),
  messages: z.array(chatMessageSchema).min(1),
  // The pre-tools function calling: kept (not stripped) only so that the route can refuse it.
  functions: z.unknown().optional(),
  function_call: z.unknown().optional(),
  max_tokens: z.int().min(1).nullish(),
  max_completion_tokens: z.int().min(1).nullish(),
  logprobs: z.boolean().nullish(),
  top_logprobs: z.int().min(0).max(20).nullish(),
});

export type ChatRequest = z.output<typeof chatRequestSchema>;

export const completionRequestSchema = z.object({
  ...samplingFields,
  ...constraintFields,
  prompt: z.union(
    [z.string(), z.array(z.string()).min(1), z.array(tokenId).min(1), z.array(z.array(tokenId).min(1)).min(1)],
    { error: 'expected a string, an array of strings, an array of token ids or an array of token-id arrays' },
  ),
  // 0 is allowed: with echo + logprobs it scores the prompt without generating.
  max_tokens: z.int().min(0).nullish(),
  echo: z.boolean().nullish(),
  logprobs: z.int().min(0).max(5).nullish(),
  best_of: z.int().min(1).max(MAX_N).nullish(),
  suffix: z.string().nullish(),
});

export type CompletionRequest = z.output<typeof completionRequestSchema>;

export const tokenizeRequestSchema = z.object({
  model: z.string().min(1),
  text: z.string().nullish(),
  messages: z.array(chatMessageSchema).min(1).nullish(),
  /** Text: prepend BOS. Messages: the template decides, this is ignored. */
  add_special: z.boolean().nullish(),
  add_generation_prompt: z.boolean().nullish(),
});

export type TokenizeRequest = z.output<typeof tokenizeRequestSchema>;

export const detokenizeRequestSchema = z.object({
  model: z.string().min(1),
  tokens: z.array(tokenId),
});

export type DetokenizeRequest = z.output<typeof detokenizeRequestSchema>;
