import { userInfo } from 'node:os';

interface Chained {
  message?: unknown;
  cause?: unknown;
}

/** The innermost message of a wrapped error: PostgreSQL's own words, not "Failed query: …". */
function innermostMessage(error: unknown): string {
  let message = error instanceof Error ? error.message : String(error);
  let e = (error as Chained | undefined)?.cause as Chained | undefined;
  for (let i = 0; e && typeof e === 'object' && i < 5; i++) {
    if (typeof e.message === 'string' && e.message !== '') message = e.message;
    e = e.cause as Chained | undefined;
  }
  return message;
}

/**
 * Why the server could not use the PostgreSQL of DATABASE_URL, for the operator starting it:
 * which host, database and user it tried, and PostgreSQL's (or the network's) own reason. The
 * password is never shown.
 */
export function describeDatabaseStartError(error: unknown, databaseUrl: string): string {
  const reason = innermostMessage(error);
  let where = 'the database in DATABASE_URL';
  try {
    const url = new URL(databaseUrl);
    const user = url.username
      ? decodeURIComponent(url.username)
      : `${process.env.PGUSER || userInfo().username} (none in the URL)`;
    const database = decodeURIComponent(url.pathname.replace(/^\//, '')) || user;
    where = `PostgreSQL at ${url.hostname}:${url.port || '5432'}, database ${database}, as user ${user}`;
  } catch {
    // Not a URL: the reason says so.
  }
  return `cannot use ${where}: ${reason}; check DATABASE_URL, and that PostgreSQL runs there and lets that user in`;
}
