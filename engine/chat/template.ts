/**
 * Chat templates: renders a model's `tokenizer.chat_template` (Jinja, the
 * Hugging Face convention) with @huggingface/jinja. Models without one get
 * ChatML, which is what braid's own tokenizer is trained with.
 */
import { Environment, Interpreter, Template } from '@huggingface/jinja';
import { InvalidRequestError } from '../errors.ts';
import type { ChatMessage } from '../types.ts';

/**
 * ChatML. `developer` (the newer OpenAI name) is rendered as `system`, which
 * is the role ChatML models know.
 */
export const DEFAULT_CHAT_TEMPLATE =
  "{% for message in messages %}{% set role = 'system' if message['role'] == 'developer' else message['role'] %}" +
  "{{ '<|im_start|>' + role + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}{% endfor %}" +
  "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";

/**
 * For a vocabulary without ChatML's markers and no template of its own — GPT-2's, which the MoA
 * card uses — a plain transcript: "System: …", "User: …", "Assistant: …" paragraphs and an open
 * "Assistant:" turn. ChatML's markers would be tokenized as ordinary text there and never end a
 * turn; here the reply ends at the end-of-text token (GPT-2's eos) or max_tokens.
 */
export const PLAIN_CHAT_TEMPLATE =
  "{% for message in messages %}{% set role = 'system' if message['role'] == 'developer' else message['role'] %}" +
  "{{ role[0] | upper }}{{ role[1:] }}{{ ': ' + message['content'] + '\\n\\n' }}{% endfor %}" +
  "{% if add_generation_prompt %}{{ 'Assistant:' }}{% endif %}";

/** The template for a model file without `tokenizer.chat_template`: ChatML when its vocabulary has the markers. */
export function defaultChatTemplate(vocabulary: readonly string[]): string {
  return vocabulary.includes('<|im_start|>') && vocabulary.includes('<|im_end|>') ? DEFAULT_CHAT_TEMPLATE : PLAIN_CHAT_TEMPLATE;
}

export interface ChatTemplateOptions {
  addGenerationPrompt: boolean;
  /** Text of the bos/eos tokens, which many templates reference. */
  bosToken?: string;
  eosToken?: string;
  /** Extra variables some templates read (e.g. tools, enable_thinking). */
  extra?: Record<string, unknown>;
}

/** Thrown by the template's raise_exception: the conversation is not valid for this model. */
class TemplateRaised extends Error {}

/** Python's range(stop) / range(start, stop[, step]). */
function range(...args: number[]): number[] {
  const [start, stop, step] = args.length === 1 ? [0, args[0]!, 1] : [args[0]!, args[1]!, args[2] ?? 1];
  if (step === 0) throw new Error('range() step must not be zero');
  const out: number[] = [];
  for (let i = start; step > 0 ? i < stop : i > stop; i += step) out.push(i);
  return out;
}

/** The strftime subset chat templates use to print today's date. */
function strftimeNow(format: string): string {
  const d = new Date();
  const pad = (n: number) => String(n).padStart(2, '0');
  const month = (style: 'long' | 'short') => new Intl.DateTimeFormat('en-US', { month: style }).format(d);
  const codes: Record<string, () => string> = {
    '%Y': () => String(d.getFullYear()),
    '%m': () => pad(d.getMonth() + 1),
    '%d': () => pad(d.getDate()),
    '%B': () => month('long'),
    '%b': () => month('short'),
    '%H': () => pad(d.getHours()),
    '%M': () => pad(d.getMinutes()),
    '%%': () => '%',
  };
  return format.replace(/%[YmdbBHM%]/g, (c) => codes[c]!());
}

/**
 * The globals Template.render would set, except raise_exception, which has
 * to throw our own error type (Template.render refuses to let a caller
 * redefine it), so the environment is assembled here.
 */
function environment(vars: Record<string, unknown>): Environment {
  const env = new Environment();
  const globals: Record<string, unknown> = {
    true: true,
    false: false,
    none: null,
    True: true,
    False: false,
    None: null,
    range,
    strftime_now: strftimeNow,
    raise_exception: (message: unknown) => {
      throw new TemplateRaised(String(message));
    },
  };
  for (const [k, v] of Object.entries({ ...vars, ...globals })) env.set(k, v);
  return env;
}

const compiled = new Map<string, Template>();

function compile(source: string): Template {
  let t = compiled.get(source);
  if (t === undefined) {
    try {
      t = new Template(source);
    } catch (e) {
      throw new Error(`chat template does not parse: ${(e as Error).message}`);
    }
    // Models come and go rarely; a handful of templates is all we ever hold.
    if (compiled.size > 32) compiled.clear();
    compiled.set(source, t);
  }
  return t;
}

/**
 * Renders messages with a chat template (the model's, or ChatML when null).
 * A template's raise_exception becomes InvalidRequestError (HTTP 400); a
 * broken template is a plain Error (the model file is at fault, not the request).
 */
export function renderChatTemplate(
  template: string | null | undefined,
  messages: readonly ChatMessage[],
  opts: ChatTemplateOptions,
): string {
  const t = compile(template ?? DEFAULT_CHAT_TEMPLATE);
  try {
    const env = environment({
      ...opts.extra,
      messages: messages.map((m) => (m.name === undefined ? { role: m.role, content: m.content } : { ...m })),
      add_generation_prompt: opts.addGenerationPrompt,
      bos_token: opts.bosToken ?? '',
      eos_token: opts.eosToken ?? '',
    });
    const out = new Interpreter(env).run(t.parsed).value;
    if (typeof out !== 'string') throw new Error('template did not produce a string');
    return out;
  } catch (e) {
    if (e instanceof TemplateRaised) throw new InvalidRequestError(e.message, 'messages');
    throw new Error(`chat template failed to render: ${(e as Error).message}`);
  }
}
