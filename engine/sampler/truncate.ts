/**
 * Turning processed logits into one token: greedy argmax, or temperature then
 * truncation (top_k, top_p, min_p) then a draw. The order follows vLLM and
 * Hugging Face (temperature first, truncation on the tempered distribution).
 * top_p and min_p each keep a prefix of the tokens sorted by probability, so
 * applying them in either order gives the same set.
 */

export interface TruncationOptions {
  temperature: number;
  /** 0 disables. */
  topK: number;
  /** 1 disables. */
  topP: number;
  /** 0 disables. */
  minP: number;
}

/** Index of the largest logit (lowest id on ties); -1 if every logit is -Infinity. */
export function argmax(logits: Float32Array): number {
  let best = -1;
  let bestV = -Infinity;
  for (let i = 0; i < logits.length; i++) {
    if (logits[i]! > bestV) {
      bestV = logits[i]!;
      best = i;
    }
  }
  return best;
}

/**
 * The smallest scaled logit a token may have and still be drawn. Ties at the
 * threshold are all kept, so top_k can keep slightly more than k tokens when
 * logits are exactly equal (rare with float logits, and harmless).
 */
function cutoff(scaled: Float32Array, max: number, opts: TruncationOptions): number {
  let cut = -Infinity;
  if (opts.minP > 0) cut = Math.max(cut, max + Math.log(opts.minP));
  const needSort = (opts.topK > 0 && opts.topK < scaled.length) || opts.topP < 1;
  if (!needSort) return cut;
  // Native typed-array sort is the cheapest exact way to find the k-th value and
  // the nucleus edge; it sorts ascending, so we walk it from the end.
  const sorted = Float32Array.from(scaled).sort();
  let n = sorted.length;
  while (n > 0 && sorted[n - 1] === -Infinity) n--; // nothing finite beyond here (NaN sorts last, none expected)
  const keep = opts.topK > 0 ? Math.min(opts.topK, n) : n;
  if (keep < sorted.length) cut = Math.max(cut, sorted[sorted.length - keep]!);
  if (opts.topP < 1) {
    let total = 0;
    for (let r = 0; r < keep; r++) total += Math.exp(sorted[sorted.length - 1 - r]! - max);
    let acc = 0;
    for (let r = 0; r < keep; r++) {
      const v = sorted[sorted.length - 1 - r]!;
      acc += Math.exp(v - max);
      if (acc >= opts.topP * total) {
        cut = Math.max(cut, v);
        break;
      }
    }
  }
  return cut;
}

/**
 * Draws one token from the tempered, truncated distribution with the uniform
 * number u ∈ [0, 1). Returns -1 if no token is left (every logit -Infinity).
 */
export function drawToken(logits: Float32Array, opts: TruncationOptions, u: number): number {
  const inv = 1 / opts.temperature;
  const scaled = new Float32Array(logits.length);
  let max = -Infinity;
  for (let i = 0; i < logits.length; i++) {
    const s = logits[i]! * inv;
    scaled[i] = s;
    if (s > max) max = s;
  }
  if (max === -Infinity) return -1;
  const cut = cutoff(scaled, max, opts);
  let total = 0;
  for (let i = 0; i < scaled.length; i++) if (scaled[i]! >= cut) total += Math.exp(scaled[i]! - max);
  let target = u * total;
  let last = -1;
  for (let i = 0; i < scaled.length; i++) {
    if (!(scaled[i]! >= cut)) continue;
    last = i;
    target -= Math.exp(scaled[i]! - max);
    if (target < 0) return i;
  }
  // Rounding can leave a sliver of `target`; it belongs to the last kept token.
  return last;
}
