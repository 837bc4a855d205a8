/**
 * The debt ledger: turns a grammar matcher into a per-step logits processor
 * that can never be cut off mid-structure. Its debt is the automaton state's
 * cost — the fewest bytes that complete the output — and its budget the
 * tokens left before max_tokens.
 *
 * - Hard rule: a token is allowed only if the debt after it fits in the
 *   tokens left after it (every byte has a one-byte token, so a debt of d
 *   bytes is payable in d tokens). Near the end this leaves only moves along
 *   the shortest legal completion, so output cut by max_tokens is complete.
 * - Pressure (seed `debt_ledger.pressure_weight` × (debt / budget)²): as the
 *   debt approaches the budget, tokens that pay debt (closing a string, a
 *   bracket) are raised by β·pressure and tokens that add debt lowered by as
 *   much; tokens that leave it unchanged keep their logit.
 * - A stop token is allowed only where the grammar accepts.
 * - If even the shortest completion does not fit (a tiny max_tokens), the
 *   tokenized shortest completion is forced when it fits in tokens; otherwise
 *   the request is refused up front.
 */
import { InvalidRequestError } from '../errors.ts';
import type { Matcher } from '../grammar/matcher.ts';
import type { Tokenizer } from '../types.ts';
import { ObligationTracker } from './obligations.ts';

/** Seed 002 debt_ledger.pressure_weight. */
export const PRESSURE_WEIGHT = 0.3;
/** Logit added to a debt-paying token at full pressure, per unit of pressure weight (β_d). */
const BETA = 10;

export interface LedgerTelemetry {
  /** Obligations (brackets, strings, fences) opened and discharged in the output. */
  opened: number;
  closed: number;
  /** Obligations discharged at steps where the budget removed otherwise legal tokens. */
  forced: number;
  /** Steps at which the budget removed otherwise legal tokens. */
  forcedSteps: number;
}

export class DebtLedger {
  private readonly tracker = new ObligationTracker();
  private readonly scratch: Float32Array;
  private readonly stopIds: Int32Array;
  /** Tokens to emit as they are (the shortest completion when max_tokens is below the debt). */
  private readonly forcedQueue: number[] = [];
  private forcedThisStep = false;
  private forced = 0;
  private forcedSteps = 0;

  constructor(
    readonly matcher: Matcher,
    private readonly tok: Tokenizer,
    maxTokens: number,
    private readonly pressureWeight = PRESSURE_WEIGHT,
    /** The request field that set maxTokens, for the error when it is too small. */
    budgetParam: 'max_tokens' | 'max_completion_tokens' = 'max_tokens',
  ) {
    this.scratch = new Float32Array(matcher.constraint.trie.vocabSize);
    this.stopIds = matcher.constraint.trie.stopIds;
    const debt = matcher.cost;
    if (debt > maxTokens) {
      const ids = this.tokenizeShortest();
      if (ids.length > maxTokens) {
        throw new InvalidRequestError(
          `${budgetParam} ${maxTokens} is too small for the requested format: its shortest valid output takes ${ids.length} tokens`,
          budgetParam,
          'max_tokens_too_small',
        );
      }
      this.forcedQueue.push(...ids);
    }
  }

  /** The shortest completion from the current state, as tokens the matcher will accept. */
  private tokenizeShortest(): number[] {
    const bytes = this.matcher.constraint.automaton.shortestCompletion(this.matcher.state);
    const text = new TextDecoder().decode(bytes);
    const ids = this.tok.encode(text);
    const same = Buffer.compare(Buffer.concat(ids.map((id) => this.tok.tokenBytes(id))), bytes) === 0;
    if (same) return ids;
    const byteToken = this.matcher.constraint.trie.byteToken;
    return [...bytes].map((b) => byteToken[b]!);
  }

  /** The logit pressure at a step with `remaining` tokens left: weight × (debt / budget)². */
  pressure(remaining: number): number {
    const tightness = Math.min(1, this.matcher.cost / Math.max(1, remaining - 1));
    return this.pressureWeight * tightness * tightness;
  }

  /** Highest debt a token may leave at a step with `remaining` tokens left (the budget rule). */
  private costLimit(remaining: number, minCost: number): number {
    const budget = remaining - 1;
    // A stop token fits whenever the grammar accepts. If nothing fits (possible
    // only if some byte has no one-byte token), take the cheapest moves.
    return this.matcher.accepting || minCost <= budget ? budget : minCost;
  }

  /**
   * How many tokens constrain() would leave finite at a step with `remaining` tokens left
   * (1 when the step is forced): the grammar's branching there, for the entropy valve.
   */
  allowedCount(remaining: number): number {
    if (this.forcedQueue.length > 0) return 1;
    const m = this.matcher;
    const mask = m.mask();
    const limit = this.costLimit(remaining, mask.minCost);
    let n = 0;
    for (let i = 0; i < mask.costAfter.length; i++) if (mask.costAfter[i]! <= limit) n++;
    if (m.accepting) {
      for (const id of this.stopIds) {
        const at = mask.ids.indexOf(id); // a stop token is allowed here even if the mask dropped it
        if (at < 0 || mask.costAfter[at]! > limit) n++;
      }
    }
    return n;
  }

  /**
   * Masks and biases processed logits in place for a step with `remaining`
   * tokens left, this one included.
   */
  constrain(logits: Float32Array, remaining: number): void {
    const out = this.scratch;
    out.fill(-Infinity);
    this.forcedThisStep = false;
    const m = this.matcher;
    if (this.forcedQueue.length > 0) {
      const id = this.forcedQueue[0]!;
      out[id] = logits[id]!;
      this.forcedThisStep = true;
      logits.set(out);
      return;
    }
    const mask = m.mask();
    const debt = m.cost;
    const pressure = this.pressure(remaining);
    const limit = this.costLimit(remaining, mask.minCost);
    const { ids, costAfter } = mask;
    let dropped = false;
    for (let i = 0; i < ids.length; i++) {
      const c = costAfter[i]!;
      if (c > limit) {
        dropped = true;
        continue;
      }
      const id = ids[i]!;
      out[id] = pressure > 0 && c !== debt ? logits[id]! + (c < debt ? BETA : -BETA) * pressure : logits[id]!;
    }
    if (m.accepting) for (const id of this.stopIds) out[id] = logits[id]!;
    this.forcedThisStep = dropped;
    logits.set(out);
  }

  /** Records a generated (non-stop) token. */
  accept(id: number): void {
    const bytes = this.tok.tokenBytes(id);
    this.matcher.advance(bytes);
    if (this.forcedQueue[0] === id) this.forcedQueue.shift();
    const closed = this.tracker.push(bytes);
    if (this.forcedThisStep) {
      this.forced += closed;
      this.forcedSteps++;
    }
  }

  telemetry(): LedgerTelemetry {
    return { opened: this.tracker.opened, closed: this.tracker.closed, forced: this.forced, forcedSteps: this.forcedSteps };
  }
}
