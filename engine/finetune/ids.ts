/**
 * Ids of the fine-tuning objects and the only way they become paths.
 *
 * An id is a fixed prefix and 24 lowercase hex characters (96 random bits).
 * Every path under the data dir is built by pathOf(), which refuses anything
 * that is not exactly such an id, so an id taken from a URL can never name a
 * file outside its directory ("../", "/", "%2e%2e" all fail the pattern).
 */
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';

export type IdKind = 'file' | 'ftjob' | 'ftevent';

const PATTERN: Record<IdKind, RegExp> = {
  file: /^file-[0-9a-f]{24}$/,
  ftjob: /^ftjob-[0-9a-f]{24}$/,
  ftevent: /^ftevent-[0-9a-f]{24}$/,
};

export function newId(kind: IdKind): string {
  return `${kind}-${randomBytes(12).toString('hex')}`;
}

export function isId(kind: IdKind, s: string): boolean {
  return PATTERN[kind].test(s);
}

/** `dir/<id><suffix>`; throws on anything but a well-formed id (a bug, never user input: callers check isId first). */
export function pathOf(dir: string, kind: IdKind, id: string, suffix = ''): string {
  if (!isId(kind, id)) throw new Error(`not a ${kind} id: ${JSON.stringify(id)}`);
  return join(dir, `${id}${suffix}`);
}

/** A fine-tuned model's id: ft:<base>:<suffix>:<job id> (a suffix has no ':'). */
const FINE_TUNED_ID = /^ft:(.+):[A-Za-z0-9._-]*:ftjob-[0-9a-f]{24}$/;

/** The model at the root of a chain of fine-tunes ("ft:ft:a:x:ftjob-…:y:ftjob-…" → "a"); any other id is its own root. */
export function rootModelId(id: string): string {
  let root = id;
  for (let m = FINE_TUNED_ID.exec(root); m !== null; m = FINE_TUNED_ID.exec(root)) root = m[1]!;
  return root;
}

export const unixSeconds = (ms: number = Date.now()): number => Math.floor(ms / 1000);
