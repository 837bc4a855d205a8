/**
 * Per-step token masks. A CompiledConstraint pairs a grammar's automaton with
 * a tokenizer's trie and caches, per automaton state, the tokens it allows and
 * the cost (bytes still owed) after each — computed once by one trie walk, so
 * a step whose state was seen before costs a map lookup. A Matcher is one
 * generation's position in it: advance by a token, roll back N tokens.
 */
import { Automaton, DEAD, UNKNOWN } from './automaton.ts';
import type { Grammar } from './ir.ts';
import { tokenTrie, type TokenTrie } from './token-trie.ts';
import type { Tokenizer } from '../types.ts';

/** The tokens a state allows (in id order of the walk) and the state's cost after each. */
export interface TokenMask {
  ids: Int32Array;
  costAfter: Float32Array;
  /** The smallest costAfter (Infinity when no token is allowed). */
  minCost: number;
}

/** Masks kept per compiled grammar before its cache is cleared. */
const MAX_CACHED_MASKS = 4096;
/**
 * Allowed-token entries (8 bytes each) cached across all compiled grammars;
 * past it every cache is cleared (a 50k-vocab string state alone is ~50k).
 */
const MAX_CACHED_ENTRIES = 8_000_000;
let cachedEntries = 0;
const withCaches = new Set<CompiledConstraint>();

function clearAllMaskCaches(): void {
  for (const c of withCaches) c.clearMasks();
  withCaches.clear();
  cachedEntries = 0;
}

export class CompiledConstraint {
  readonly automaton: Automaton;
  readonly trie: TokenTrie;
  private readonly masks = new Map<number, TokenMask>();
  private entries = 0;
  // Walk scratch, grown as needed.
  private walkNode = new Int32Array(256);
  private walkState = new Int32Array(256);
  private outIds = new Int32Array(1024);
  private outCost = new Float32Array(1024);

  constructor(grammar: Grammar, trie: TokenTrie) {
    this.automaton = new Automaton(grammar);
    this.trie = trie;
  }

  mask(state: number): TokenMask {
    let m = this.masks.get(state);
    if (m === undefined) {
      m = this.walk(state);
      if (this.masks.size >= MAX_CACHED_MASKS) this.clearMasks();
      if (cachedEntries + m.ids.length > MAX_CACHED_ENTRIES) clearAllMaskCaches();
      this.masks.set(state, m);
      this.entries += m.ids.length;
      cachedEntries += m.ids.length;
      withCaches.add(this);
    }
    return m;
  }

  clearMasks(): void {
    cachedEntries -= this.entries;
    this.entries = 0;
    this.masks.clear();
  }

  /** Depth-first walk of the trie, carrying the automaton state. */
  private walk(state: number): TokenMask {
    const a = this.automaton;
    const t = this.trie;
    let top = 0;
    let n = 0;
    let minCost = Infinity;
    this.walkNode[0] = 0;
    this.walkState[0] = state;
    top = 1;
    while (top > 0) {
      top--;
      const node = this.walkNode[top]!;
      const s = this.walkState[top]!;
      const row = a.row(s);
      for (let e = t.firstEdge[node]!, end = t.firstEdge[node + 1]!; e < end; e++) {
        let ns = row[t.edgeByte[e]!]!;
        if (ns === UNKNOWN) ns = a.step(s, t.edgeByte[e]!);
        if (ns === DEAD) continue;
        const child = t.edgeChild[e]!;
        const cost = a.cost(ns);
        // Only worth asking when this byte looped (string interiors); elsewhere states change with every byte.
        if (ns === s && t.firstEdge[child + 1]! > t.firstEdge[child]! && loopsCover(a.selfLoops(ns), t.subtreeBytes, child)) {
          // Every byte below keeps the state: the whole subtree is allowed, at this cost.
          const end = t.subEnd[child]!;
          for (let k = t.subStart[child]!; k < end; k++) {
            if (n === this.outIds.length) this.growOut();
            this.outIds[n] = t.subtreeTokens[k]!;
            this.outCost[n] = cost;
            n++;
          }
          if (cost < minCost && end > t.subStart[child]!) minCost = cost;
          continue;
        }
        for (let k = t.firstToken[child]!, kend = t.firstToken[child + 1]!; k < kend; k++) {
          if (n === this.outIds.length) this.growOut();
          this.outIds[n] = t.tokens[k]!;
          this.outCost[n] = cost;
          n++;
          if (cost < minCost) minCost = cost;
        }
        if (t.firstEdge[child + 1]! > t.firstEdge[child]!) {
          if (top === this.walkNode.length) this.growWalk();
          this.walkNode[top] = child;
          this.walkState[top] = ns;
          top++;
        }
      }
    }
    return { ids: this.outIds.slice(0, n), costAfter: this.outCost.slice(0, n), minCost };
  }

