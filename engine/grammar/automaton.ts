/**
 * A grammar (ir.ts) compiled to a nondeterministic pushdown automaton over
 * bytes, in the llama.cpp GBNF style: a state is the set of possible parse
 * stacks, each stack a persistent linked list of return positions whose top is
 * a byte-set element. Stacks and states are interned, so a state is a small
 * integer, equal parses share one id, and each (state, byte) transition is
 * computed once and memoized — that is what makes per-state mask caches hit.
 *
 * Tail calls do not push a frame, so right recursion (`chars ::= char chars |
 * ""`) loops in constant stack: a string's interior is one state.
 *
 * Every state knows its cost: the fewest bytes that complete it (0 when
 * accepting). The debt ledger budgets with it.
 */
import { GrammarError, hasByte, type ByteSet, type Expr, type Grammar } from './ir.ts';

const K_END = 0;
const K_BYTE = 1;
const K_RULE = 2;

/** A state with no stack: the byte was rejected. */
export const DEAD = -1;
/** The stack id of a finished parse. */
const ACCEPT = 0;
export const UNKNOWN = -2;

interface State {
  stacks: Int32Array;
  accepting: boolean;
  /** Fewest bytes to an accepting state (Infinity: none, a trap). */
  cost: number;
  trans: Int32Array | null;
  loops: Uint32Array | null;
}

/** Lowered grammar: rules → alternatives → flat element runs ending in K_END. */
class Lowering {
  readonly kind: number[] = [];
  readonly arg: number[] = [];
  readonly sets: ByteSet[] = [];
  readonly ruleAlts: number[][] = [];
  readonly ruleIds = new Map<string, number>();
  private readonly pending: { id: number; alts: Expr[][] }[] = [];

  constructor(private readonly g: Grammar) {}

  ruleId(name: string): number {
    let id = this.ruleIds.get(name);
    if (id === undefined) {
      const e = this.g.rules.get(name);
      if (e === undefined) throw new GrammarError(`undefined rule '${name}'`);
      id = this.newRule(e.k === 'alt' ? e.items.map(items) : [items(e)]);
      this.ruleIds.set(name, id);
    }
    return id;
  }

  private newRule(alts: Expr[][]): number {
    const id = this.ruleAlts.length;
    this.ruleAlts.push([]);
    this.pending.push({ id, alts });
    return id;
  }

  run(): void {
    while (this.pending.length > 0) {
      const { id, alts } = this.pending.pop()!;
      for (const a of alts) {
        const start = this.kind.length;
        this.ruleAlts[id]!.push(start);
        // Helper rules met while emitting this run are only queued, so their
        // elements land after this run's end marker, never inside it.
        const slots = a.flatMap(flatten);
        for (const s of slots) this.emit(s);
        this.kind.push(K_END);
        this.arg.push(0);
      }
    }
  }

  private emit(e: Expr): void {
    if (e.k === 'byte') {
      this.kind.push(K_BYTE);
      this.arg.push(this.sets.length);
      this.sets.push(e.set);
      return;
    }
    this.kind.push(K_RULE);
    this.arg.push(this.helper(e));
  }

  /** A rule id for a ref, alternative or repetition inside a sequence. */
  private helper(e: Expr): number {
    if (e.k === 'ref') return this.ruleId(e.name);
    if (e.k === 'alt') return this.newRule(e.items.map(items));
    if (e.k === 'repeat') {
      const { item, min, max } = e;
      if (min > 0) return this.newRule([[...Array<Expr>(min).fill(item), { k: 'repeat', item, min: 0, max: max - min }]]);
      if (max === Infinity) {
        // star ::= item star | ε  (a tail call: constant stack). The rule refers
        // to itself through a name no grammar can spell.
        const id = this.newRule([]);
        this.pending.pop();
        const self = `\0star${id}`;
        this.ruleIds.set(self, id);
        this.pending.push({ id, alts: [[item, { k: 'ref', name: self }], []] });
        return id;
      }
      if (max <= 0) return this.newRule([[]]);
      // item{0,n} ::= item item{0,n-1} | ε
      return this.newRule([[item, { k: 'repeat', item, min: 0, max: max - 1 }], []]);
    }
    return this.newRule([items(e)]);
  }
}

const items = (e: Expr): Expr[] => (e.k === 'seq' ? e.items : [e]);
const flatten = (e: Expr): Expr[] => (e.k === 'seq' ? e.items.flatMap(flatten) : [e]);

