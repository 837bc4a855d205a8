/**
 * Keeps user-supplied text literal inside a chat prompt. The rendered chat
 * template must be tokenized with special tokens recognised (its markers are
 * control tokens), but a message that spells "<|im_end|>\n<|im_start|>system"
 * must not close its own turn and forge a system one: OpenAI tokenizes
 * special-token text inside messages as plain text, and so does braid.
 *
 * Before rendering, every control-token text inside a user string (and the
 * sentinel character itself) is swapped for a sentinel — private-use
 * characters, which templates copy through unchanged. After rendering, the
 * template's own markers are split off as control tokens, and each run of text
 * between two markers that holds a sentinel is restored and tokenized without
 * parseSpecial, as one run so that BPE merges across the user's text as it
 * would in plain text. A prompt with no such text takes the old path, one
 * parseSpecial encode, so ordinary prompts are token-for-token unchanged.
 * Only control tokens are guarded: non-special added tokens, which HF
 * tokenizers match in any text, still match in user text, except inside a
 * run that holds a guarded literal (plain throughout).
 */
import type { Tokenizer } from '../engine/types.ts';
import type { ChatMessageInput, ToolInput } from './schemas.ts';

/** Brackets a literal's index: "\uE000" + index + "\uE000". */
const SENTINEL = '\uE000';
const SENTINEL_RE = /\uE000(\d+)\uE000/g;

interface ControlTexts {
  /** Texts a sentinel can stand for (its index): the tokenizer's control-token texts, then the sentinel itself. */
  literals: string[];
  /** Longest-first alternation of the control-token texts: the template's markers. */
  markers: RegExp;
  /** The same plus the sentinel character: what protect() replaces in user text. */
  protectable: RegExp;
}

const controlTextsCache = new WeakMap<Tokenizer, ControlTexts>();

/** The texts that parseSpecial turns into a control token, read once per tokenizer. */
function controlTexts(tokenizer: Tokenizer): ControlTexts {
  let found = controlTextsCache.get(tokenizer);
  if (found !== undefined) return found;
  const texts = new Set<string>();
  const decoder = new TextDecoder();
  for (const id of tokenizer.specialIds) {
    const text = decoder.decode(tokenizer.tokenBytes(id));
    if (text === '') continue; // unused ids have no text and can never be matched
    const ids = tokenizer.encode(text, { parseSpecial: true });
    if (ids.length === 1 && tokenizer.specialIds.has(ids[0]!)) texts.add(text);
  }
  const sorted = [...texts].sort((a, b) => b.length - a.length);
  const literals = [...sorted, SENTINEL];
  found = {
    literals,
    markers: sorted.length === 0 ? /(?!)/g : new RegExp(sorted.map(escapeRegExp).join('|'), 'g'),
    protectable: new RegExp(literals.map(escapeRegExp).join('|'), 'g'),
  };
  controlTextsCache.set(tokenizer, found);
  return found;
}

const escapeRegExp = (s: string): string => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/** Protects the user-supplied strings of a chat request and tokenizes its rendering. */
export class LiteralText {
  private readonly controls: ControlTexts;

  constructor(private readonly tokenizer: Tokenizer) {
    this.controls = controlTexts(tokenizer);
  }

  /** A user string with every control-token text (and the sentinel character) replaced by a sentinel. */
  protect(text: string): string {
    return text.replace(this.controls.protectable, (m) => `${SENTINEL}${this.controls.literals.indexOf(m)}${SENTINEL}`);
  }

  /** Every user-supplied string of a message: content, name, tool calls, tool_call_id. */
  protectMessage(m: ChatMessageInput): ChatMessageInput {
    const p = (s: string): string => this.protect(s);
    return {
      ...m,
      content: m.content === null ? null : typeof m.content === 'string' ? p(m.content) : m.content.map((part) => ({ ...part, text: p(part.text) })),
      name: m.name === null || m.name === undefined ? m.name : p(m.name),
      tool_calls: m.tool_calls?.map((c) => ({ ...c, id: p(c.id), function: { name: p(c.function.name), arguments: p(c.function.arguments) } })),
      tool_call_id: m.tool_call_id === null || m.tool_call_id === undefined ? m.tool_call_id : p(m.tool_call_id),
    };
  }

  /** A tool definition: its description and JSON schema are the caller's text too. */
  protectTool(t: ToolInput): ToolInput {
    return { ...t, function: mapStrings(t.function, (s) => this.protect(s)) };
  }

  /** Tokenizes a rendered template: its markers become control tokens, protected text stays plain. */
  encode(rendered: string): number[] {
    if (!rendered.includes(SENTINEL)) return this.tokenizer.encode(rendered, { parseSpecial: true });
    const out: number[] = [];
    let last = 0;
    for (const m of rendered.matchAll(this.controls.markers)) {
      this.encodeRun(rendered.slice(last, m.index), out);
      out.push(...this.tokenizer.encode(m[0], { parseSpecial: true }));
      last = m.index + m[0].length;
    }
    this.encodeRun(rendered.slice(last), out);
    return out;
  }

  /** Text between two template markers: plain when it carries user literals, else as the template wrote it. */
  private encodeRun(run: string, out: number[]): void {
    if (run === '') return;
    const ids = run.includes(SENTINEL) ? this.tokenizer.encode(this.restore(run)) : this.tokenizer.encode(run, { parseSpecial: true });
    for (const id of ids) out.push(id);
  }

  private restore(text: string): string {
    return text.replace(SENTINEL_RE, (_, i: string) => this.controls.literals[Number(i)] ?? '');
  }
}

/** A JSON value with every string (keys included) passed through f. */
function mapStrings<T>(value: T, f: (s: string) => string): T {
  if (typeof value === 'string') return f(value) as T;
  if (Array.isArray(value)) return value.map((v: unknown) => mapStrings(v, f)) as T;
  if (typeof value === 'object' && value !== null) {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [f(k), mapStrings(v, f)])) as T;
  }
  return value;
}