  private growOut(): void {
    const ids = new Int32Array(this.outIds.length * 2);
    ids.set(this.outIds);
    this.outIds = ids;
    const c = new Float32Array(this.outCost.length * 2);
    c.set(this.outCost);
    this.outCost = c;
  }

  private growWalk(): void {
    const n = new Int32Array(this.walkNode.length * 2);
    n.set(this.walkNode);
    this.walkNode = n;
    const s = new Int32Array(this.walkState.length * 2);
    s.set(this.walkState);
    this.walkState = s;
  }
}

/** Is every byte below trie node `node` in the loop set? */
function loopsCover(loops: Uint32Array, subtreeBytes: Uint32Array, node: number): boolean {
  const o = node * 8;
  for (let w = 0; w < 8; w++) if ((subtreeBytes[o + w]! & ~loops[w]!) !== 0) return false;
  return true;
}

/** Compiled constraints per tokenizer, by grammar key (a small LRU). */
const MAX_COMPILED = 64;
/** Automaton states (each up to ~1 KB of transitions) before a compiled grammar is rebuilt. */
const MAX_STATES = 100_000;
const compiled = new WeakMap<TokenTrie, Map<string, CompiledConstraint>>();

/** The compiled form of a grammar for a tokenizer (cached by grammar.key). */
export function compileConstraint(grammar: Grammar, tok: Tokenizer): CompiledConstraint {
  const trie = tokenTrie(tok);
  let byKey = compiled.get(trie);
  if (byKey === undefined) compiled.set(trie, (byKey = new Map()));
  let c = byKey.get(grammar.key);
  if (c !== undefined && c.automaton.stateCount > MAX_STATES) {
    // Recursive grammars meet new stacks forever; start over rather than grow
    // without bound (generations in flight keep the old one until they end).
    c.clearMasks();
    withCaches.delete(c);
    byKey.delete(grammar.key);
    c = undefined;
  }
  if (c !== undefined) {
    byKey.delete(grammar.key); // re-insert: most recently used last
  } else {
    c = new CompiledConstraint(grammar, trie);
    if (byKey.size >= MAX_COMPILED) {
      const oldest = byKey.keys().next().value!;
      const evicted = byKey.get(oldest)!;
      evicted.clearMasks();
      withCaches.delete(evicted);
      byKey.delete(oldest);
    }
  }
  byKey.set(grammar.key, c);
  return c;
}

/** One generation's position in a constraint. */
export class Matcher {
  private readonly history: number[] = [];
  private current: number;

  constructor(readonly constraint: CompiledConstraint) {
    this.current = constraint.automaton.initial;
  }

  get state(): number {
    return this.current;
  }
  get accepting(): boolean {
    return this.constraint.automaton.accepting(this.current);
  }
  /** Accepting and no byte may follow: only a stop token is left. */
  get finished(): boolean {
    return this.constraint.automaton.finished(this.current);
  }
  /** Fewest bytes that still complete the output. */
  get cost(): number {
    return this.constraint.automaton.cost(this.current);
  }

  mask(): TokenMask {
    return this.constraint.mask(this.current);
  }

  /** Would the token's bytes be accepted from here? */
  allows(bytes: Uint8Array): boolean {
    return this.constraint.automaton.stepBytes(this.current, bytes) !== DEAD;
  }

  /** Advances by a token's bytes; throws if the grammar rejects them (a masking bug). */
  advance(bytes: Uint8Array): void {
    const next = this.constraint.automaton.stepBytes(this.current, bytes);
    if (next === DEAD) throw new Error('grammar: token rejected by the automaton (mask and matcher disagree)');
    this.history.push(this.current);
    this.current = next;
  }

  /** Undoes the last n advances (speculative decoding rewinds rejected drafts). */
  rollback(n: number): void {
    if (n < 0 || n > this.history.length) throw new RangeError(`cannot roll back ${n} of ${this.history.length} tokens`);
    if (n === 0) return;
    this.current = this.history[this.history.length - n]!;
    this.history.length -= n;
  }

  /** Tokens advanced so far. */
  get length(): number {
    return this.history.length;
  }
}
