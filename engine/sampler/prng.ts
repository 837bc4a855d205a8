/**
 * Seeded pseudo-random numbers for sampling: SplitMix32 to spread the seed,
 * then xoshiro128** (Blackman & Vigna, 2018) — small, fast, well studied, and
 * easy to reproduce in any language, so a fixed `seed` gives the same draws
 * everywhere.
 */

/** SplitMix32 step: turns any 32-bit value into a well-mixed one. */
function splitmix32(x: number): number {
  x = (x + 0x9e3779b9) | 0;
  let z = x;
  z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
  z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
  return (z ^ (z >>> 16)) >>> 0;
}

export class Prng {
  private s0: number;
  private s1: number;
  private s2: number;
  private s3: number;

  /**
   * Any safe integer seed (OpenAI seeds may exceed 32 bits): both halves feed
   * the state, so seeds differing only in their high bits still differ.
   */
  constructor(seed: number) {
    if (!Number.isSafeInteger(seed)) throw new RangeError(`seed ${seed} is not a safe integer`);
    const lo = seed >>> 0;
    const hi = Math.floor(seed / 0x1_0000_0000) >>> 0;
    this.s0 = splitmix32(lo);
    this.s1 = splitmix32(this.s0 ^ hi);
    this.s2 = splitmix32(this.s1 + 0x6a09e667);
    this.s3 = splitmix32(this.s2 ^ 0xbb67ae85);
    // xoshiro must not start from the all-zero state.
    if ((this.s0 | this.s1 | this.s2 | this.s3) === 0) this.s0 = 1;
  }

  /** Uniform 32-bit unsigned integer. */
  nextU32(): number {
    const result = Math.imul(rotl(Math.imul(this.s1, 5), 7), 9) >>> 0;
    const t = this.s1 << 9;
    this.s2 ^= this.s0;
    this.s3 ^= this.s1;
    this.s1 ^= this.s2;
    this.s0 ^= this.s3;
    this.s2 ^= t;
    this.s3 = rotl(this.s3, 11);
    return result;
  }

  /** Uniform float in [0, 1) with 32 random bits. */
  next(): number {
    return this.nextU32() / 0x1_0000_0000;
  }
}

function rotl(x: number, k: number): number {
  return (x << k) | (x >>> (32 - k));
}

/** A fresh random seed for requests that did not fix one. */
export function randomSeed(): number {
  const buf = new Uint32Array(2);
  crypto.getRandomValues(buf);
  // 53 bits: the most a JS number carries exactly.
  return (buf[0]! & 0x1f_ffff) * 0x1_0000_0000 + buf[1]!;
}
