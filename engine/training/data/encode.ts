/**
 * Text and chats → training documents: token ids plus a loss mask saying
 * which tokens the model is trained to predict. Plain text is all loss. A
 * chat is rendered with the chat template the server uses
 * (engine/chat/template.ts) and only the assistant replies carry loss,
 * through the end-of-turn token that closes each reply, because at inference
 * the model writes exactly those tokens and the server writes the rest.
 */
import { renderChatTemplate } from '../../chat/template.ts';
import type { ChatMessage, Tokenizer } from '../../types.ts';
import type { ChatExample } from './chat-example.ts';

export interface TrainingDocument {
  tokens: Int32Array;
  /** 1 = predict this token (it is a loss target), 0 = context only. Same length as tokens. */
  lossMask: Uint8Array;
}

export class DocumentEncoder {
  /**
   * chatTemplate: the model's tokenizer.chat_template; null = ChatML, as the
   * server falls back to.
   */
  constructor(
    readonly tokenizer: Tokenizer,
    readonly chatTemplate: string | null = null,
  ) {}

  /** Plain text: every token is a target. */
  text(text: string): TrainingDocument {
    const tokens = Int32Array.from(this.tokenizer.encode(text));
    return { tokens, lossMask: new Uint8Array(tokens.length).fill(1) };
  }

  /**
   * A chat. The rendering is cut at each assistant reply: everything before
   * a reply, up to and including the generation prompt the server appends
   * ("<|im_start|>assistant\n"), is one piece tokenized the way the server
   * tokenizes a prompt (special tokens recognised), and the reply is tokenized
   * the way the model generates it. Needs a template whose rendering of a
   * conversation starts with its rendering of every shorter prefix (ChatML
   * and the usual templates do); anything else is an error, never a silent
   * misalignment.
   */
  chat(example: ChatExample): TrainingDocument {
    const msgs = example.messages;
    const ids: number[] = [];
    const mask: number[] = [];
    const emit = (text: string, loss: boolean) => {
      const piece = this.tokenizer.encode(text, { parseSpecial: true });
      // Loss runs through the last end-of-turn token of the reply: the one that closes it.
      let last = piece.length - 1;
      if (loss) {
        const eot = lastIndexWhere(piece, (id) => this.tokenizer.stopIds.has(id));
        if (eot >= 0) last = eot;
      }
      for (let i = 0; i < piece.length; i++) {
        ids.push(piece[i]!);
        mask.push(loss && i <= last ? 1 : 0);
      }
    };

    let done = '';
    const take = (text: string, loss: boolean, k: number) => {
      if (!text.startsWith(done)) {
        throw new Error(`chat template renders message ${k} by rewriting earlier text, so assistant tokens cannot be located for the loss mask`);
      }
      emit(text.slice(done.length), loss);
      done = text;
    };
    msgs.forEach((turn, k) => {
      if (turn.role !== 'assistant') return;
      take(this.render(msgs.slice(0, k), true), false, k);
      take(this.render(msgs.slice(0, k + 1), false), turn.weight !== 0, k);
    });
    // Messages after the last reply (or a chat without one) are context.
    if (msgs[msgs.length - 1]?.role !== 'assistant') take(this.render(msgs, false), false, msgs.length - 1);
    return { tokens: Int32Array.from(ids), lossMask: Uint8Array.from(mask) };
  }

  private render(messages: readonly ChatMessage[], addGenerationPrompt: boolean): string {
    const tok = this.tokenizer;
    return renderChatTemplate(this.chatTemplate, messages, {
      addGenerationPrompt,
      bosToken: tok.bosId === null ? '' : tok.decode([tok.bosId]),
      eosToken: tok.decode([tok.eosId]),
    });
  }
}

function lastIndexWhere(a: readonly number[], ok: (v: number) => boolean): number {
  for (let i = a.length - 1; i >= 0; i--) if (ok(a[i]!)) return i;
  return -1;
}
