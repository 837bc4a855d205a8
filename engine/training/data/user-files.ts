/**
 * User data files for training and fine-tuning: `.jsonl` files are chat
 * examples (validated line by line, chat-jsonl.ts), anything else is plain
 * UTF-8 text, one document per file. Each file becomes a source named after
 * it, and dataFilesRecipe trains on them in one phase.
 */
import { readFileSync } from 'node:fs';
import { basename } from 'node:path';
import type { ChatExample } from './chat-example.ts';
import { formatChatJsonlErrors, validateChatJsonl, type ChatJsonlError } from './chat-jsonl.ts';
import type { DocumentEncoder } from './encode.ts';
import type { Recipe } from './recipe.ts';
import { chatSource, textSource, type DocumentSource, type SourceSet } from './source.ts';

export type DataFile = { kind: 'text'; path: string; text: string } | { kind: 'chat'; path: string; examples: ChatExample[] };

/** A data file that cannot be used; `errors` carries the line-numbered problems of a JSONL file. */
export class DataFileError extends Error {
  override readonly name = 'DataFileError';
  constructor(
    readonly path: string,
    readonly errors: readonly ChatJsonlError[],
  ) {
    super(`${path}:\n  ${formatChatJsonlErrors(errors).split('\n').join('\n  ')}`);
  }
}

export function readDataFile(path: string): DataFile {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new DataFileError(path, [{ line: 0, message: `cannot read: ${(e as Error).message}` }]);
  }
  if (/\.jsonl$/i.test(path)) {
    const r = validateChatJsonl(text);
    if (!r.ok) throw new DataFileError(path, r.errors);
    return { kind: 'chat', path, examples: r.examples };
  }
  if (text.trim().length === 0) throw new DataFileError(path, [{ line: 0, message: 'the file is empty' }]);
  return { kind: 'text', path, text };
}

function characters(file: DataFile): number {
  return file.kind === 'text' ? file.text.length : file.examples.reduce((n, e) => n + e.messages.reduce((m, t) => m + t.content.length, 0), 0);
}

/**
 * One source per file, named by file name ("notes.txt", a second
 * "notes.txt" → "notes.txt#2"), and a mix weighting each by its characters,
 * so every file is seen about equally often per token.
 */
export function loadDataFiles(paths: readonly string[], encoder: DocumentEncoder): { sources: SourceSet; mix: Record<string, number> } {
  const sources = new Map<string, DocumentSource>();
  const mix: Record<string, number> = {};
  for (const path of paths) {
    const file = readDataFile(path);
    let name = basename(path);
    for (let n = 2; sources.has(name); n++) name = `${basename(path)}#${n}`;
    sources.set(name, file.kind === 'chat' ? chatSource(name, file.examples, encoder) : textSource(name, [file.text], encoder));
    mix[name] = characters(file);
  }
  return { sources, mix };
}

export interface DataFilesRecipeOptions {
  totalTokens: number;
  batch: number;
  window: number;
  /** Belt overlap (default 0). */
  overlap?: number;
}

/** One phase over user files (loadDataFiles' mix), at a fixed batch × window. */
export function dataFilesRecipe(mix: Readonly<Record<string, number>>, opts: DataFilesRecipeOptions): Recipe {
  return {
    name: 'data-files',
    totalTokens: opts.totalTokens,
    tokensPerStep: opts.batch * opts.window,
    phases: [{ name: 'data', share: 1, window: opts.window, overlap: opts.overlap ?? 0, mix: { ...mix }, replay: 0 }],
  };
}
