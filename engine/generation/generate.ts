/**
 * One generation, as the AsyncGenerator behind LoadedModel.generate: wait for
 * a slot, prefill the prompt (reusing the slot's state when the prompt extends
 * it), then per step: grammar mask + debt ledger (when the request has a
 * grammar) → sample → stop ids → streaming detokenize → stop sequences →
 * yield a delta → evaluate the chosen token (on a Parcae looping model with the
 * loop count the entropy valve picks from the step's distribution, the grammar's
 * branching and the ledger's pressure at the next step, and the queue depth).
 */
import { AbortedError, InvalidRequestError } from '../errors.ts';
import { GrammarError } from '../grammar/ir.ts';
import { compileConstraint, Matcher } from '../grammar/matcher.ts';
import { DebtLedger, type LedgerTelemetry } from '../ledger/ledger.ts';
import { Sampler, rawLogprobs, type SampledToken } from '../sampler/sampler.ts';
import type { Scheduler } from '../scheduler.ts';
import type { ChosenLogprob, GenerationEvent, GenerationRequest, Tokenizer, TokenLogprob } from '../types.ts';
import { gatherSignals } from '../valve/signals.ts';
import { DEFAULT_VALVE_MODE, EntropyValve, entropyBits } from '../valve/valve.ts';
import { StopMatcher } from './stop-matcher.ts';

export interface GenerationContext {
  tokenizer: Tokenizer;
  scheduler: Scheduler;
  contextLength: number;
  nVocab: number;
  /** chimera.loop.max of a Parcae looping model, 0 if it does not loop (the valve is then inert). */
  loopMax: number;
  /** Told about every finished generation (telemetry). */
  onFinished(r: { promptTokens: number; completionTokens: number; decodeMs: number; ledger?: LedgerTelemetry }): void;
}

/** Most alternatives per position (OpenAI allows 20). */
const MAX_TOP_LOGPROBS = 20;

function validate(g: GenerationContext, req: GenerationRequest): void {
  const n = req.promptTokens.length;
  if (n === 0) throw new InvalidRequestError('the prompt is empty', 'prompt');
  // 0 is allowed only to score the prompt (completions echo + logprobs: perplexity over HTTP).
  const least = req.promptLogprobs ? 0 : 1;
  if (!Number.isInteger(req.maxTokens) || req.maxTokens < least) {
    throw new InvalidRequestError(
      `max_tokens must be an integer >= ${least}${least ? ' (0 only with echo and logprobs)' : ''}, got ${req.maxTokens}`,
      'max_tokens',
    );
  }
  if (n + req.maxTokens > g.contextLength) {
    throw new InvalidRequestError(
      `this model's context length is ${g.contextLength} tokens, but ${n} prompt tokens plus ` +
        `max_tokens ${req.maxTokens} were requested; shorten the prompt or lower max_tokens`,
      'max_tokens',
      'context_length_exceeded',
    );
  }
  for (const id of req.promptTokens) {
    if (!Number.isInteger(id) || id < 0 || id >= g.nVocab) {
      throw new InvalidRequestError(`token id ${id} is outside the vocabulary (0..${g.nVocab - 1})`, 'prompt');
    }
  }
  const k = req.topLogprobs;
  if (k !== null && (!Number.isInteger(k) || k < 0 || k > MAX_TOP_LOGPROBS)) {
    throw new InvalidRequestError(`top_logprobs must be an integer in 0..${MAX_TOP_LOGPROBS}`, 'top_logprobs');
  }
}

/** The request's grammar compiled for this tokenizer, with its ledger (null: unconstrained). */
function ledgerFor(tok: Tokenizer, req: GenerationRequest): DebtLedger | null {
  if (req.grammar === undefined) return null;
  try {
    return new DebtLedger(new Matcher(compileConstraint(req.grammar, tok)), tok, req.maxTokens, undefined, req.maxTokensParam);
  } catch (e) {
    if (e instanceof GrammarError) throw new InvalidRequestError(`the grammar cannot be used: ${e.message}`, 'grammar');
    throw e;
  }
}

function tokenLogprob(tok: Tokenizer, id: number, logprob: number): TokenLogprob {
  const bytes = tok.tokenBytes(id);
  return { id, token: tok.decode([id]), bytes: Array.from(bytes), logprob };
}

function chosen(tok: Tokenizer, s: { id: number; logprob: number; topLogprobs: { id: number; logprob: number }[] }) {
  return {
    ...tokenLogprob(tok, s.id, s.logprob),
    topLogprobs: s.topLogprobs.map((t) => tokenLogprob(tok, t.id, t.logprob)),
  } satisfies ChosenLogprob;
}

/** Log-probabilities of each prompt token given the ones before it (the first has none). */
function promptLogprobs(
  tok: Tokenizer,
  prompt: readonly number[],
  all: Float32Array,
  V: number,
  k: number,
): (ChosenLogprob | null)[] {
  const out: (ChosenLogprob | null)[] = [null];
  for (let i = 1; i < prompt.length; i++) {
    const row = all.subarray((i - 1) * V, i * V);
    out.push(chosen(tok, { id: prompt[i]!, ...rawLogprobs(row, prompt[i]!, k) }));
  }
  return out;
}

/**
 * Pairs released text with the tokens that produced it: a token's logprob is
 * reported in the delta that releases the end of its text.
 */
class LogprobQueue {
  private readonly pending: { entry: ChosenLogprob; start: number; end: number }[] = [];

