/** Recognising database failures that are the database's state, not the request's fault. */

interface Chained {
  code?: unknown;
  message?: unknown;
  cause?: unknown;
}

function* chain(error: unknown): Generator<Chained> {
  let e = error as Chained | undefined;
  for (let i = 0; e && typeof e === 'object' && i < 5; i++) {
    yield e;
    e = e.cause as Chained | undefined;
  }
}

/** The SQLSTATE of a PostgreSQL error, looked for through wrapped causes (Drizzle wraps them). */
export function sqlState(error: unknown): string | undefined {
  for (const e of chain(error)) {
    if (typeof e.code === 'string' && /^[0-9A-Z]{5}$/.test(e.code)) return e.code;
  }
  return undefined;
}

const NETWORK_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ETIMEDOUT',
  'EPIPE',
  'EHOSTUNREACH',
  'ENOTFOUND',
  'EAI_AGAIN',
]);

/** node-postgres says these in words only (no code) when a connection is cut, refused or slow to open. */
const DRIVER_MESSAGES =
  /^(Connection terminated( unexpectedly)?|Connection terminated due to connection timeout|timeout exceeded when trying to connect|Client has encountered a connection error and is not queryable|Client was closed and is not queryable|PGlite is clos(ed|ing))$/;

/**
 * True when the database cannot be reached or is shutting down or overloaded (connection
 * exceptions 08xxx, admin shutdown / crash 57P01-57P03, too many connections 53300): the
 * request may succeed later, so the answer is 503, not 500.
 */
export function isDatabaseUnavailable(error: unknown): boolean {
  for (const e of chain(error)) {
    if (typeof e.code === 'string') {
      if (NETWORK_CODES.has(e.code)) return true;
      if (/^08[0-9A-Z]{3}$/.test(e.code) || /^57P0[1-3]$/.test(e.code) || e.code === '53300') return true;
    }
    if (typeof e.message === 'string' && DRIVER_MESSAGES.test(e.message)) return true;
  }
  return false;
}

/** Serialization failures, deadlocks, lock and statement timeouts: the same statement may pass if run again. */
const RETRYABLE_STATES = new Set(['40001', '40P01', '55P03', '57014']);

/**
 * True when an error is the database's state at the moment (unreachable, overloaded, a conflict
 * with another transaction), false when it is the statement's content (a value the database
 * refuses): batch writers retry the first and isolate the row at fault for the second.
 */
export function isTransient(error: unknown): boolean {
  const state = sqlState(error);
  return isDatabaseUnavailable(error) || (state !== undefined && RETRYABLE_STATES.has(state));
}
