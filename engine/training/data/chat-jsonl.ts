/**
 * Chat JSONL validation: one `{"messages": [{"role", "content"}, …]}` object
 * per line, roles system / user / assistant, at least one assistant message
 * that is trained on (weight 1, the default). Every problem is reported with
 * its 1-based line number so a user can fix the file in one pass; the
 * fine-tuning API returns the same list.
 */
import { CHAT_ROLES, type ChatExample, type ChatRole, type ChatTurn } from './chat-example.ts';

export interface ChatJsonlError {
  /** 1-based line number; 0 = the file as a whole. */
  line: number;
  message: string;
}

export type ChatJsonlResult = { ok: true; examples: ChatExample[] } | { ok: false; errors: ChatJsonlError[] };

/** Past this many, the rest are summed up in one last error (a wrong file fails on every line). */
export const MAX_REPORTED_ERRORS = 50;

function describe(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  return typeof v === 'string' ? `"${v.length > 40 ? v.slice(0, 40) + '…' : v}"` : typeof v;
}

/** The problems of one message, or its typed form. */
function checkMessage(m: unknown, at: string): string[] | ChatTurn {
  if (typeof m !== 'object' || m === null || Array.isArray(m)) return [`${at} must be an object, got ${describe(m)}`];
  const o = m as Record<string, unknown>;
  const problems: string[] = [];
  const role = o.role;
  if (typeof role !== 'string' || !(CHAT_ROLES as readonly string[]).includes(role)) {
    problems.push(`${at}.role must be one of ${CHAT_ROLES.join(', ')}, got ${role === undefined ? 'nothing' : describe(role)}`);
  }
  const content = o.content;
  if (typeof content !== 'string') problems.push(`${at}.content must be a string, got ${content === undefined ? 'nothing' : describe(content)}`);
  else if (content.trim().length === 0) problems.push(`${at}.content is empty`);
  const weight = o.weight;
  if (weight !== undefined && weight !== 0 && weight !== 1) problems.push(`${at}.weight must be 0 or 1, got ${describe(weight)}`);
  else if (weight !== undefined && role !== 'assistant') problems.push(`${at}.weight is only allowed on assistant messages`);
  if (problems.length > 0) return problems;
  const turn: ChatTurn = { role: role as ChatRole, content: content as string };
  if (weight === 0 || weight === 1) turn.weight = weight;
  return turn;
}

/** The problems of one parsed line, or its example. */
function checkExample(v: unknown): string[] | ChatExample {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return [`expected an object with a "messages" array, got ${describe(v)}`];
  const messages = (v as Record<string, unknown>).messages;
  if (messages === undefined) return ['missing "messages"'];
  if (!Array.isArray(messages)) return [`"messages" must be an array, got ${describe(messages)}`];
  if (messages.length === 0) return ['"messages" is empty'];
  const problems: string[] = [];
  const turns: ChatTurn[] = [];
  messages.forEach((m, i) => {
    const r = checkMessage(m, `messages[${i}]`);
    if (Array.isArray(r)) problems.push(...r);
    else turns.push(r);
  });
  if (problems.length > 0) return problems;
  // Without an assistant reply there is nothing to learn from the line; a reply of weight 0 is context only.
  if (!turns.some((t) => t.role === 'assistant')) return ['no assistant message (there would be nothing to train on)'];
  if (!turns.some((t) => t.role === 'assistant' && t.weight !== 0)) {
    return ['no assistant message with weight 1 (every reply has weight 0, so there would be nothing to train on)'];
  }
  return { messages: turns };
}

/**
 * Validates a chat JSONL file's text. Blank lines are skipped; anything else
 * must be one valid example.
 */
export function validateChatJsonl(text: string): ChatJsonlResult {
  const examples: ChatExample[] = [];
  const errors: ChatJsonlError[] = [];
  let failed = 0;
  const report = (line: number, message: string) => {
    failed++;
    if (errors.length < MAX_REPORTED_ERRORS) errors.push({ line, message });
  };
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const raw = lines[i]!.replace(/\r$/, '');
    if (raw.trim().length === 0) continue;
    let parsed: unknown;
    try {
      parsed = JSON.parse(raw);
    } catch (e) {
      report(i + 1, `invalid JSON: ${(e as Error).message}`);
      continue;
    }
    const r = checkExample(parsed);
    if (Array.isArray(r)) report(i + 1, r.join('; '));
    else examples.push(r);
  }
  if (failed > errors.length) errors.push({ line: 0, message: `${failed - errors.length} more lines have errors` });
  if (errors.length === 0 && examples.length === 0) errors.push({ line: 0, message: 'the file has no examples' });
  return errors.length > 0 ? { ok: false, errors } : { ok: true, examples };
}

/** "line 3: messages[1].role must be …" per error, one per line. */
export function formatChatJsonlErrors(errors: readonly ChatJsonlError[]): string {
  return errors.map((e) => (e.line > 0 ? `line ${e.line}: ${e.message}` : e.message)).join('\n');
}
