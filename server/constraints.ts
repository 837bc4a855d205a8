/**
 * Request fields that constrain the output → one engine Grammar:
 * `response_format` (json_object, json_schema), the `grammar_mode` and
 * `grammar` (GBNF) extensions, and `tools` + `tool_choice`. At most one of
 * them may apply. Errors are 400s that name the field — and, for a schema, the
 * keyword we cannot enforce: a schema is never silently ignored.
 */
import { Automaton } from '../engine/grammar/automaton.ts';
import { GrammarError, type Grammar } from '../engine/grammar/ir.ts';
import { gbnfGrammar } from '../engine/grammar/gbnf.ts';
import { jsonSchemaGrammar, SchemaError } from '../engine/grammar/json-schema.ts';
import { jsonObjectGrammar } from '../engine/grammar/json-value.ts';
import { modeGrammar } from '../engine/grammar/modes.ts';
import { toolCallGrammar, type ToolChoice } from '../engine/grammar/tool-calls.ts';
import { invalidRequest } from './errors.ts';
import type { ConstraintFields, ToolChoiceInput, ToolInput } from './schemas.ts';

function schemaError(e: SchemaError, param: string): Error {
  return invalidRequest(e.message, param, e.kind === 'unsupported' ? 'unsupported_schema_keyword' : 'invalid_schema');
}

/** What the tools fields ask for: a call grammar, or none (no tools, or tool_choice "none"). */
export interface ToolMode {
  grammar: Grammar;
  /** The answer must be tool calls (required / named); with "auto" it may be text. */
  forced: boolean;
  /** Under "auto": calls, or a text answer in `answer` (a response_format) instead of free text. */
  withAnswer(answer: Grammar): Grammar;
}

export function toolMode(tools: ToolInput[] | null | undefined, choice: ToolChoiceInput | null | undefined, parallel: boolean | null | undefined): ToolMode | null {
  if (tools === null || tools === undefined || tools.length === 0) {
    if (choice !== null && choice !== undefined && choice !== 'none' && choice !== 'auto') {
      throw invalidRequest("'tool_choice' requires 'tools'.", 'tool_choice');
    }
    return null;
  }
  if (choice === 'none') return null;
  const names = new Set<string>();
  for (const t of tools) {
    if (names.has(t.function.name)) throw invalidRequest(`Two tools are named '${t.function.name}'.`, 'tools');
    names.add(t.function.name);
  }
  let c: ToolChoice = 'auto';
  if (choice === 'required') c = 'required';
  else if (typeof choice === 'object' && choice !== null) {
    if (!names.has(choice.function.name)) throw invalidRequest(`tool_choice names '${choice.function.name}', which is not in 'tools'.`, 'tool_choice');
    c = { name: choice.function.name };
  }
  const fns = tools.map((t) => ({ name: t.function.name, parameters: t.function.parameters ?? undefined }));
  for (const [i, f] of fns.entries()) {
    try {
      checked(toolCallGrammar([f], 'required', false), `tools[${i}].function.parameters`);
    } catch (e) {
      if (e instanceof SchemaError) throw schemaError(e, `tools[${i}].function.parameters`);
      throw e;
    }
  }
  return {
    grammar: checked(toolCallGrammar(fns, c, parallel !== false), 'tools'),
    forced: c !== 'auto',
    withAnswer: (answer) => checked(toolCallGrammar(fns, c, parallel !== false, answer), 'response_format'),
  };
}

/**
 * Compiles the automaton once (tokenizer-independent and cheap) so that a
 * grammar without any finite output, or a left-recursive one, is a 400 before
 * any work is queued.
 */
function checked(g: Grammar, param: string): Grammar {
  try {
    new Automaton(g);
  } catch (e) {
    if (e instanceof GrammarError) throw invalidRequest(`Invalid '${param}': ${e.message}`, param, param === 'grammar' ? 'invalid_grammar' : 'invalid_schema');
    throw e;
  }
  return g;
}

/** The grammar of response_format / grammar_mode / grammar (undefined: none asked for). */
export function outputGrammar(body: ConstraintFields): Grammar | undefined {
  const g = uncheckedOutputGrammar(body);
  return g === undefined ? undefined : checked(g, body.grammar !== null && body.grammar !== undefined ? 'grammar' : 'response_format');
}

function uncheckedOutputGrammar(body: ConstraintFields): Grammar | undefined {
  const rf = body.response_format;
  const asked = [
    rf !== null && rf !== undefined && rf.type !== 'text' ? 'response_format' : null,
    body.grammar_mode !== null && body.grammar_mode !== undefined ? 'grammar_mode' : null,
    body.grammar !== null && body.grammar !== undefined ? 'grammar' : null,
  ].filter((x): x is string => x !== null);
  if (asked.length > 1) throw invalidRequest(`Use only one of ${asked.map((a) => `'${a}'`).join(' and ')}.`, asked[1]!);
  if (rf?.type === 'json_object') return jsonObjectGrammar();
  if (rf?.type === 'json_schema') {
    try {
      return jsonSchemaGrammar(rf.json_schema.schema ?? {});
    } catch (e) {
      if (e instanceof SchemaError) throw schemaError(e, 'response_format');
      throw e;
    }
  }
  if (body.grammar_mode !== null && body.grammar_mode !== undefined) return modeGrammar(body.grammar_mode);
  if (body.grammar !== null && body.grammar !== undefined) {
    try {
      return gbnfGrammar(body.grammar);
    } catch (e) {
      if (e instanceof GrammarError) throw invalidRequest(`Invalid 'grammar': ${e.message}`, 'grammar', 'invalid_grammar');
      throw e;
    }
  }
  return undefined;
}
