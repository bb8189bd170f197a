import type { HttpConfig } from './config.ts';

/**
 * Exponential back-off with "equal jitter": half the delay is fixed, half random, so a fleet
 * that failed together does not retry together. attempt starts at 1.
 */
export function retryDelay(
  attempt: number,
  http: Pick<HttpConfig, 'backoffMs' | 'backoffMaxMs'>,
  random = Math.random,
): number {
  const exponential = Math.min(http.backoffMs * 2 ** Math.max(0, attempt - 1), http.backoffMaxMs);
  return Math.round(exponential / 2 + (exponential / 2) * random());
}

/** HTTP statuses worth a retry: the server is overloaded or briefly broken. */
export const RETRY_STATUS_CODES = [408, 429, 500, 502, 503, 504, 521, 522, 524];

/** Network failures worth a retry (and, once retries are spent, a fallback to the next server). */
export const RETRY_ERROR_CODES = [
  'ETIMEDOUT',
  'ECONNRESET',
  'EADDRINUSE',
  'ECONNREFUSED',
  'EPIPE',
  'ENOTFOUND',
  'ENETUNREACH',
  'EHOSTUNREACH',
  'EAI_AGAIN',
  'ERR_STREAM_PREMATURE_CLOSE',
];
