/**
 * A chat training example: the OpenAI fine-tuning line format
 * `{"messages": [{"role", "content"}, …]}` as a typed value. Built-in sources
 * (WordNet, arithmetic) produce these, user JSONL files are validated into
 * them (chat-jsonl.ts), and encode.ts renders them with the chat template.
 */

export type ChatRole = 'system' | 'user' | 'assistant';
export const CHAT_ROLES: readonly ChatRole[] = ['system', 'user', 'assistant'];

export interface ChatTurn {
  role: ChatRole;
  content: string;
  /**
   * Assistant turns only: 0 = no loss on this reply (it stays as context), as
   * in OpenAI's fine-tuning format. Absent means 1.
   */
  weight?: 0 | 1;
}

export interface ChatExample {
  messages: ChatTurn[];
}

/** System prompts a share of built-in chats carry, so a system message does not throw the model off. */
const SYSTEM_PROMPTS = ['You are a helpful assistant.', 'Answer briefly.'];

/**
 * A one-question chat. `variant` is a stable number (a hash of the example's
 * key): about one in seven examples gets one of SYSTEM_PROMPTS.
 */
export function singleTurnChat(question: string, answer: string, variant: number): ChatExample {
  const messages: ChatTurn[] = [];
  if (variant % 7 === 0) messages.push({ role: 'system', content: SYSTEM_PROMPTS[(variant >>> 3) % SYSTEM_PROMPTS.length]! });
  messages.push({ role: 'user', content: question }, { role: 'assistant', content: answer });
  return { messages };
}
