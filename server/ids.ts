/**
 * Identifiers and provenance strings that appear in responses: object ids
 * ("chatcmpl-…", "cmpl-…"), request ids, `created` and `system_fingerprint`, plus the
 * package version (also printed by `braid --version`).
 */
import { createHash, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { ModelInfo } from '../engine/types.ts';

const packageJson: unknown = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8'));

export const VERSION: string =
  typeof packageJson === 'object' && packageJson !== null && 'version' in packageJson && typeof packageJson.version === 'string'
    ? packageJson.version
    : '0.0.0';

export function responseId(prefix: 'chatcmpl' | 'cmpl'): string {
  return `${prefix}-${randomBytes(12).toString('base64url')}`;
}

/** The x-request-id of one HTTP exchange, shaped like OpenAI's ("req_" + 32 hex digits). */
export function requestId(): string {
  return `req_${randomBytes(16).toString('hex')}`;
}

export const unixSeconds = (): number => Math.floor(Date.now() / 1000);

/**
 * Changes whenever the server version or the model file changes, so a client
 * comparing fingerprints can tell that seeded outputs may differ.
 */
export function systemFingerprint(info: ModelInfo): string {
  const hash = createHash('sha256').update(`${VERSION}\0${info.path}\0${info.created}\0${info.tensorBytes}`).digest('hex');
  return `fp_${hash.slice(0, 10)}`;
}
