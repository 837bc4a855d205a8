/**
 * `grammar_mode`: the seed's nine modes (002 `grammar.modes`) with its hard
 * constraints (`balanced_brackets`, `valid_json_in_json_mode`,
 * `fence_closure`, `string_literal_closure`): no closing bracket without its
 * opener, and brackets, string literals and code fences are closed before the
 * end — the debt ledger makes sure the end comes only after they are. Written
 * in GBNF (gbnf.ts), so each mode's rules read as what they enforce.
 */
import { gbnfGrammar } from './gbnf.ts';
import type { Grammar } from './ir.ts';
import { jsonValueGrammar } from './json-value.ts';

export const GRAMMAR_MODES = ['plain_text', 'dialogue', 'markdown', 'json', 'python', 'javascript', 'sql', 'math_latex', 'shell'] as const;
export type GrammarMode = (typeof GRAMMAR_MODES)[number];

/** Balanced (), [], {} around `other`, which must exclude the six brackets. */
const balanced = (other: string, extraItems = '') => `
root  ::= item*
item  ::= other | "(" item* ")" | "[" item* "]" | "{" item* "}"${extraItems}
other ::= ${other}
`;

const SOURCES: Record<Exclude<GrammarMode, 'json'>, string> = {
  plain_text: balanced('[^()[\\]{}]'),
  // Dialogue: quoted speech is closed as well.
  dialogue: balanced('[^()[\\]{}"]', ' | "\\"" [^"]* "\\""'),
  // Markdown: code fences are closed; a run of one or two backticks is inline code or text.
  markdown: `
root  ::= (text | ticks text | fence)*
text  ::= [^\`]
ticks ::= "\`" | "\`\`"
fence ::= "\`\`\`" ([^\`] | "\`" [^\`] | "\`\`" [^\`])* "\`\`\`"
`,
  python: balanced('[^()[\\]{}"\'#]', ` | str | comment
str     ::= "\\"" ([^"\\\\] | "\\\\" .)* "\\"" | "'" ([^'\\\\] | "\\\\" .)* "'"
comment ::= "#" [^\\n]*`),
  javascript: balanced('[^()[\\]{}"\'\`/] | "/" [^/*()[\\]{}"\'\`]', ` | str | comment
str     ::= "\\"" ([^"\\\\\\n] | "\\\\" .)* "\\"" | "'" ([^'\\\\\\n] | "\\\\" .)* "'" | "\`" ([^\`\\\\] | "\\\\" .)* "\`"
comment ::= "//" [^\\n]* | "/*" ([^*] | "*"+ [^*/])* "*"+ "/"`),
  sql: balanced('[^()[\\]{}"\'-] | "-" [^-()[\\]{}"\']', ` | str | comment
str     ::= "'" [^']* "'" | "\\"" [^"]* "\\""
comment ::= "--" [^\\n]*`),
  shell: balanced('[^()[\\]{}"\'#]', ` | str | comment
str     ::= "'" [^']* "'" | "\\"" ([^"\\\\] | "\\\\" .)* "\\""
comment ::= "#" [^\\n]*`),
  // LaTeX math: braces and brackets balance, \\{ and friends are plain, $…$ closes.
  math_latex: balanced('[^()[\\]{}\\\\$] | "\\\\" .', ` | "$" item* "$"`),
};

export function modeGrammar(mode: GrammarMode): Grammar {
  if (mode === 'json') return jsonValueGrammar();
  return gbnfGrammar(SOURCES[mode], `mode:${mode}`);
}
