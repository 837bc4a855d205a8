/**
 * The BPE merge loop over token ids. Repeatedly merges the adjacent pair with
 * the lowest merge rank (leftmost first on ties), as GPT-2 and HF tokenizers do.
 *
 * A binary heap with lazy invalidation keeps a piece of n symbols at
 * O(n log n), so one 100 KB run of letters does not turn quadratic.
 */

/**
 * (left id, right id) → merge rank, open addressing over typed arrays. A
 * Map<number> keyed by left * vocabSize + right is slow for big vocabularies:
 * past 2^31 (o200k: 200k²) keys are heap numbers, so every lookup allocates.
 */
export class PairRanks {
  private left: Int32Array;
  private right: Int32Array;
  private rank: Int32Array;
  private mask: number;
  private count = 0;

  constructor(capacity = 1024) {
    let size = 16;
    while (size < capacity * 2) size *= 2;
    this.left = new Int32Array(size).fill(-1); // -1 = empty slot
    this.right = new Int32Array(size);
    this.rank = new Int32Array(size);
    this.mask = size - 1;
  }

  get size(): number {
    return this.count;
  }

  private slot(l: number, r: number): number {
    let h = (Math.imul(l, 0x9e3779b1) ^ Math.imul(r, 0x85ebca77)) >>> 0;
    h = (h ^ (h >>> 15)) & this.mask;
    while (this.left[h] !== -1 && (this.left[h] !== l || this.right[h] !== r)) h = (h + 1) & this.mask;
    return h;
  }

  /** The rank of merging l and r, or -1. */
  get(l: number, r: number): number {
    const h = this.slot(l, r);
    return this.left[h] === -1 ? -1 : this.rank[h]!;
  }

  /** Adds the pair unless present (the first, lowest rank wins); returns whether it was added. */
  add(l: number, r: number, rank: number): boolean {
    const h = this.slot(l, r);
    if (this.left[h] !== -1) return false;
    this.left[h] = l;
    this.right[h] = r;
    this.rank[h] = rank;
    if (++this.count * 2 > this.mask) this.grow();
    return true;
  }

  private grow(): void {
    const { left, right, rank } = this;
    const bigger = new PairRanks(left.length);
    for (let i = 0; i < left.length; i++) if (left[i] !== -1) bigger.add(left[i]!, right[i]!, rank[i]!);
    ({ left: this.left, right: this.right, rank: this.rank, mask: this.mask } = bigger);
  }
}

export interface MergeTable {
  /** (left id, right id) → rank. */
  ranks: PairRanks;
  /** rank → id of the merged token. */
  result: Int32Array;
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
    const r = table.ranks.get(id[i]!, id[j]!);
    if (r >= 0) heap.push(r * POS_RANGE + i);
  };
  for (let i = 0; i + 1 < n; i++) consider(i);

  while (heap.size > 0) {
    const key = heap.pop();
    const r = Math.floor(key / POS_RANGE);
    const i = key - r * POS_RANGE;
    // Stale entries: i was merged away (id -1) or its pair changed since it was pushed.
    if (id[i]! < 0) continue;
    const j = next[i]!;
    if (j < 0 || table.ranks.get(id[i]!, id[j]!) !== r) continue;
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