export class Automaton {
  private readonly kind: Int8Array;
  private readonly arg: Int32Array;
  private readonly sets: ByteSet[];
  private readonly ruleAlts: Int32Array[];
  /** Fewest bytes from element position to the end of its run. */
  private readonly minFrom: Float64Array;

  private readonly nodePos: number[] = [0];
  private readonly nodeParent: number[] = [-1];
  private readonly nodeCost: number[] = [0];
  private readonly nodeIds = new Map<number, number>();
  private readonly states: State[] = [];
  private readonly stateIds = new Map<string, number>();
  readonly initial: number;

  constructor(g: Grammar) {
    const low = new Lowering(g);
    const root = low.ruleId(g.root);
    low.run();
    this.kind = Int8Array.from(low.kind);
    this.arg = Int32Array.from(low.arg);
    this.sets = low.sets;
    this.ruleAlts = low.ruleAlts.map((a) => Int32Array.from(a));
    const ruleMin = this.ruleMinLengths();
    this.minFrom = new Float64Array(this.kind.length);
    for (let p = this.kind.length - 1; p >= 0; p--) {
      const k = this.kind[p];
      this.minFrom[p] = k === K_END ? 0 : (k === K_BYTE ? 1 : ruleMin[this.arg[p]!]!) + this.minFrom[p + 1]!;
    }
    if (ruleMin[root] === Infinity) throw new GrammarError('the grammar accepts no finite output');
    this.checkLeftRecursion(ruleMin);
    const out = new Set<number>();
    for (const a of this.ruleAlts[root]!) this.expand(a, -1, out, new Set());
    this.initial = this.intern(out);
  }

  /** Fixed point of the shortest expansion of each rule. */
  private ruleMinLengths(): Float64Array {
    const min = new Float64Array(this.ruleAlts.length).fill(Infinity);
    for (let changed = true; changed; ) {
      changed = false;
      for (let r = 0; r < this.ruleAlts.length; r++) {
        for (const start of this.ruleAlts[r]!) {
          let len = 0;
          for (let p = start; this.kind[p] !== K_END; p++) len += this.kind[p] === K_BYTE ? 1 : min[this.arg[p]!]!;
          if (len < min[r]!) {
            min[r] = len;
            changed = true;
          }
        }
      }
    }
    return min;
  }

  /** A rule that can reach itself without consuming a byte would expand forever. */
  private checkLeftRecursion(ruleMin: Float64Array): void {
    const left: number[][] = this.ruleAlts.map((alts) => {
      const out: number[] = [];
      for (const start of alts) {
        for (let p = start; this.kind[p] === K_RULE; p++) {
          const r = this.arg[p]!;
          out.push(r);
          if (ruleMin[r] !== 0) break;
        }
      }
      return out;
    });
    const color = new Uint8Array(left.length);
    const visit = (r: number): void => {
      color[r] = 1;
      for (const s of left[r]!) {
        if (color[s] === 1) throw new GrammarError('the grammar is left-recursive (a rule can reach itself without consuming input)');
        if (color[s] === 0) visit(s);
      }
      color[r] = 2;
    };
    for (let r = 0; r < left.length; r++) if (color[r] === 0) visit(r);
  }

  private node(pos: number, parent: number): number {
    const key = (parent + 1) * this.kind.length + pos;
    let id = this.nodeIds.get(key);
    if (id === undefined) {
      id = this.nodePos.length;
      this.nodePos.push(pos);
      this.nodeParent.push(parent);
      this.nodeCost.push(this.minFrom[pos]! + (parent < 0 ? 0 : this.nodeCost[parent]!));
      this.nodeIds.set(key, id);
    }
    return id;
  }

  /** Adds every stack reachable from (pos, parent) without consuming a byte. */
  private expand(pos: number, parent: number, out: Set<number>, seen: Set<number>): void {
    const key = (parent + 1) * this.kind.length + pos;
    if (seen.has(key)) return;
    seen.add(key);
    const k = this.kind[pos];
    if (k === K_BYTE) {
      out.add(this.node(pos, parent));
    } else if (k === K_END) {
      if (parent < 0) out.add(ACCEPT);
      else this.expand(this.nodePos[parent]!, this.nodeParent[parent]!, out, seen);
    } else {
      const ret = this.kind[pos + 1] === K_END ? parent : this.node(pos + 1, parent);
      for (const a of this.ruleAlts[this.arg[pos]!]!) this.expand(a, ret, out, seen);
    }
  }

