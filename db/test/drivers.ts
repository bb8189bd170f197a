import {
  createTestDatabase,
  type DatabaseHandle,
  migrate,
  openDatabase,
  type TestDatabase,
} from '../src/index.ts';

export interface Driver {
  name: 'pglite' | 'postgres';
  /** A fresh, migrated database; `close` also drops it. */
  open(): Promise<DatabaseHandle & { url?: string }>;
}

const pglite: Driver = {
  name: 'pglite',
  async open() {
    const handle = await openDatabase({ dataDir: ':memory:' });
    await migrate(handle);
    return handle;
  },
};

const postgresDriver: Driver = {
  name: 'postgres',
  async open() {
    const test: TestDatabase = await createTestDatabase(process.env.DATABASE_URL!);
    const handle = await openDatabase({ url: test.url, dataDir: ':memory:', poolSize: 5 });
    await migrate(handle);
    const close = handle.close;
    // The same object (not a copy): migrate() recognises the handles that openDatabase made.
    return Object.assign(handle, {
      url: test.url,
      async close() {
        await close();
        await test.drop();
      },
    });
  },
};

/** PGlite always; PostgreSQL when DATABASE_URL is set. */
export function drivers(): Driver[] {
  if (!process.env.DATABASE_URL) {
    console.warn('skipped: PostgreSQL (set DATABASE_URL)');
    return [pglite];
  }
  return [pglite, postgresDriver];
}
