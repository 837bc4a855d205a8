/**
 * The vocabulary as a byte trie (one per tokenizer, built once): a token's
 * mask bit is decided by walking its bytes through the automaton, and tokens
 * sharing a prefix share that walk — a rejected prefix prunes its whole
 * subtree. Control tokens (chat markers, eos) are not in the trie: they are
 * never grammar text; the ledger allows stop tokens when the grammar accepts.
 */
import type { Tokenizer } from '../types.ts';

export class TokenTrie {
  /** Edges of node i: edgeByte/edgeChild[firstEdge[i] .. firstEdge[i+1]). */
  readonly firstEdge: Int32Array;
  readonly edgeByte: Uint8Array;
  readonly edgeChild: Int32Array;
  /** Tokens ending at node i: tokens[firstToken[i] .. firstToken[i+1]). */
  readonly firstToken: Int32Array;
  readonly tokens: Int32Array;
  readonly vocabSize: number;
  /** Ids that end generation (the tokenizer's stopIds). */
  readonly stopIds: Int32Array;
  /** byteToken[b]: a token that is exactly the byte b, or -1. */
  readonly byteToken: Int32Array;
  /** The tokens of node i's subtree (itself included): subtreeTokens[subStart[i] .. subEnd[i]). */
  readonly subtreeTokens: Int32Array;
  readonly subStart: Int32Array;
  readonly subEnd: Int32Array;
  /** The bytes on the edges below node i, as 8 words per node (a byte set). */
  readonly subtreeBytes: Uint32Array;

  constructor(vocab: readonly Uint8Array[], excluded: ReadonlySet<number>, stopIds: ReadonlySet<number>) {
    this.vocabSize = vocab.length;
    this.stopIds = Int32Array.from(stopIds);
    this.byteToken = new Int32Array(256).fill(-1);
    // Build with maps, then flatten breadth-first into typed arrays.
    const children: Map<number, number>[] = [new Map()];
    const ending: number[][] = [[]];
    for (let id = 0; id < vocab.length; id++) {
      const bytes = vocab[id]!;
      if (excluded.has(id) || bytes.length === 0) continue;
      if (bytes.length === 1 && this.byteToken[bytes[0]!] === -1) this.byteToken[bytes[0]!] = id;
      let n = 0;
      for (const b of bytes) {
        let c = children[n]!.get(b);
        if (c === undefined) {
          c = children.length;
          children.push(new Map());
          ending.push([]);
          children[n]!.set(b, c);
        }
        n = c;
      }
      ending[n]!.push(id);
    }
    const order: number[] = [0];
    const newId = new Int32Array(children.length);
    for (let i = 0; i < order.length; i++) {
      newId[order[i]!] = i;
      for (const [, c] of [...children[order[i]!]!].sort((a, b) => a[0] - b[0])) order.push(c);
    }
    const nNodes = order.length;
    this.firstEdge = new Int32Array(nNodes + 1);
    this.firstToken = new Int32Array(nNodes + 1);
    this.edgeByte = new Uint8Array(nNodes - 1);
    this.edgeChild = new Int32Array(nNodes - 1);
    const toks: number[] = [];
    let e = 0;
    for (let i = 0; i < nNodes; i++) {
      const old = order[i]!;
      this.firstEdge[i] = e;
      this.firstToken[i] = toks.length;
      for (const [b, c] of [...children[old]!].sort((x, y) => x[0] - y[0])) {
        this.edgeByte[e] = b;
        this.edgeChild[e] = newId[c]!;
        e++;
      }
      toks.push(...ending[old]!);
    }
    this.firstEdge[nNodes] = e;
    this.firstToken[nNodes] = toks.length;
    this.tokens = Int32Array.from(toks);

    // Subtree summaries, so a mask walk can take a whole subtree at once when
    // every byte below it keeps the automaton where it is (string interiors).
    this.subtreeBytes = new Uint32Array(nNodes * 8);
    for (let n = nNodes - 1; n >= 0; n--) {
      for (let k = this.firstEdge[n]!; k < this.firstEdge[n + 1]!; k++) {
        const c = this.edgeChild[k]!;
        const b = this.edgeByte[k]!;
        this.subtreeBytes[n * 8 + (b >> 5)]! |= 1 << (b & 31);
        for (let w = 0; w < 8; w++) this.subtreeBytes[n * 8 + w]! |= this.subtreeBytes[c * 8 + w]!;
      }
    }
    this.subStart = new Int32Array(nNodes);
    this.subEnd = new Int32Array(nNodes);
    this.subtreeTokens = new Int32Array(this.tokens.length);
    let at = 0;
    const stack: number[] = [0];
    while (stack.length > 0) {
      const n = stack.pop()!;
      if (n < 0) {
        this.subEnd[~n] = at;
        continue;
      }
      this.subStart[n] = at;
      for (let k = this.firstToken[n]!; k < this.firstToken[n + 1]!; k++) this.subtreeTokens[at++] = this.tokens[k]!;
      stack.push(~n);
      for (let k = this.firstEdge[n + 1]! - 1; k >= this.firstEdge[n]!; k--) stack.push(this.edgeChild[k]!);
    }
  }

  get nodeCount(): number {
    return this.firstEdge.length - 1;
  }

  /** Every byte has a single-byte token: the ledger's byte costs are token upper bounds. */
  get coversAllBytes(): boolean {
    return this.byteToken.every((t) => t >= 0);
  }
}

const tries = new WeakMap<Tokenizer, TokenTrie>();

/** The tokenizer's trie, built on first use. */
export function tokenTrie(tok: Tokenizer): TokenTrie {
  let t = tries.get(tok);
  if (t === undefined) {
    const vocab = Array.from({ length: tok.vocabSize }, (_, id) => tok.tokenBytes(id));
    t = new TokenTrie(vocab, tok.specialIds, tok.stopIds);
    tries.set(tok, t);
  }
  return t;
}
