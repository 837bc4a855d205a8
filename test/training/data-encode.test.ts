import { describe, expect, it } from 'vitest';
import { renderChatTemplate } from '../../engine/chat/template.ts';
import type { ChatExample } from '../../engine/training/data/chat-example.ts';
import { defaultEncoder } from '../../engine/training/data/default-tokenizer.ts';
import { DocumentEncoder } from '../../engine/training/data/encode.ts';

const enc = defaultEncoder();
const tok = enc.tokenizer;

/** The runs of consecutive mask-1 tokens, decoded. */
function maskedRuns(doc: { tokens: Int32Array; lossMask: Uint8Array }): string[] {
  const runs: string[] = [];
  let cur: number[] = [];
  for (let i = 0; i <= doc.tokens.length; i++) {
    if (i < doc.tokens.length && doc.lossMask[i] === 1) cur.push(doc.tokens[i]!);
    else if (cur.length > 0) {
      runs.push(tok.decode(cur));
      cur = [];
    }
  }
  return runs;
}

describe('DocumentEncoder', () => {
  it('plain text: every token is a target, and it decodes back', () => {
    const d = enc.text('The jury said "no".\n\nIt rained.');
    expect(d.lossMask.every((m) => m === 1)).toBe(true);
    expect(tok.decode([...d.tokens])).toBe('The jury said "no".\n\nIt rained.');
  });

  it('chat: loss exactly on the assistant replies and the end-of-turn closing each', () => {
    const chat: ChatExample = {
      messages: [
        { role: 'system', content: 'Answer briefly.' },
        { role: 'user', content: 'What does dog mean?' },
        { role: 'assistant', content: 'dog (noun): a domesticated canine.' },
        { role: 'user', content: 'And  cat?\n' },
        { role: 'assistant', content: ' A small feline.\nIt purrs.' },
      ],
    };
    const d = enc.chat(chat);
    expect(d.tokens.length).toBe(d.lossMask.length);
    expect(maskedRuns(d)).toEqual(['dog (noun): a domesticated canine.<|im_end|>', ' A small feline.\nIt purrs.<|im_end|>']);
    // The whole document is the ChatML rendering the server uses.
    expect(tok.decode([...d.tokens])).toBe(renderChatTemplate(null, chat.messages, { addGenerationPrompt: false }));
    // The prompt before the first reply is tokenized exactly as the server tokenizes it.
    const prompt = tok.encode(renderChatTemplate(null, chat.messages.slice(0, 2), { addGenerationPrompt: true }), { parseSpecial: true });
    expect([...d.tokens.subarray(0, prompt.length)]).toEqual(prompt);
    expect(d.lossMask[prompt.length - 1]).toBe(0);
    expect(d.lossMask[prompt.length]).toBe(1);
    // The newline after <|im_end|> is template, not reply.
    expect(d.lossMask[d.lossMask.length - 1]).toBe(0);
  });

  it('chat: weight 0 replies and trailing user turns are context only', () => {
    const d = enc.chat({
      messages: [
        { role: 'user', content: 'Q1' },
        { role: 'assistant', content: 'skip me', weight: 0 },
        { role: 'user', content: 'Q2' },
        { role: 'assistant', content: 'learn me' },
        { role: 'user', content: 'Q3' },
      ],
    });
    expect(maskedRuns(d)).toEqual(['learn me<|im_end|>']);
    expect(tok.decode([...d.tokens])).toMatch(/<\|im_start\|>user\nQ3<\|im_end\|>\n$/);
  });

  it('refuses a template that rewrites earlier turns instead of misplacing the mask', () => {
    const rewriting = new DocumentEncoder(tok, '{{ messages | length }}{% for m in messages %}[{{ m.content }}]{% endfor %}');
    expect(() => rewriting.chat({ messages: [{ role: 'user', content: 'a' }, { role: 'assistant', content: 'b' }] })).toThrow(/rewriting earlier text/);
  });
});
