/**
 * The BPE merge loop over token ids. Repeatedly merges the adjacent pair with
 * the lowest merge rank (leftmost first on ties), as GPT-2 and HF tokenizers do.
 *
 * A binary heap with lazy invalidation keeps a piece of n symbols at
 * O(n log n), so one 100 KB run of letters does not turn quadratic.
 */

export interface MergeTable {
  /** (left id, right id) → rank; key = left * vocabSize + right. */
  rank: Map<number, number>;
  /** rank → id of the merged token. */
  result: Int32Array;
  vocabSize: number;
}

/** Heap keys pack (rank, position); rank < 2^21 and position < 2^32 keep it exact. */
const POS_RANGE = 4294967296;

class NumberHeap {
  private a: number[] = [];
  get size(): number {
    return this.a.length;
  }
  push(v: number): void {
    const a = this.a;
    let i = a.length;
    a.push(v);
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (a[p]! <= v) break;
      a[i] = a[p]!;
      i = p;
    }
    a[i] = v;
  }
  pop(): number {
    const a = this.a;
    const top = a[0]!;
    const last = a.pop()!;
    if (a.length > 0) {
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        if (l >= a.length) break;
        const r = l + 1;
        const c = r < a.length && a[r]! < a[l]! ? r : l;
        if (a[c]! >= last) break;
        a[i] = a[c]!;
        i = c;
      }
      a[i] = last;
    }
    return top;
  }
}

/** Merges the byte-token ids of one piece; returns the final ids (the input is not modified). */
export function bpeMerge(ids: readonly number[], table: MergeTable): number[] {
  const n = ids.length;
  if (n < 2) return ids.slice();
  const V = table.vocabSize;
  const id = Int32Array.from(ids);
  const next = new Int32Array(n);
  const prev = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    next[i] = i + 1 < n ? i + 1 : -1;
    prev[i] = i - 1;
  }
  const heap = new NumberHeap();
  const consider = (i: number) => {
    const j = next[i]!;
    if (j < 0) return;
    const r = table.rank.get(id[i]! * V + id[j]!);
    if (r !== undefined) heap.push(r * POS_RANGE + i);
  };
  for (let i = 0; i + 1 < n; i++) consider(i);

  while (heap.size > 0) {
    const key = heap.pop();
    const r = Math.floor(key / POS_RANGE);
    const i = key - r * POS_RANGE;
    // Stale entries: i was merged away (id -1) or its pair changed since it was pushed.
    if (id[i]! < 0) continue;
    const j = next[i]!;
    if (j < 0 || table.rank.get(id[i]! * V + id[j]!) !== r) continue;
    id[i] = table.result[r]!;
    id[j] = -1;
    const k = next[j]!;
    next[i] = k;
    if (k >= 0) prev[k] = i;
    if (prev[i]! >= 0) consider(prev[i]!);
    consider(i);
  }
  const out: number[] = [];
  for (let i = 0; i >= 0; i = next[i]!) out.push(id[i]!);
  return out;
}
