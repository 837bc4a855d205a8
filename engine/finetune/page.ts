/**
 * Cursor pagination as OpenAI's list endpoints do it (and the SDKs'
 * CursorPage follows): `after` is the id of the last item of the previous
 * page, `has_more` says whether to ask again.
 */
import { InvalidRequestError } from '../errors.ts';

export interface Page<T> {
  data: T[];
  has_more: boolean;
}

/** `items` in listing order; an `after` that names no item is a 400 (a stale or foreign cursor). */
export function pageAfter<T extends { id: string }>(items: readonly T[], after: string | undefined, limit: number): Page<T> {
  let start = 0;
  if (after !== undefined) {
    const i = items.findIndex((x) => x.id === after);
    if (i < 0) throw new InvalidRequestError(`The cursor '${after}' does not name an item of this list.`, 'after', 'invalid_cursor');
    start = i + 1;
  }
  return { data: items.slice(start, start + limit), has_more: start + limit < items.length };
}
