/**
 * Stable hashing for the data side of training: held-out splits and seeded
 * orders must not depend on the platform, the Node version or the order files
 * are listed in, so they hash names (file ids, lemmas, operand pairs) with
 * FNV-1a over UTF-8 and draw numbers from engine/sampler/prng.ts (xoshiro128**).
 */
import { Prng } from '../../sampler/prng.ts';

const utf8 = new TextEncoder();

/**
 * 32-bit FNV-1a of the UTF-8 bytes of `text`, then MurmurHash3's finaliser:
 * FNV alone barely moves the high bits when only the last characters differ
 * ("ca01", "ca02"), and isHeldOut compares the whole value against a threshold.
 */
export function stableHash(text: string): number {
  let h = 0x811c9dc5;
  for (const b of utf8.encode(text)) {
    h ^= b;
    h = Math.imul(h, 0x01000193);
  }
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/**
 * True for about `fraction` of all keys, always the same ones. The salt keeps
 * splits of different sources independent (a word held out of WordNet is not
 * thereby more likely to name a held-out Brown file).
 */
export function isHeldOut(salt: string, key: string, fraction: number): boolean {
  // 2^32 buckets: the fraction is exact to ~1e-9, and 0 / 1 mean none / all.
  return stableHash(`${salt}\u0000${key}`) < fraction * 0x1_0000_0000;
}

/** A PRNG seeded by a run seed and a name, e.g. (seed, "phase 2 / arithmetic / epoch 3"). */
export function seededPrng(seed: number, name: string): Prng {
  if (!Number.isInteger(seed) || seed < 0 || seed > 0xffff_ffff) {
    throw new RangeError(`seed must be an integer in [0, 2^32), got ${seed}`);
  }
  // 53 bits from two hashes of (seed, name): distinct pairs get distinct streams in practice.
  const hi = stableHash(`${seed}/${name}`);
  const lo = stableHash(`${name}/${seed}`) >>> 11;
  return new Prng(hi * 0x20_0000 + lo);
}

/** Uniform integer in [0, n); 32 random bits, so the bias is below n / 2^32. */
export function randomInt(prng: Prng, n: number): number {
  return n <= 1 ? 0 : Math.floor(prng.next() * n);
}

/** A permutation of 0..n-1 (Fisher–Yates), a pure function of (seed, name, n). */
export function seededPermutation(seed: number, name: string, n: number): Uint32Array {
  const perm = new Uint32Array(n);
  for (let i = 0; i < n; i++) perm[i] = i;
  const prng = seededPrng(seed, name);
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(prng.next() * (i + 1));
    const t = perm[i]!;
    perm[i] = perm[j]!;
    perm[j] = t;
  }
  return perm;
}
