/**
 * Request text → prompt token ids. The server tokenizes (the engine takes
 * token ids), so chat, completions and /v1/tokenize share these functions and
 * agree on counts: /v1/tokenize of some messages gives the same count as the
 * prompt_tokens a chat completion with those messages reports.
 */
import type { ChatMessage, LoadedModel, Tokenizer } from '../engine/types.ts';
import { invalidRequest } from './errors.ts';
import type { ChatMessageInput } from './schemas.ts';

/** OpenAI's content forms (string, text parts, null for tool-calling assistants) → one string. */
export function toChatMessages(messages: readonly ChatMessageInput[]): ChatMessage[] {
  return messages.map((m) => {
    const content = m.content === null ? '' : typeof m.content === 'string' ? m.content : m.content.map((p) => p.text).join('\n');
    const out: ChatMessage = { role: m.role, content };
    if (m.name !== undefined && m.name !== null) out.name = m.name;
    return out;
  });
}

/**
 * Prepends BOS when the tokenizer has one and the ids do not already start
 * with it (chat templates often write the BOS text themselves).
 */
export function withBos(tokenizer: Tokenizer, ids: number[]): number[] {
  if (tokenizer.bosId === null || ids[0] === tokenizer.bosId) return ids;
  return [tokenizer.bosId, ...ids];
}

/** The chat template's rendering of the messages, tokenized with special tokens recognised. */
export function chatPromptTokens(model: LoadedModel, messages: readonly ChatMessageInput[], addGenerationPrompt = true): number[] {
  const rendered = model.applyChatTemplate(toChatMessages(messages), { addGenerationPrompt });
  return withBos(model.tokenizer, model.tokenizer.encode(rendered, { parseSpecial: true }));
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
): number {
  const room = contextLength - promptTokens;
  if (room <= 0 || (requested !== null && requested !== undefined && requested > room)) {
    const asked = requested ?? 1;
    throw invalidRequest(
      `This model's maximum context length is ${contextLength} tokens. However, you requested ${promptTokens + asked} tokens ` +
        `(${promptTokens} in the prompt, ${asked} for the completion). Please reduce the prompt or the completion length.`,
      room <= 0 ? null : param,
      'context_length_exceeded',
    );
  }
  if (requested !== null && requested !== undefined) return requested;
  return fallback === null ? room : Math.min(fallback, room);
}
