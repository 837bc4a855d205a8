/**
 * Streams a chat answer that may be tool calls (engine/grammar/tool-calls.ts
 * format) as OpenAI deltas: text goes out as `content` as soon as it cannot be
 * the start of a call; a call goes out as a first `tool_calls` delta with
 * index, id, type and name, then its `arguments` piece by piece as the model
 * writes them. The grammar guarantees the format, so the parse is exact.
 */
import { randomBytes } from 'node:crypto';
import { jsonValueEnd, TOOL_CALL_CLOSE, TOOL_CALL_HEAD, TOOL_CALL_OPEN } from '../engine/grammar/tool-calls.ts';

export interface ChatToolCall {
  id: string;
  type: 'function';
  function: { name: string; arguments: string };
}

export interface ToolCallDelta {
  index: number;
  id?: string;
  type?: 'function';
  function: { name?: string; arguments: string };
}

export const newCallId = (): string => `call_${randomBytes(12).toString('base64url')}`;

export class ToolCallStream {
  /** Text received and not yet sent or interpreted. */
  private held = '';
  private mode: 'undecided' | 'content' | 'calls';
  private phase: 'head' | 'args' | 'tail' = 'head';
  /** Argument text of the current call received so far (to find where it ends). */
  private args = '';
  readonly calls: ChatToolCall[] = [];

  /** toolsOffered: whether the answer may be calls at all; forced: whether it must be. */
  constructor(toolsOffered: boolean, forced: boolean) {
    this.mode = !toolsOffered ? 'content' : forced ? 'calls' : 'undecided';
  }

  push(text: string): { content: string; deltas: ToolCallDelta[] } {
    if (this.mode === 'content') return { content: text, deltas: [] };
    this.held += text;
    if (this.mode === 'undecided') {
      if (this.held.startsWith(TOOL_CALL_OPEN)) this.mode = 'calls';
      else if (TOOL_CALL_OPEN.startsWith(this.held)) return { content: '', deltas: [] };
      else {
        this.mode = 'content';
        const out = this.held;
        this.held = '';
        return { content: out, deltas: [] };
      }
    }
    return { content: '', deltas: this.parse() };
  }

  /** At the end of the answer: whatever is left (text that was not a call after all). */
  finish(): { content: string; deltas: ToolCallDelta[] } {
    if (this.mode !== 'calls') {
      const out = this.held;
      this.held = '';
      return { content: out, deltas: [] };
    }
    const deltas = this.parse();
    // Output cut short by a stop sequence can leave an unfinished call: it is dropped.
    return { content: '', deltas };
  }

  private parse(): ToolCallDelta[] {
    const deltas: ToolCallDelta[] = [];
    for (;;) {
      if (this.phase === 'head') {
        const m = TOOL_CALL_HEAD.exec(this.held);
        if (m === null) return deltas;
        const call: ChatToolCall = { id: newCallId(), type: 'function', function: { name: JSON.parse(`"${m[1]!}"`) as string, arguments: '' } };
        this.calls.push(call);
        deltas.push({ index: this.calls.length - 1, id: call.id, type: 'function', function: { name: call.function.name, arguments: '' } });
        this.held = this.held.slice(m[0].length);
        this.phase = 'args';
        this.args = '';
      }
      if (this.phase === 'args') {
        const call = this.calls[this.calls.length - 1]!;
        const before = this.args.length;
        this.args += this.held;
        const end = jsonValueEnd(this.args);
        const piece = end < 0 ? this.held : this.args.slice(before, end);
        this.held = end < 0 ? '' : this.args.slice(end);
        if (end >= 0) this.args = this.args.slice(0, end);
        if (piece !== '') {
          call.function.arguments += piece;
          deltas.push({ index: this.calls.length - 1, function: { arguments: piece } });
        }
        if (end < 0) return deltas;
        this.phase = 'tail';
      }
      const tail = `}${TOOL_CALL_CLOSE}`;
      if (this.held.length < tail.length) return deltas;
      this.held = this.held.slice(tail.length);
      this.phase = 'head';
    }
  }
}