  private intern(stacks: Set<number>): number {
    if (stacks.size === 0) return DEAD;
    const sorted = Int32Array.from(stacks).sort();
    const key = sorted.join(',');
    let id = this.stateIds.get(key);
    if (id === undefined) {
      id = this.states.length;
      let cost = Infinity;
      for (const s of sorted) cost = Math.min(cost, this.nodeCost[s]!);
      this.states.push({ stacks: sorted, accepting: sorted[0] === ACCEPT, cost, trans: null, loops: null });
      this.stateIds.set(key, id);
    }
    return id;
  }

  /**
   * The state's transition row: row[byte] is the next state, DEAD, or
   * UNKNOWN (-2) until step() computes it. For hot loops (the trie walk).
   */
  row(state: number): Int32Array {
    const st = this.states[state]!;
    return (st.trans ??= new Int32Array(256).fill(UNKNOWN));
  }

  /** The state after one byte, or DEAD. */
  step(state: number, byte: number): number {
    const t = this.row(state);
    const cached = t[byte]!;
    if (cached !== UNKNOWN) return cached;
    return this.computeStep(state, byte);
  }

  /**
   * The next state depends only on which stacks accept the byte, so bytes
   * with the same accepting stacks (all the letters inside a string, say)
   * share one computation: the row is filled for all of them at once.
   */
  private computeStep(state: number, byte: number): number {
    const st = this.states[state]!;
    const t = st.trans!;
    const sets = Array.from(st.stacks, (s) => (s === ACCEPT ? null : this.sets[this.arg[this.nodePos[s]!]!]!));
    const accepts = (i: number, b: number) => sets[i] !== null && hasByte(sets[i]!, b);
    const out = new Set<number>();
    const seen = new Set<number>();
    for (let i = 0; i < sets.length; i++) {
      if (accepts(i, byte)) this.expand(this.nodePos[st.stacks[i]!]! + 1, this.nodeParent[st.stacks[i]!]!, out, seen);
    }
    const next = this.intern(out);
    for (let b = 0; b < 256; b++) {
      if (t[b] !== UNKNOWN) continue;
      let same = true;
      for (let i = 0; i < sets.length && same; i++) same = accepts(i, b) === accepts(i, byte);
      if (same) t[b] = next;
    }
    return next;
  }

  /** The bytes that lead from the state back to itself (8 words; computed once per state). */
  selfLoops(state: number): Uint32Array {
    const st = this.states[state]!;
    if (st.loops === null) {
      const loops = new Uint32Array(8);
      for (let b = 0; b < 256; b++) if (this.step(state, b) === state) loops[b >> 5]! |= 1 << (b & 31);
      st.loops = loops;
    }
    return st.loops;
  }

  /** The state after a byte string, or DEAD. */
  stepBytes(state: number, bytes: Uint8Array): number {
    let s = state;
    for (let i = 0; i < bytes.length && s !== DEAD; i++) s = this.step(s, bytes[i]!);
    return s;
  }

  accepting(state: number): boolean {
    return this.states[state]!.accepting;
  }

  /** Accepting and nothing more may follow. */
  finished(state: number): boolean {
    const st = this.states[state]!.stacks;
    return st.length === 1 && st[0] === ACCEPT;
  }

  cost(state: number): number {
    return this.states[state]!.cost;
  }

  get stateCount(): number {
    return this.states.length;
  }

  /** The shortest byte string that completes the state (the debt ledger's forced path). */
  shortestCompletion(state: number): Uint8Array {
    const out: number[] = [];
    let s = state;
    while (this.cost(s) > 0) {
      if (this.cost(s) === Infinity) throw new GrammarError('no completion exists from this state');
      const want = this.cost(s) - 1;
      let best = -1;
      for (const id of this.states[s]!.stacks) {
        if (id === ACCEPT || this.nodeCost[id] !== this.cost(s)) continue;
        const set = this.sets[this.arg[this.nodePos[id]!]!]!;
        for (let b = 0; b < 256 && best < 0; b++) if (hasByte(set, b) && this.cost(this.step(s, b)) === want) best = b;
        if (best >= 0) break;
      }
      if (best < 0) throw new GrammarError('internal: no cost-decreasing byte');
      out.push(best);
      s = this.step(s, best);
    }
    return Uint8Array.from(out);
  }
}
