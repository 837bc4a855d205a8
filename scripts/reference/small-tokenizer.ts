/**
 * A byte-level BPE of exactly `vocab` tokens cut from the committed 4k BPE, for the reference's
 * tiny golden models (a small vocabulary keeps the [V, D] embedding gradient small). Used by
 * make-tiny-model.ts and make-all-model.ts.
 */
import type { TokenizerSpec } from '../../engine/tokenizer/spec.ts';

/** The first `vocab` tokens of a byte-level BPE: bytes, the first merges, then the control tokens. */
export function smallTokenizer(full: TokenizerSpec, vocab: number): TokenizerSpec {
  const control = full.tokens.map((_, i) => i).filter((i) => full.token_type[i] !== 1);
  const keep = vocab - control.length; // 256 bytes + merges
  const merges = full.merges.slice(0, keep - 256);
  // in the 4k tokenizer token 256 + i is the result of merge i; check before relying on it
  merges.forEach((m, i) => {
    if (m.replace(' ', '') !== full.tokens[256 + i]) throw new Error(`merge ${i} "${m}" is not token ${256 + i}`);
  });
  const ids = [...Array.from({ length: keep }, (_, i) => i), ...control];
  const remap = (id: number): number => ids.indexOf(id);
  return {
    ...full,
    name: `${full.name}-cut${vocab}`,
    tokens: ids.map((i) => full.tokens[i]!),
    token_type: ids.map((i) => full.token_type[i]!),
    merges,
    bos_token_id: remap(full.bos_token_id),
    eos_token_id: remap(full.eos_token_id),
    padding_token_id: remap(full.padding_token_id),
    provenance: `${full.provenance}; cut to ${vocab} tokens (bytes, first ${merges.length} merges, control tokens) by scripts/reference/make-tiny-model.ts`,
  };
}
