import { describe, expect, it } from 'vitest';
import { DEFAULT_CHAT_TEMPLATE, renderChatTemplate } from '../../engine/chat/template.ts';
import { InvalidRequestError } from '../../engine/errors.ts';
import { loadTokenizer } from '../../engine/tokenizer/load.ts';
import { readTokenizerSpec, tokenizerMetadata } from '../../engine/tokenizer/spec.ts';
import { DEFAULT_TOKENIZER_PATH } from '../../engine/model-init/init-chimera.ts';
import type { ChatMessage } from '../../engine/types.ts';

const messages: ChatMessage[] = [
  { role: 'system', content: 'You are terse.' },
  { role: 'user', content: 'Hi 👋\nthere' },
  { role: 'assistant', content: 'Hello.' },
  { role: 'user', content: 'Bye' },
];

describe('chat templates', () => {
  it('renders ChatML by default, with and without the generation prompt', () => {
    const body =
      '<|im_start|>system\nYou are terse.<|im_end|>\n' +
      '<|im_start|>user\nHi 👋\nthere<|im_end|>\n' +
      '<|im_start|>assistant\nHello.<|im_end|>\n' +
      '<|im_start|>user\nBye<|im_end|>\n';
    expect(renderChatTemplate(null, messages, { addGenerationPrompt: false })).toBe(body);
    expect(renderChatTemplate(undefined, messages, { addGenerationPrompt: true })).toBe(body + '<|im_start|>assistant\n');
    expect(renderChatTemplate(DEFAULT_CHAT_TEMPLATE, [], { addGenerationPrompt: true })).toBe('<|im_start|>assistant\n');
  });

  it('renders the developer role as system in ChatML', () => {
    const out = renderChatTemplate(null, [{ role: 'developer', content: 'Be nice.' }], { addGenerationPrompt: false });
    expect(out).toBe('<|im_start|>system\nBe nice.<|im_end|>\n');
  });

  it("renders a model's own template with bos/eos tokens, names and extra variables", () => {
    const template =
      "{{ bos_token }}{% for m in messages %}[{{ m.role }}{% if m.name %}:{{ m.name }}{% endif %}] {{ m.content }}{{ eos_token }}{% endfor %}" +
      '{% if add_generation_prompt %}[assistant]{% endif %}{% if tools %} tools={{ tools | length }}{% endif %}';
    const out = renderChatTemplate(
      template,
      [
        { role: 'user', content: 'a', name: 'bob' },
        { role: 'assistant', content: 'b' },
      ],
      { addGenerationPrompt: true, bosToken: '<s>', eosToken: '</s>', extra: { tools: [1, 2] } },
    );
    expect(out).toBe('<s>[user:bob] a</s>[assistant] b</s>[assistant] tools=2');
    // Globals templates rely on: range, none, True.
    const globals = '{% for i in range(1, 7, 2) %}{{ i }}{% endfor %}{{ none is none }}{{ True }}';
    expect(renderChatTemplate(globals, [], { addGenerationPrompt: false })).toBe('135truetrue');
  });

  it('turns raise_exception into InvalidRequestError and a broken template into a plain error', () => {
    const strict = "{% if messages[0]['role'] != 'user' %}{{ raise_exception('first message must be from the user') }}{% endif %}ok";
    expect(renderChatTemplate(strict, [{ role: 'user', content: 'x' }], { addGenerationPrompt: false })).toBe('ok');
    let err: unknown;
    try {
      renderChatTemplate(strict, [{ role: 'assistant', content: 'x' }], { addGenerationPrompt: false });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(InvalidRequestError);
    expect((err as Error).message).toBe('first message must be from the user');
    expect(() => renderChatTemplate('{% for x in %}', messages, { addGenerationPrompt: false })).toThrow(/does not parse/);
  });

  it("the committed tokenizer's template is ChatML and its markers encode as single special tokens", () => {
    const spec = readTokenizerSpec(DEFAULT_TOKENIZER_PATH);
    expect(spec.chat_template).toBe(DEFAULT_CHAT_TEMPLATE);
    const tok = loadTokenizer(new Map(tokenizerMetadata(spec)));
    const prompt = renderChatTemplate(spec.chat_template, messages.slice(0, 2), { addGenerationPrompt: true });
    const ids = tok.encode(prompt, { parseSpecial: true });
    const start = spec.tokens.indexOf('<|im_start|>');
    const end = spec.tokens.indexOf('<|im_end|>');
    expect(ids[0]).toBe(start);
    expect(ids.filter((i) => i === start)).toHaveLength(3);
    expect(ids.filter((i) => i === end)).toHaveLength(2);
    expect(tok.stopIds.has(end)).toBe(true);
    expect(tok.decode(ids)).toBe(prompt);
  });
});
