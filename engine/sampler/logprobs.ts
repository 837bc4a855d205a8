/**
 * Log-probabilities reported to clients (OpenAI `logprobs` / `top_logprobs`).
 */

/** log-softmax over the whole vocabulary, in float64 for the normaliser. */
export function logSoftmax(logits: Float32Array): Float32Array {
  let max = -Infinity;
  for (let i = 0; i < logits.length; i++) if (logits[i]! > max) max = logits[i]!;
  const out = new Float32Array(logits.length);
  if (max === -Infinity) return out.fill(-Infinity);
  let sum = 0;
  for (let i = 0; i < logits.length; i++) sum += Math.exp(logits[i]! - max);
  const logZ = max + Math.log(sum);
  for (let i = 0; i < logits.length; i++) out[i] = logits[i]! - logZ;
  return out;
}

/**
 * The k largest entries as { id, logprob }, most likely first (ties: lower id
 * first). One pass with a small sorted buffer: k is at most 20 in the API.
 */
export function topK(values: Float32Array, k: number): { id: number; logprob: number }[] {
  const best: { id: number; logprob: number }[] = [];
  if (k <= 0) return best;
  for (let id = 0; id < values.length; id++) {
    const v = values[id]!;
    if (best.length === k && !(v > best[k - 1]!.logprob)) continue;
    let at = best.length;
    while (at > 0 && v > best[at - 1]!.logprob) at--;
    best.splice(at, 0, { id, logprob: v });
    if (best.length > k) best.pop();
  }
  return best;
}
