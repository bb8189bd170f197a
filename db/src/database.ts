import { existsSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { PGlite } from '@electric-sql/pglite';
import { pg_trgm } from '@electric-sql/pglite/contrib/pg_trgm';
import { sql } from 'drizzle-orm';
import { drizzle as drizzlePostgres } from 'drizzle-orm/node-postgres';
import { migrate as migratePostgres } from 'drizzle-orm/node-postgres/migrator';
import type { PgDatabase, PgQueryResultHKT } from 'drizzle-orm/pg-core';
import { drizzle as drizzlePglite } from 'drizzle-orm/pglite';
import { migrate as migratePglite } from 'drizzle-orm/pglite/migrator';
import pg from 'pg';
import { type ChangeListener, listenForChanges } from './changes.ts';
import { schema } from './schema.ts';

/** The query builder shared by both drivers. */
export type Database = PgDatabase<PgQueryResultHKT, typeof schema>;

export interface DatabaseHandle {
  db: Database;
  kind: 'pglite' | 'postgres';
  /** Where the data lives, without any password: a folder for PGlite, host/database for PostgreSQL. */
  location: string;
  /**
   * Calls `listener.changed(table)` for every change the database announces on the change
   * channel (see the change triggers in the migrations), from any server process. PGlite is one
   * process, so there is nothing to hear: its handle returns at once and never calls back.
   */
  listen(listener: ChangeListener): Promise<{ close(): Promise<void> }>;
  close(): Promise<void>;
}

export interface OpenDatabaseOptions {
  /** A postgres:// URL; unset or empty selects the embedded PGlite. */
  url?: string | undefined;
  /** PGlite keeps its files in DATA_DIR/pglite. `:memory:` keeps them in memory (tests). */
  dataDir: string;
  /** PostgreSQL pool size (default 20). */
  poolSize?: number;
  /** Called when a PostgreSQL connection fails (the pool replaces it on the next query). */
  onConnectionError?: (error: Error) => void;
}

/**
 * How long a request waits for a PostgreSQL connection before it fails (then answered 503). A
 * stopped database refuses at once; this bounds the wait for one that does not answer at all.
 */
const CONNECT_TIMEOUT_MS = 2000;

const urls = new WeakMap<DatabaseHandle, string>();

/** Opens PGlite (no url) or PostgreSQL (url). Call `migrate(handle)` before use. */
export async function openDatabase(options: OpenDatabaseOptions): Promise<DatabaseHandle> {
  const url = options.url?.trim();
  if (url) {
    const pool = new pg.Pool({
      connectionString: url,
      max: options.poolSize ?? 20,
      connectionTimeoutMillis: CONNECT_TIMEOUT_MS,
      keepAlive: true,
    });
    // A connection cut by a database restart emits 'error'. The pool listens only while the
    // connection is idle; one checked out between two queries of a transaction has no listener,
    // and an unheard 'error' ends the process. So every connection listens all its life; the
    // query that uses it next fails instead (answered 503), and the pool drops it when released.
    pool.on('connect', (client) => client.on('error', (error) => options.onConnectionError?.(error)));
    pool.on('error', () => {});
    const db = drizzlePostgres(pool, { schema }) as unknown as Database;
    const parsed = new URL(url);
    const handle: DatabaseHandle = {
      db,
      kind: 'postgres',
      location: `${parsed.hostname}:${parsed.port || '5432'}${parsed.pathname}`,
      listen: (listener) => listenForChanges(url, listener),
      close: () => pool.end(),
    };
    urls.set(handle, url);
    return handle;
  }
  let client: PGlite;
  let location: string;
  // The machines list's search uses trigram indexes (migration 0012), as on PostgreSQL.
  const extensions = { pg_trgm };
  if (options.dataDir === ':memory:') {
    client = new PGlite({ extensions });
    location = 'memory';
  } else {
    location = resolve(options.dataDir, 'pglite');
    await mkdir(location, { recursive: true });
    client = new PGlite(location, { extensions });
  }
  await client.waitReady;
  const db = drizzlePglite(client, { schema }) as unknown as Database;
  return {
    db,
    kind: 'pglite',
    location,
    listen: async () => ({ close: async () => {} }),
    close: () => client.close(),
  };
}

/**
 * The folder of SQL migrations. Found next to this source file (db/migrations), or next to a
 * bundle that lives in apps/NAME/dist; CLP_MIGRATIONS_DIR overrides both.
 */
export function migrationsFolder(): string {
  const override = process.env.CLP_MIGRATIONS_DIR;
  if (override) return override;
  const here = dirname(fileURLToPath(import.meta.url));
  const candidates = [
    join(here, '../migrations'),
    join(here, '../../../db/migrations'),
    resolve('db/migrations'),
  ];
  for (const candidate of candidates) {
    if (existsSync(join(candidate, 'meta/_journal.json'))) return candidate;
  }
  throw new Error(
    `database migrations not found (looked in ${candidates.join(', ')}); set CLP_MIGRATIONS_DIR`,
  );
}

/** An arbitrary constant: the advisory lock that serialises migrations across server instances. */
const MIGRATION_LOCK = 7_351_002;

/** Applies every pending migration. Safe to run from several server instances at once. */
export async function migrate(handle: DatabaseHandle): Promise<void> {
  const migrationsFolderPath = migrationsFolder();
  if (handle.kind === 'pglite') {
    await migratePglite(handle.db as never, { migrationsFolder: migrationsFolderPath });
    return;
  }
  const url = urls.get(handle);
  if (!url) throw new Error('migrate: this handle was not made by openDatabase');
  // One dedicated connection holds the session-level advisory lock for the whole migration.
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 10_000 });
  client.on('error', () => {});
  await client.connect();
  try {
    const db = drizzlePostgres(client);
    await db.execute(sql`select pg_advisory_lock(${MIGRATION_LOCK})`);
    try {
      await migratePostgres(db, { migrationsFolder: migrationsFolderPath });
    } finally {
      await db.execute(sql`select pg_advisory_unlock(${MIGRATION_LOCK})`);
    }
  } finally {
    await client.end();
  }
}

/** True when the database answers a trivial query within `timeoutMs`. */
export async function ping(handle: DatabaseHandle, timeoutMs = 2000): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<boolean>((resolve) => {
    timer = setTimeout(() => resolve(false), timeoutMs);
  });
  try {
    return await Promise.race([
      handle.db.execute(sql`select 1`).then(
        () => true,
        () => false,
      ),
      timeout,
    ]);
  } finally {
    clearTimeout(timer);
  }
}
