import { existsSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { PGlite } from '@electric-sql/pglite';
import { sql } from 'drizzle-orm';
import type { PgDatabase, PgQueryResultHKT } from 'drizzle-orm/pg-core';
import { drizzle as drizzlePglite } from 'drizzle-orm/pglite';
import { migrate as migratePglite } from 'drizzle-orm/pglite/migrator';
import { drizzle as drizzlePostgres } from 'drizzle-orm/postgres-js';
import { migrate as migratePostgres } from 'drizzle-orm/postgres-js/migrator';
import postgres from 'postgres';
import { schema } from './schema.ts';

/** The query builder shared by both drivers. */
export type Database = PgDatabase<PgQueryResultHKT, typeof schema>;

export interface DatabaseHandle {
  db: Database;
  kind: 'pglite' | 'postgres';
  /** Where the data lives, without any password: a folder for PGlite, host/database for PostgreSQL. */
  location: string;
  close(): Promise<void>;
}

export interface OpenDatabaseOptions {
  /** A postgres:// URL; unset or empty selects the embedded PGlite. */
  url?: string | undefined;
  /** PGlite keeps its files in DATA_DIR/pglite. `:memory:` keeps them in memory (tests). */
  dataDir: string;
  /** PostgreSQL pool size (default 20). */
  poolSize?: number;
}

const urls = new WeakMap<DatabaseHandle, string>();

/** Opens PGlite (no url) or PostgreSQL (url). Call `migrate(handle)` before use. */
export async function openDatabase(options: OpenDatabaseOptions): Promise<DatabaseHandle> {
  const url = options.url?.trim();
  if (url) {
    const client = postgres(url, {
      max: options.poolSize ?? 20,
      onnotice: () => {},
      // Prepared statements make repeated poll queries cheaper on the server.
      prepare: true,
    });
    const db = drizzlePostgres(client, { schema }) as unknown as Database;
    const parsed = new URL(url);
    const handle: DatabaseHandle = {
      db,
      kind: 'postgres',
      location: `${parsed.hostname}:${parsed.port || '5432'}${parsed.pathname}`,
      close: () => client.end({ timeout: 5 }),
    };
    urls.set(handle, url);
    return handle;
  }
  let client: PGlite;
  let location: string;
  if (options.dataDir === ':memory:') {
    client = new PGlite();
    location = 'memory';
  } else {
    location = resolve(options.dataDir, 'pglite');
    await mkdir(location, { recursive: true });
    client = new PGlite(location);
  }
  await client.waitReady;
  const db = drizzlePglite(client, { schema }) as unknown as Database;
  return { db, kind: 'pglite', location, close: () => client.close() };
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
  const client = postgres(url, { max: 1, onnotice: () => {} });
  try {
    const db = drizzlePostgres(client);
    await db.execute(sql`select pg_advisory_lock(${MIGRATION_LOCK})`);
    try {
      await migratePostgres(db, { migrationsFolder: migrationsFolderPath });
    } finally {
      await db.execute(sql`select pg_advisory_unlock(${MIGRATION_LOCK})`);
    }
  } finally {
    await client.end({ timeout: 5 });
  }
}

/** True when the database answers a trivial query. */
export async function ping(handle: DatabaseHandle): Promise<boolean> {
  try {
    await handle.db.execute(sql`select 1`);
    return true;
  } catch {
    return false;
  }
}
