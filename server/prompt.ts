/**
 * Request text → prompt token ids. The server tokenizes (the engine takes
 * token ids), so chat, completions and /v1/tokenize share these functions and
 * agree on counts: /v1/tokenize of some messages gives the same count as the
 * prompt_tokens a chat completion with those messages reports.
 */
import type { ChatMessage, LoadedModel, Tokenizer } from '../engine/types.ts';
import { invalidRequest } from './errors.ts';
import { LiteralText } from './literal-text.ts';
import { TOOL_CALL_CLOSE, TOOL_CALL_OPEN } from '../engine/grammar/tool-calls.ts';
import type { ChatMessageInput, ToolInput } from './schemas.ts';

/**
 * OpenAI's content forms (string, text parts, null for tool-calling assistants) → one string.
 * An assistant's tool_calls are written the way the model writes them
 * (engine/grammar/tool-calls.ts), so the model sees its own earlier calls.
 */
export function toChatMessages(messages: readonly ChatMessageInput[]): ChatMessage[] {
  return messages.map((m) => {
    let content = m.content === null ? '' : typeof m.content === 'string' ? m.content : m.content.map((p) => p.text).join('\n');
    if (m.role === 'assistant' && m.tool_calls !== null && m.tool_calls !== undefined && m.tool_calls.length > 0) {
      const calls = m.tool_calls.map((c) => `${TOOL_CALL_OPEN}{"name": ${JSON.stringify(c.function.name)}, "arguments": ${c.function.arguments}}${TOOL_CALL_CLOSE}`);
      content = [content, ...calls].filter((x) => x !== '').join('\n');
    }
    const out: ChatMessage = { role: m.role, content };
    if (m.name !== undefined && m.name !== null) out.name = m.name;
    return out;
  });
}

/** Tools offered to the model, as the system-prompt block Hermes-style models are trained on. */
function toolsSystemText(tools: readonly ToolInput[]): string {
  const list = tools.map((t) => JSON.stringify({ type: 'function', function: t.function })).join('\n');
  return (
    '# Tools\n\nYou may call one or more functions to assist with the user query.\n\n' +
    `You are provided with function signatures within <tools></tools> XML tags:\n<tools>\n${list}\n</tools>\n\n` +
    `For each function call, return a json object with function name and arguments within ${TOOL_CALL_OPEN}${TOOL_CALL_CLOSE} XML tags:\n` +
    `${TOOL_CALL_OPEN}{"name": <function-name>, "arguments": <args-json-object>}${TOOL_CALL_CLOSE}`
  );
}

/** Adds the tools block to the first system message, or as a new first system message. */
export function withTools(messages: ChatMessage[], tools: readonly ToolInput[] | null | undefined): ChatMessage[] {
  if (tools === null || tools === undefined || tools.length === 0) return messages;
  const block = toolsSystemText(tools);
  const first = messages[0];
  if (first !== undefined && (first.role === 'system' || first.role === 'developer')) {
    return [{ ...first, content: `${first.content}\n\n${block}` }, ...messages.slice(1)];
  }
  return [{ role: 'system', content: block }, ...messages];
}

/** The texts of a message that reach the prompt (content and tool-call arguments), for size checks. */
export function messageTexts(m: ChatMessageInput): string[] {
  const content = m.content === null ? [] : typeof m.content === 'string' ? [m.content] : m.content.map((p) => p.text);
  return [...content, ...(m.tool_calls ?? []).map((c) => c.function.arguments)];
}

/**
 * Prepends BOS when the tokenizer has one and the ids do not already start
 * with it (chat templates often write the BOS text themselves).
 */
export function withBos(tokenizer: Tokenizer, ids: number[]): number[] {
  if (tokenizer.bosId === null || ids[0] === tokenizer.bosId) return ids;
  return [tokenizer.bosId, ...ids];
}

/**
 * The chat template's rendering of the messages: the template's markers become
 * control tokens, while special-token text inside anything the caller wrote
 * (contents, names, tool calls and results, tool definitions) stays plain text.
 */
export function chatPromptTokens(
  model: LoadedModel,
  messages: readonly ChatMessageInput[],
  addGenerationPrompt = true,
  tools: readonly ToolInput[] | null = null,
): number[] {
  const literal = new LiteralText(model.tokenizer);
  const chat = withTools(
    toChatMessages(messages.map((m) => literal.protectMessage(m))),
    tools?.map((t) => literal.protectTool(t)),
  );
  const rendered = model.applyChatTemplate(chat, { addGenerationPrompt });
  return withBos(model.tokenizer, literal.encode(rendered));
}

/**
 * Plain text → ids. Special-token text in user input stays literal text
 * (no parseSpecial), so a prompt cannot forge control tokens.
 */
export function textPromptTokens(tokenizer: Tokenizer, text: string, addSpecial = true): number[] {
  const ids = tokenizer.encode(text);
  return addSpecial ? withBos(tokenizer, ids) : ids;
}

/** Every id must be inside the vocabulary; param names the field for the error. */
export function checkTokenIds(tokenizer: Tokenizer, ids: readonly number[], param: string): void {
  for (const [i, id] of ids.entries()) {
    if (id >= tokenizer.vocabSize) {
      throw invalidRequest(`Invalid '${param}': token id ${id} at position ${i} is outside the vocabulary (size ${tokenizer.vocabSize}).`, param, 'invalid_token_id');
    }
  }
}

/**
 * How many tokens to generate. An explicit request that does not fit the
 * context is an error (as OpenAI reports it); no request means "up to the
 * default, bounded by what is left of the context".
 */
export function resolveMaxTokens(
  requested: number | null | undefined,
  fallback: number | null,
  promptTokens: number,
  contextLength: number,
  param: string,
  promptParam: string,
): number {
  const room = contextLength - promptTokens;
  if (room <= 0 || (requested !== null && requested !== undefined && requested > room)) {
    const asked = requested ?? 1;
    throw invalidRequest(
      `This model's maximum context length is ${contextLength} tokens. However, you requested ${promptTokens + asked} tokens ` +
        `(${promptTokens} in the prompt, ${asked} for the completion). Please reduce the prompt or the completion length.`,
      room <= 0 ? promptParam : param, // OpenAI blames the prompt when it alone fills the context
      'context_length_exceeded',
    );
  }
  if (requested !== null && requested !== undefined) return requested;
  return fallback === null ? room : Math.min(fallback, room);
}
