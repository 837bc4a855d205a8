/**
 * Tool calls as constrained text. The model writes each call as
 *   <tool_call>{"name": "<function>", "arguments": <JSON per its schema>}</tool_call>
 * (the Hermes / Qwen convention, which ChatML-trained models know), calls
 * separated by a newline when parallel calls are allowed. tool_choice picks
 * the grammar: "required" or a named function → calls only; "auto" → calls or
 * free text, or calls or a text answer in a given grammar (a response_format
 * beside the tools). parseToolCalls reads the calls back out of the text.
 */
import { alt, empty, GrammarBuilder, lit, ref, repeat, seq, type Expr, type Grammar } from './ir.ts';
import { SchemaCompiler } from './json-schema.ts';
import { codeRangesExpr, complement, MAX_CP } from './utf8.ts';

export interface ToolFunction {
  name: string;
  /** JSON Schema of the arguments object (absent: any object). */
  parameters?: Record<string, unknown> | undefined;
}

export type ToolChoice = 'auto' | 'required' | { name: string };

export const TOOL_CALL_OPEN = '<tool_call>';
export const TOOL_CALL_CLOSE = '</tool_call>';
/** Most calls in one parallel answer. */
const MAX_PARALLEL_CALLS = 8;

/**
 * The grammar of an answer under tools. Throws SchemaError (via the schema
 * compiler) naming the function whose parameters cannot be enforced. Under
 * "auto", a text answer is any text not starting with the call marker, or
 * `answer`'s language when given: it must not start with "<" (JSON never
 * does), so the first byte still tells a call from an answer.
 */
export function toolCallGrammar(tools: readonly ToolFunction[], choice: ToolChoice, parallel: boolean, answer?: Grammar): Grammar {
  const b = new GrammarBuilder();
  const offered = typeof choice === 'object' ? tools.filter((t) => t.name === choice.name) : [...tools];
  if (offered.length === 0) throw new Error('no tool to call');
  const calls: Expr[] = offered.map((t) => {
    // Arguments are an object (OpenAI's rule); a schema that does not say so gets it added.
    const given = t.parameters ?? {};
    const params = given.type === undefined && given.$ref === undefined && given.anyOf === undefined && given.oneOf === undefined ? { ...given, type: 'object' } : given;
    const args = new SchemaCompiler(params, b).rootRule();
    return seq(lit(`${TOOL_CALL_OPEN}{"name": ${JSON.stringify(t.name)}, "arguments": `), ref(args), lit(`}${TOOL_CALL_CLOSE}`));
  });
  const call = b.define('tool:call', alt(...calls));
  const answerCalls = parallel ? seq(ref(call), repeat(seq(lit('\n'), ref(call)), 0, MAX_PARALLEL_CALLS - 1)) : ref(call);
  let root = b.define('tool:calls', answerCalls);
  if (choice === 'auto') {
    const text = answer === undefined ? textNotStartingWith(TOOL_CALL_OPEN) : ref(b.include(answer, 'answer:'));
    root = b.define('tool:auto', alt(ref(root), text));
  }
  const key = `tools:${JSON.stringify({ tools: offered, choice, parallel })}${choice === 'auto' && answer !== undefined ? `|answer:${answer.key}` : ''}`;
  return b.build(root, key);
}

/**
 * Any text that does not begin with `prefix` (an ASCII literal): once the
 * output has written the whole prefix, it is committed to the other branch.
 */
function textNotStartingWith(prefix: string): Expr {
  const any = repeat(codeRangesExpr([[0, MAX_CP]]), 0);
  const branches: Expr[] = [];
  for (let i = 0; i < prefix.length; i++) {
    const c = prefix.charCodeAt(i);
    // The first i characters of the prefix, then the end or a different character.
    branches.push(seq(lit(prefix.slice(0, i)), alt(empty, seq(codeRangesExpr(complement([[c, c]])), any))));
  }
  return alt(...branches);
}

export interface ParsedToolCall {
  name: string;
  /** The arguments object as JSON text (OpenAI sends arguments as a string). */
  arguments: string;
}

/**
 * The calls in a generated answer, or null when it is not (only) tool calls —
 * under tool_choice "auto" that means the model answered in text.
 */
export function parseToolCalls(text: string): ParsedToolCall[] | null {
  const calls: ParsedToolCall[] = [];
  let rest = text;
  if (!rest.startsWith(TOOL_CALL_OPEN)) return null;
  while (rest.length > 0) {
    const head = TOOL_CALL_HEAD.exec(rest);
    if (head === null) return null;
    rest = rest.slice(head[0].length);
    const end = jsonValueEnd(rest);
    if (end < 0 || !rest.startsWith(`}${TOOL_CALL_CLOSE}`, end)) return null;
    const args = rest.slice(0, end);
    try {
      JSON.parse(args);
      calls.push({ name: JSON.parse(`"${head[1]!}"`) as string, arguments: args });
    } catch {
      return null;
    }
    rest = rest.slice(end + 1 + TOOL_CALL_CLOSE.length);
  }
  return calls.length > 0 ? calls : null;
}

/** The start of a call up to its arguments, as the grammar writes it (capture: the JSON-escaped name). */
export const TOOL_CALL_HEAD = /^\n?<tool_call>\{"name": "((?:[^"\\]|\\.)*)", "arguments": /;

/**
 * Where the JSON object or array at the start of text ends (the index after
 * its closing bracket), or -1 if it does not end in text.
 */
export function jsonValueEnd(text: string): number {
  let depth = 0;
  let inString = false;
  let escaped = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (inString) {
      if (escaped) escaped = false;
      else if (c === '\\') escaped = true;
      else if (c === '"') inString = false;
    } else if (c === '"') inString = true;
    else if (c === '{' || c === '[') depth++;
    else if (c === '}' || c === ']') {
      depth--;
      if (depth === 0) return i + 1;
    } else if (depth === 0) return -1; // not an object or array
  }
  return -1;
}
