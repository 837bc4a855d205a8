/**
 * The engine's logprobs in the two OpenAI wire shapes: chat's
 * { content: [{ token, logprob, bytes, top_logprobs }] } and the legacy
 * completions shape of parallel arrays with character offsets.
 */
import type { ChosenLogprob, TokenLogprob } from '../engine/types.ts';

export interface ChatTokenLogprob {
  token: string;
  logprob: number;
  bytes: number[];
  top_logprobs: { token: string; logprob: number; bytes: number[] }[];
}

export interface ChatLogprobs {
  content: ChatTokenLogprob[];
  refusal: null;
}

const alt = (t: TokenLogprob): { token: string; logprob: number; bytes: number[] } => ({
  token: t.token,
  logprob: t.logprob,
  bytes: t.bytes,
});

export function chatLogprobs(list: readonly ChosenLogprob[]): ChatLogprobs {
  return {
    content: list.map((t) => ({ ...alt(t), top_logprobs: t.topLogprobs.map(alt) })),
    refusal: null,
  };
}

export interface LegacyLogprobs {
  tokens: string[];
  token_logprobs: (number | null)[];
  top_logprobs: (Record<string, number> | null)[];
  text_offset: number[];
}

const emptyLegacy = (): LegacyLogprobs => ({ tokens: [], token_logprobs: [], top_logprobs: [], text_offset: [] });

/**
 * Accumulates legacy logprobs. text_offset is the position of each token's
 * text in the prompt + completion string (OpenAI's convention, also without
 * echo), measured in UTF-16 code units of the token strings.
 */
export class LegacyLogprobsBuilder {
  private out: LegacyLogprobs = emptyLegacy();

  constructor(private offset: number) {}

  /** Everything added since the last take (streaming sends one slice per chunk). */
  take(): LegacyLogprobs {
    const out = this.out;
    this.out = emptyLegacy();
    return out;
  }

  /** A token without a logprob (the first prompt token has no context). */
  addUnscored(token: string): void {
    this.push(token, null, null);
  }

  add(t: ChosenLogprob): void {
    const top: Record<string, number> = {};
    for (const a of t.topLogprobs) {
      // Two alternatives can render to the same string (byte fragments); keep the likelier.
      if (!(a.token in top) || (top[a.token] ?? -Infinity) < a.logprob) top[a.token] = a.logprob;
    }
    this.push(t.token, t.logprob, top);
  }

  private push(token: string, logprob: number | null, top: Record<string, number> | null): void {
    this.out.tokens.push(token);
    this.out.token_logprobs.push(logprob);
    this.out.top_logprobs.push(top);
    this.out.text_offset.push(this.offset);
    this.offset += token.length;
  }
}
