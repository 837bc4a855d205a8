/**
 * Typed engine errors. The HTTP layer maps each to an OpenAI error envelope
 * and status (server/errors.ts); anything else becomes a 500.
 */

/** The request queue is at its cap: HTTP 503 with Retry-After. */
export class QueueFullError extends Error {
  override readonly name = 'QueueFullError';
  constructor(
    message: string,
    readonly retryAfterSeconds: number,
  ) {
    super(message);
  }
}

/** The request cannot be served as asked (prompt too long, bad token id): HTTP 400. */
export class InvalidRequestError extends Error {
  override readonly name = 'InvalidRequestError';
  constructor(
    message: string,
    readonly param: string | null = null,
    readonly code: string | null = null,
  ) {
    super(message);
  }
}

/** A native call failed; `status` is the libbraid status code (c/include/braid.h). */
export class NativeError extends Error {
  override readonly name = 'NativeError';
  constructor(
    message: string,
    readonly status: number,
  ) {
    super(message);
  }
}

/** The generation was cancelled (client disconnect or AbortSignal). */
export class AbortedError extends Error {
  override readonly name = 'AbortedError';
  constructor(message = 'generation aborted') {
    super(message);
  }
}
