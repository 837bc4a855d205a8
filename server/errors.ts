/**
 * The one place where errors become HTTP responses. Every failure — a bad
 * body, a zod issue, an engine error, a bug — is rendered as OpenAI's envelope
 * { error: { message, type, param, code } } with the matching status, so
 * clients (the official SDKs map status → exception class) behave as they do
 * against api.openai.com.
 */
import type { Context } from 'hono';
import { HTTPException } from 'hono/http-exception';
import type { z } from 'zod';
import { AbortedError, InvalidRequestError, QueueFullError } from '../engine/errors.ts';

export type ErrorType = 'invalid_request_error' | 'authentication_error' | 'server_error';

export interface ErrorBody {
  error: { message: string; type: ErrorType; param: string | null; code: string | null };
}

/** An error that already knows its HTTP rendering. Throw it from any handler. */
export class ApiError extends Error {
  override readonly name = 'ApiError';
  constructor(
    readonly status: number,
    message: string,
    readonly type: ErrorType = 'invalid_request_error',
    readonly param: string | null = null,
    readonly code: string | null = null,
    readonly headers: Readonly<Record<string, string>> = {},
  ) {
    super(message);
  }

  body(): ErrorBody {
    return { error: { message: this.message, type: this.type, param: this.param, code: this.code } };
  }
}

export const invalidJson = (detail: string): ApiError =>
  new ApiError(400, `We could not parse the JSON body of your request: ${detail}`, 'invalid_request_error', null, 'invalid_json');

export const invalidRequest = (message: string, param: string | null = null, code: string | null = null): ApiError =>
  new ApiError(400, message, 'invalid_request_error', param, code);

export const modelNotFound = (id: string): ApiError =>
  new ApiError(404, `The model '${id}' does not exist or is not loaded.`, 'invalid_request_error', 'model', 'model_not_found');

export const routeNotFound = (method: string, path: string): ApiError =>
  new ApiError(404, `Unknown request URL: ${method} ${path}.`, 'invalid_request_error', null, 'unknown_url');

export const methodNotAllowed = (method: string, path: string, allow: string[]): ApiError =>
  new ApiError(405, `Method ${method} is not allowed on ${path}; use ${allow.join(' or ')}.`, 'invalid_request_error', null, 'method_not_allowed', {
    Allow: allow.join(', '),
  });

// The unread rest of the body may still be arriving: closing the connection
// tells the client not to reuse a socket the server is about to drop.
export const bodyTooLarge = (maxBytes: number): ApiError =>
  new ApiError(413, `The request body is larger than the limit of ${maxBytes} bytes.`, 'invalid_request_error', null, 'request_too_large', {
    Connection: 'close',
  });

export const invalidApiKey = (present: boolean): ApiError =>
  new ApiError(
    401,
    present ? 'Incorrect API key provided.' : "You didn't provide an API key. Send it as 'Authorization: Bearer <key>'.",
    'invalid_request_error',
    null,
    'invalid_api_key',
  );

/** Renders zod issues as one readable sentence; param is the first offending field path. */
export function fromZodError(error: z.ZodError): ApiError {
  const first = error.issues[0];
  if (first === undefined) return invalidRequest('Invalid request body.');
  const { issue, path } = mostSpecific(first, first.path);
  const param = formatPath(path);
  if (param === null) return invalidRequest(`Invalid request body: ${describe(issue)}.`);
  if (isMissing(issue)) return invalidRequest(`Missing required parameter: '${param}'.`, param, 'missing_required_parameter');
  return invalidRequest(`Invalid '${param}': ${describe(issue)}.`, param, 'invalid_value');
}

type Issue = z.core.$ZodIssue;

/**
 * An absent field, whatever the schema expected there (a type, an enum, a
 * union). Parsed with { reportInput: true } every issue carries its input,
 * and JSON has no undefined, so undefined means "not sent".
 */
function isMissing(issue: Issue): boolean {
  if ('input' in issue) return issue.input === undefined;
  return issue.code === 'invalid_type' && /received undefined/.test(issue.message);
}

/**
 * A union failure ("string or array of parts") is most useful reported from
 * the branch that got furthest into the value, e.g. content[0].type.
 */