  add(entry: ChosenLogprob, start: number, end: number): void {
    this.pending.push({ entry, start, end });
  }

  /** Entries whose text is fully released (final: whose text started before the end). */
  take(released: number, final: boolean): ChosenLogprob[] {
    const out: ChosenLogprob[] = [];
    while (this.pending.length > 0) {
      const p = this.pending[0]!;
      const done = final ? p.start < released || p.end <= released : p.end <= released;
      if (!done) break;
      out.push(p.entry);
      this.pending.shift();
    }
    return out;
  }
}

export async function* generate(
  g: GenerationContext,
  req: GenerationRequest,
): AsyncGenerator<GenerationEvent, void, undefined> {
  validate(g, req);
  const { tokenizer: tok, scheduler } = g;
  const ledger = ledgerFor(tok, req);
  const { signal } = req;
  const wantLogprobs = req.topLogprobs !== null;
  const k = req.topLogprobs ?? 0;

  const valve = new EntropyValve(req.mode ?? DEFAULT_VALVE_MODE, g.loopMax);

  const tQueued = performance.now();
  const lease = await scheduler.acquire(req.promptTokens, signal, valve.promptLoops, req.continuation === true);
  let completionTokens = 0;
  let decodeMs = 0;
  try {
    const tPrefill = performance.now();
    const { logits: prefillLogits } = await lease.slot.prefill(req.promptTokens, {
      allLogits: req.promptLogprobs,
      signal,
      loops: valve.promptLoops,
    });
    let stepLoops = valve.promptLoops; // loops of the eval that produced `logits`
    const V = g.nVocab;
    const promptLp = req.promptLogprobs ? promptLogprobs(tok, req.promptTokens, prefillLogits, V, k) : undefined;
    let logits = req.promptLogprobs ? prefillLogits.subarray(prefillLogits.length - V) : prefillLogits;
    const tDecode = performance.now();

    const sampler = new Sampler(req.sampling, req.promptTokens, wantLogprobs ? k : null);
    const decoder = tok.createStreamDecoder({ skipSpecial: true });
    const stops = new StopMatcher(req.stop);
    const lpQueue = new LogprobQueue();
    let decodedLen = 0; // characters produced by the decoder so far
    let releasedLen = 0; // characters handed to the client so far
    let finishReason: 'stop' | 'length' = 'length';
    let stoppedByText = false;

    for (;;) {
      if (signal.aborted) throw new AbortedError();
      if (completionTokens >= req.maxTokens) break; // max_tokens 0: prompt scoring only
      const remaining = req.maxTokens - completionTokens;
      // The valve reads the model's raw distribution before sampling transforms touch it.
      const stepBits = valve.active ? entropyBits(logits) : 0;
      valve.record(stepLoops);
      const s: SampledToken = sampler.sample(logits, ledger === null ? undefined : (p) => ledger.constrain(p, remaining));
      sampler.accept(s.id);
      completionTokens++;
      if (tok.stopIds.has(s.id)) {
        finishReason = 'stop';
        break;
      }
      ledger?.accept(s.id);
      const piece = decoder.push(s.id);
      if (wantLogprobs) {
        const entry = chosen(tok, { id: s.id, logprob: s.logprob!, topLogprobs: s.topLogprobs! });
        lpQueue.add(entry, decodedLen, decodedLen + piece.length);
      }
      decodedLen += piece.length;
      const r = stops.push(piece);
      releasedLen += r.text.length;
      const lps = wantLogprobs ? lpQueue.take(releasedLen, r.stopped) : [];
      if (r.text.length > 0 || lps.length > 0) yield { kind: 'delta', text: r.text, logprobs: lps };
      if (r.stopped) {
        finishReason = 'stop';
        stoppedByText = true;
        break;
      }
      if (completionTokens >= req.maxTokens) break;
      // The grammar and ledger signals describe the step this eval computes (after accept).
      const nextLoops = valve.active
        ? valve.decide(
            gatherSignals(stepBits, { ledger, remaining: req.maxTokens - completionTokens, queueDepth: scheduler.queueDepth }),
          )
        : 1;
      logits = await lease.slot.append([s.id], signal, nextLoops);
      stepLoops = nextLoops;
    }

    // Release the bytes of an unfinished character and any text held back as a
    // possible stop sequence (which can still complete one).
    if (!stoppedByText) {
      const tail = decoder.flush();
      const r = stops.push(tail);
      const text = r.text + (r.stopped ? '' : stops.flush());
      releasedLen += text.length;
      const lps = wantLogprobs ? lpQueue.take(releasedLen, true) : [];
      if (text.length > 0 || lps.length > 0) yield { kind: 'delta', text, logprobs: lps };
      if (r.stopped) finishReason = 'stop';
    }

    decodeMs = performance.now() - tDecode;
    const done: GenerationEvent = {
      kind: 'done',
      finishReason,
      promptTokens: req.promptTokens.length,
      completionTokens,
      timings: { queuedMs: tPrefill - tQueued, prefillMs: tDecode - tPrefill, decodeMs },
    };
    if (promptLp !== undefined) done.promptLogprobs = promptLp;
    if (ledger !== null) done.ledger = ledger.telemetry();
    if (valve.looping && completionTokens > 0) done.meanLoops = valve.meanLoops;
    yield done;
  } finally {
    lease.release();
    g.onFinished({
      promptTokens: req.promptTokens.length,
      completionTokens,
      decodeMs,
      ...(ledger !== null ? { ledger: ledger.telemetry() } : {}),
    });
  }
}
