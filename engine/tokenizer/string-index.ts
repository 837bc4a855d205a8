/**
 * A set of strings → their index, looked up by a range of another string
 * without slicing it. Building a 200k vocabulary resolves every merge
 * "left right" into three ids (left, right, left+right), and deriving o200k's
 * merges takes millions of substring lookups; with a Map<string> each is a
 * new string to allocate and hash, which dominated the load time.
 */
export class StringIndex {
  private readonly strings: string[] = [];
  private readonly values: number[] = [];
  /**
   * Open addressing, two int32 per slot: [position in strings + 1 (0 = empty),
   * full hash]. Side by side so a probe costs one cache miss, and most probes
   * that miss are settled without touching the string.
   */
  private table: Int32Array;
  private mask: number;

  constructor(expected = 1024) {
    let size = 16;
    while (size < expected * 2) size *= 2;
    this.table = new Int32Array(2 * size);
    this.mask = size - 1;
  }

  get size(): number {
    return this.strings.length;
  }

  /** Adds s → value unless s is present (the first value stays); returns whether it was added. */
  add(s: string, value: number): boolean {
    if (this.get(s) >= 0) return false;
    if ((this.strings.length + 1) * 2 > this.mask + 1) this.grow();
    this.strings.push(s);
    this.values.push(value);
    this.place(this.strings.length - 1);
    return true;
  }

  /** The value of s[a, b), or -1. */
  get(s: string, a = 0, b = s.length): number {
    const full = hashRange(s, a, b, -1);
    for (let h = full & this.mask; ; h = (h + 1) & this.mask) {
      const k = this.table[2 * h]!;
      if (k === 0) return -1;
      if (this.table[2 * h + 1] !== full) continue;
      const t = this.strings[k - 1]!;
      if (t.length !== b - a) continue;
      let i = 0;
      while (i < t.length && t.charCodeAt(i) === s.charCodeAt(a + i)) i++;
      if (i === t.length) return this.values[k - 1]!;
    }
  }

  /** The value of s with the character at `skip` left out ("ab cd" → "abcd"), or -1. */
  getWithout(s: string, skip: number): number {
    const full = hashRange(s, 0, s.length, skip);
    for (let h = full & this.mask; ; h = (h + 1) & this.mask) {
      const k = this.table[2 * h]!;
      if (k === 0) return -1;
      if (this.table[2 * h + 1] !== full) continue;
      const t = this.strings[k - 1]!;
      if (t.length !== s.length - 1) continue;
      let i = 0;
      while (i < t.length && t.charCodeAt(i) === s.charCodeAt(i < skip ? i : i + 1)) i++;
      if (i === t.length) return this.values[k - 1]!;
    }
  }

  private place(k: number): void {
    const s = this.strings[k]!;
    const full = hashRange(s, 0, s.length, -1);
    let h = full & this.mask;
    while (this.table[2 * h] !== 0) h = (h + 1) & this.mask;
    this.table[2 * h] = k + 1;
    this.table[2 * h + 1] = full;
  }

  private grow(): void {
    this.table = new Int32Array(this.table.length * 2);
    this.mask = this.table.length / 2 - 1;
    for (let k = 0; k < this.strings.length; k++) this.place(k);
  }
}

/** FNV-1a over the UTF-16 units of s[a, b), leaving out index `skip`, finished with a mix; int32. */
function hashRange(s: string, a: number, b: number, skip: number): number {
  let h = 0x811c9dc5;
  for (let i = a; i < b; i++) if (i !== skip) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193);
  h ^= h >>> 16;
  return Math.imul(h, 0x45d9f3b) | 0;
}