function mostSpecific(issue: Issue, path: readonly PropertyKey[]): { issue: Issue; path: readonly PropertyKey[] } {
  if (issue.code !== 'invalid_union' || issue.errors.length === 0) return { issue, path };
  // Rank branches: deeper into the value first, then "right type, bad value" over "wrong type".
  const rank = (i: Issue): number => i.path.length * 2 + (i.code === 'invalid_type' ? 0 : 1);
  let best: Issue | undefined;
  for (const branch of issue.errors) {
    const candidate = branch[0];
    if (candidate !== undefined && rank(candidate) > 0 && (best === undefined || rank(candidate) > rank(best))) best = candidate;
  }
  return best === undefined ? { issue, path } : mostSpecific(best, [...path, ...best.path]);
}

function describe(issue: Issue): string {
  switch (issue.code) {
    case 'too_big': {
      const bound = issue.inclusive === false ? 'less than' : 'at most';
      return issue.origin === 'array' || issue.origin === 'string'
        ? `must have ${bound} ${count(Number(issue.maximum), issue.origin === 'array' ? 'item' : 'character')}`
        : `must be ${bound} ${String(issue.maximum)}`;
    }
    case 'too_small': {
      const bound = issue.inclusive === false ? 'more than' : 'at least';
      return issue.origin === 'array' || issue.origin === 'string'
        ? `must have ${bound} ${count(Number(issue.minimum), issue.origin === 'array' ? 'item' : 'character')}`
        : `must be ${bound} ${String(issue.minimum)}`;
    }
    case 'invalid_key':
      return issue.issues[0] === undefined ? 'invalid key' : `invalid key: ${describe(issue.issues[0])}`;
    case 'invalid_type':
      return issue.message.replace(/^Invalid input: /, '').replace(/expected int\b/, 'expected an integer');
    default:
      return lowerFirst(issue.message.replace(/^Invalid input: /, ''));
  }
}

const count = (n: number, noun: string): string => `${n} ${noun}${n === 1 ? '' : 's'}`;

/** ['messages', 0, 'content'] → "messages[0].content". */
function formatPath(segments: readonly PropertyKey[]): string | null {
  let out = '';
  for (const seg of segments) {
    if (typeof seg === 'number') out += `[${seg}]`;
    else out += out === '' ? String(seg) : `.${String(seg)}`;
  }
  return out === '' ? null : out;
}

const lowerFirst = (s: string): string => (s.length > 0 ? s[0]!.toLowerCase() + s.slice(1) : s);

/**
 * A socket reset while the body was still arriving: node's request stream
 * fails with "aborted" / ECONNRESET, wherever the body is read (readJson, the
 * body limit, a multipart upload). The client left; the server is not at fault.
 */
function isClientReset(err: unknown): err is Error {
  return err instanceof Error && (err as NodeJS.ErrnoException).code === 'ECONNRESET';
}

/**
 * Maps anything thrown to an ApiError. Unknown errors are logged with their
 * stack here and never leak their message to the client.
 */
export function toApiError(err: unknown): ApiError {
  if (err instanceof ApiError) return err;
  if (err instanceof QueueFullError) {
    return new ApiError(503, err.message, 'server_error', null, 'queue_full', {
      'Retry-After': String(Math.max(1, Math.ceil(err.retryAfterSeconds))),
    });
  }
  if (err instanceof InvalidRequestError) return invalidRequest(err.message, err.param, err.code);
  // The client went away: nobody reads this, but metrics record it as 499 (nginx's "client closed request").
  if (err instanceof AbortedError || isClientReset(err)) {
    return new ApiError(499, err.message, 'invalid_request_error', null, 'client_closed_request');
  }
  if (err instanceof HTTPException) {
    if (err.status === 413) return new ApiError(413, 'The request body is too large.', 'invalid_request_error', null, 'request_too_large');
    if (err.status < 500) return new ApiError(err.status, err.message || 'Bad request.', 'invalid_request_error');
  }
  console.error('[braid] internal error:', err);
  return new ApiError(500, 'The server had an error while processing your request.', 'server_error', null, 'internal_error');
}

/** A JSON response for an error (status outside hono's typed set, like 499, is allowed). */
export function errorResponse(err: unknown): Response {
  const api = toApiError(err);
  return new Response(JSON.stringify(api.body()), {
    status: api.status,
    headers: { 'content-type': 'application/json; charset=utf-8', ...api.headers },
  });
}

/** app.onError: every thrown error ends here. */
export const onError = (err: Error, _c: Context): Response => errorResponse(err);
