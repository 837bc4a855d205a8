/**
 * Document sources: a named, finite, indexable list of training documents.
 * Documents are tokenized on first use and kept in memory, so a run only
 * tokenizes what its recipe actually reaches, and a second look (another
 * epoch, a replay, a resumed run in the same process) is free.
 */
import type { ArithmeticOptions } from './arithmetic.ts';
import { arithmeticChat, arithmeticProblem } from './arithmetic.ts';
import type { ChatExample } from './chat-example.ts';
import type { DocumentEncoder, TrainingDocument } from './encode.ts';

export interface DocumentSource {
  readonly name: string;
  /** Number of documents (> 0). */
  readonly size: number;
  /** Document `index` (0 ≤ index < size); the same value every time. */
  document(index: number): TrainingDocument;
}

/** Sources by name, as a recipe's mixes refer to them. */
export type SourceSet = ReadonlyMap<string, DocumentSource>;

/** A source over items that are encoded lazily and cached. */
class LazySource<T> implements DocumentSource {
  private readonly cache: (TrainingDocument | undefined)[];

  constructor(
    readonly name: string,
    private readonly items: readonly T[],
    private readonly encode: (item: T) => TrainingDocument,
  ) {
    if (items.length === 0) throw new Error(`source "${name}" has no documents`);
    this.cache = new Array<TrainingDocument | undefined>(items.length);
  }

  get size(): number {
    return this.items.length;
  }

  document(index: number): TrainingDocument {
    let d = this.cache[index];
    if (d === undefined) {
      const item = this.items[index];
      if (item === undefined) throw new RangeError(`source "${this.name}": document ${index} of ${this.items.length}`);
      d = this.encode(item);
      this.cache[index] = d;
    }
    return d;
  }
}

/** Plain-text documents (all loss). */
export function textSource(name: string, texts: readonly string[], encoder: DocumentEncoder): DocumentSource {
  return new LazySource(name, texts, (t) => encoder.text(t));
}

/** Chat documents (loss on assistant replies). */
export function chatSource(name: string, examples: readonly ChatExample[], encoder: DocumentEncoder): DocumentSource {
  return new LazySource(name, examples, (e) => encoder.chat(e));
}

/**
 * `count` generated arithmetic chats (training problems only); document i
 * is problem i of `contentSeed`, so nothing is stored until it is used.
 */
export function arithmeticSource(
  name: string,
  count: number,
  contentSeed: number,
  encoder: DocumentEncoder,
  opts: ArithmeticOptions = {},
): DocumentSource {
  if (!Number.isInteger(count) || count < 1) throw new RangeError(`source "${name}": count must be a positive integer, got ${count}`);
  const indices = Array.from({ length: count }, (_, i) => i);
  return new LazySource(name, indices, (i) => encoder.chat(arithmeticChat(arithmeticProblem(contentSeed, i, opts))));
}
