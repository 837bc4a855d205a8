/**
 * Logit processors that look at what was already said: OpenAI presence and
 * frequency penalties, the CTRL / llama.cpp repetition penalty, and logit_bias.
 * They edit the logits in place; the sampler owns the copy they work on.
 */

/** llama.cpp's default `repeat_last_n`: the repetition penalty looks this far back. */
export const REPETITION_WINDOW = 64;

/**
 * What the penalties need to know about the sequence so far. OpenAI counts
 * only the completion ("how often the token appeared in the text so far" of
 * the generated text); llama.cpp's repetition penalty looks at the last
 * REPETITION_WINDOW tokens including the prompt. We keep both views.
 */
export class TokenHistory {
  /** token id → times it was generated (prompt excluded). */
  readonly generatedCounts = new Map<number, number>();
  /** The last REPETITION_WINDOW tokens of prompt + completion, oldest first. */
  private readonly window: number[];

  constructor(promptTokens: readonly number[]) {
    this.window = promptTokens.slice(-REPETITION_WINDOW);
  }

  push(id: number): void {
    this.generatedCounts.set(id, (this.generatedCounts.get(id) ?? 0) + 1);
    this.window.push(id);
    if (this.window.length > REPETITION_WINDOW) this.window.shift();
  }

  /** Distinct ids in the repetition window. */
  recentIds(): Set<number> {
    return new Set(this.window);
  }
}

/**
 * OpenAI: logit[j] -= count[j] * frequency + (count[j] > 0) * presence,
 * counted over the generated tokens.
 */
export function applyPresenceFrequency(
  logits: Float32Array,
  counts: ReadonlyMap<number, number>,
  presence: number,
  frequency: number,
): void {
  if (presence === 0 && frequency === 0) return;
  for (const [id, count] of counts) {
    if (id < 0 || id >= logits.length || count <= 0) continue;
    logits[id] = logits[id]! - count * frequency - presence;
  }
}

/**
 * CTRL / llama.cpp: a token seen recently has a positive logit divided by the
 * penalty and a negative one multiplied by it, so it always becomes less likely
 * (for penalty > 1).
 */
export function applyRepetitionPenalty(logits: Float32Array, recent: Iterable<number>, penalty: number): void {
  if (penalty === 1) return;
  for (const id of recent) {
    if (id < 0 || id >= logits.length) continue;
    const l = logits[id]!;
    logits[id] = l > 0 ? l / penalty : l * penalty;
  }
}

/**
 * OpenAI logit_bias: the bias is added to the logit. -100 is documented as a
 * ban, so a bias at or below -100 removes the token outright (a finite -100
 * could still win against a strongly peaked distribution); +100 is large
 * enough in practice to force the token.
 */
export function applyLogitBias(logits: Float32Array, bias: ReadonlyMap<number, number>): void {
  for (const [id, b] of bias) {
    if (id < 0 || id >= logits.length) continue;
    logits[id] = b <= -100 ? -Infinity : logits[id]! + b;
  }
}
