/*
 * ngram.h — the hashed n-gram input embedding (docs/architecture.md, "N-gram embedding").
 *
 *   x_t ← E[id_t] + Σ_{k=2..order} G[row_k(id_{t−k+1} … id_t)]     G = token_ngram [M, D]
 *
 * Each n-gram that ends at token t (the bigram of the previous token and id_t; for order 3
 * also the trigram) picks one row of a table of M rows by a hash. A position whose history is
 * unknown (the first tokens of a context or of a training row) skips that n-gram.
 *
 * Why: a small ternary model spends most of its early training learning which token follows
 * which; a row per (hashed) n-gram hands it that memory directly, at the cost of a gather per
 * token (a row of G is read, never multiplied). Collisions share a row, which training averages.
 *
 * The serving forward (chimera.c) and the trainer (train_model.c) both call ngram_row, so the
 * trained table is read back at the same rows. The history lives in the context's state as
 * token + 1 floats (0 = unknown), so save / load / copy / reset carry it with no extra code.
 */
#ifndef BRAID_NGRAM_H
#define BRAID_NGRAM_H

#include <stdint.h>

#define NGRAM_MAX_ORDER 3

/* splitmix64's finaliser: every input bit moves every output bit, so nearby keys
 * (the same history, the next token id) spread over the whole table. */
static inline uint64_t ngram_mix(uint64_t z) {
    z += 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* Row of the n-gram hist[0..k-1], cur (hist oldest first, k = 1 or 2 previous tokens) in a table
 * of `rows` rows over a vocabulary of V tokens. The order k+1 leads the key, so a bigram and a
 * trigram never have the same key (for V < 2^20; larger vocabularies wrap, which only adds collisions). */
static inline int64_t ngram_row(const int32_t *hist, int32_t k, int32_t cur, int64_t V, int64_t rows) {
    uint64_t key = (uint64_t)(k + 1);
    for (int32_t i = 0; i < k; i++) key = key * (uint64_t)V + (uint64_t)hist[i];
    key = key * (uint64_t)V + (uint64_t)cur;
    return (int64_t)(ngram_mix(key) % (uint64_t)rows);
}

#endif /* BRAID_NGRAM_H */
