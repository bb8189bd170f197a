import { asc, eq, sql } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  createTestDatabase,
  type DatabaseHandle,
  machines,
  migrate,
  openDatabase,
  releases,
  reports,
  rolloutCounters,
  rollouts,
  tiers,
} from '../src/index.ts';
import { drivers } from './drivers.ts';

describe.each(drivers())('database on $name', (driver) => {
  let handle: DatabaseHandle & { url?: string };
  beforeAll(async () => {
    handle = await driver.open();
  });
  afterAll(async () => {
    await handle?.close();
  });

  it('seeds the edge, beta and stable tiers in order', async () => {
    const rows = await handle.db.select().from(tiers).orderBy(asc(tiers.position));
    expect(rows.map((r) => r.name)).toEqual(['edge', 'beta', 'stable']);
  });

  it('applies the migrations a second time without changing anything', async () => {
    await migrate(handle);
    const rows = await handle.db.select().from(tiers);
    expect(rows).toHaveLength(3);
  });

  it('stores a report sent twice only once', async () => {
    const row = {
      id: '6f1c1d38-7a4e-4c55-9d6b-0d2d3b1f5a11',
      machineId: 'm-1',
      name: 'CLP1251123',
      status: 'applied',
      at: new Date('2026-01-01T00:00:00Z'),
      receivedAt: new Date(),
    };
    const first = await handle.db
      .insert(reports)
      .values(row)
      .onConflictDoNothing()
      .returning({ id: reports.id });
    const second = await handle.db
      .insert(reports)
      .values({ ...row, status: 'failed' })
      .onConflictDoNothing()
      .returning({ id: reports.id });
    expect(first).toHaveLength(1);
    expect(second).toHaveLength(0);
    const stored = await handle.db.select().from(reports).where(eq(reports.id, row.id));
    expect(stored.map((r) => r.status)).toEqual(['applied']);
  });

  it('treats injection-looking values as plain data', async () => {
    const hostile = "x'); drop table machines; --";
    await handle.db.insert(machines).values({
      id: 'm-hostile',
      credentialHash: hostile,
      hostname: hostile,
      arch: 'x86_64',
      osId: 'vincent',
      facts: { hostname: hostile },
      tier: 'edge',
      enrolledAt: new Date(),
    });
    const rows = await handle.db.select().from(machines).where(eq(machines.hostname, hostile));
    expect(rows[0]?.facts).toEqual({ hostname: hostile });
  });

  it('refuses a rollout for a release that does not exist', async () => {
    const now = new Date();
    await expect(
      handle.db.insert(rollouts).values({
        id: 'r-missing',
        releaseId: 'nope',
        tier: 'edge',
        stages: [{ percent: 100, minDurationSeconds: 0 }],
        stageStartedAt: now,
        state: 'active',
        maxFailureRate: 0.1,
        minReports: 5,
        createdBy: 't',
        createdAt: now,
        updatedAt: now,
      }),
    ).rejects.toThrow();
  });

  it('counts concurrent counter increments without losing any', async () => {
    const now = new Date();
    await handle.db.insert(releases).values({
      id: 'a'.repeat(64),
      sha256: 'a'.repeat(64),
      name: 'CLP1251123',
      series: 'CLP251123',
      version: '1',
      arch: 'x86_64',
      meta: {},
      signerKeyId: '0123456789abcdef',
      size: 10,
      uploadedBy: 't',
    });
    await handle.db.insert(rollouts).values({
      id: 'r-1',
      releaseId: 'a'.repeat(64),
      tier: 'edge',
      stages: [{ percent: 100, minDurationSeconds: 0 }],
      stageStartedAt: now,
      state: 'active',
      maxFailureRate: 0.1,
      minReports: 5,
      createdBy: 't',
      createdAt: now,
      updatedAt: now,
    });
    await handle.db.insert(rolloutCounters).values({ rolloutId: 'r-1' });
    await Promise.all(
      Array.from({ length: 20 }, () =>
        handle.db
          .update(rolloutCounters)
          .set({ applied: sql`${rolloutCounters.applied} + 1` })
          .where(eq(rolloutCounters.rolloutId, 'r-1')),
      ),
    );
    const [row] = await handle.db.select().from(rolloutCounters).where(eq(rolloutCounters.rolloutId, 'r-1'));
    expect(row?.applied).toBe(20);
  });

  it('refuses a second file under a patch name already stored, with a unique violation', async () => {
    const release = (sha: string) => ({
      id: sha,
      sha256: sha,
      name: 'CLP1251124',
      series: 'CLP251124',
      version: '1',
      arch: 'x86_64',
      meta: {},
      signerKeyId: '0123456789abcdef',
      size: 10,
      uploadedBy: 't',
    });
    await handle.db.insert(releases).values(release('b'.repeat(64)));
    const error = await handle.db
      .insert(releases)
      .values(release('c'.repeat(64)))
      .then(
        () => undefined,
        (e: unknown) => e,
      );
    expect(sqlStateOf(error)).toBe('23505');
  });
});

function sqlStateOf(error: unknown): string | undefined {
  let e = error as { code?: unknown; cause?: unknown } | undefined;
  while (e) {
    if (typeof e.code === 'string') return e.code;
    e = e.cause as typeof e;
  }
  return undefined;
}

describe('openDatabase', () => {
  it('keeps PGlite data in DATA_DIR/pglite across restarts', async () => {
    const { mkdtemp, rm } = await import('node:fs/promises');
    const { tmpdir } = await import('node:os');
    const { join } = await import('node:path');
    const dir = await mkdtemp(join(tmpdir(), 'clp-db-'));
    try {
      const first = await openDatabase({ dataDir: dir });
      expect(first.kind).toBe('pglite');
      expect(first.location).toBe(join(dir, 'pglite'));
      await migrate(first);
      await first.db.insert(tiers).values({ name: 'canary', position: 9 });
      await first.close();
      const second = await openDatabase({ dataDir: dir, url: '' });
      await migrate(second);
      const rows = await second.db.select().from(tiers).where(eq(tiers.name, 'canary'));
      expect(rows).toHaveLength(1);
      await second.close();
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('change notifications on PostgreSQL', () => {
  it.skipIf(!process.env.DATABASE_URL)(
    'tell a listening process when a rollout, a yank or a machine credential changes, and not when a poll is recorded',
    async () => {
      const test = await createTestDatabase(process.env.DATABASE_URL!);
      const writer = await openDatabase({ url: test.url, dataDir: ':memory:', poolSize: 2 });
      const reader = await openDatabase({ url: test.url, dataDir: ':memory:', poolSize: 2 });
      const heard: string[] = [];
      let subscription: { close(): Promise<void> } | undefined;
      try {
        await migrate(writer);
        subscription = await reader.listen({ changed: (table) => heard.push(table), reset: () => {} });
        const until = async (table: string) => {
          for (let i = 0; i < 100 && !heard.includes(table); i++) await new Promise((r) => setTimeout(r, 20));
          return heard.includes(table);
        };
        await writer.db.insert(machines).values({
          id: 'm-n',
          credentialHash: 'h1',
          hostname: 'h',
          arch: 'x86_64',
          osId: 'debian',
          facts: {},
          tier: 'edge',
          enrolledAt: new Date(),
        });
        await writer.db
          .update(machines)
          .set({ lastSeenAt: new Date(), facts: { a: 1 } })
          .where(eq(machines.id, 'm-n'));
        await new Promise((r) => setTimeout(r, 200));
        expect(heard).toEqual([]);
        await writer.db.update(machines).set({ revokedAt: new Date() }).where(eq(machines.id, 'm-n'));
        expect(await until('machines')).toBe(true);
        await writer.db.insert(releases).values({
          id: 'd'.repeat(64),
          sha256: 'd'.repeat(64),
          name: 'CLP1251125',
          series: 'CLP251125',
          version: '1',
          arch: 'x86_64',
          meta: {},
          signerKeyId: '0123456789abcdef',
          size: 10,
          uploadedBy: 't',
        });
        await writer.db
          .update(releases)
          .set({ yankedAt: new Date() })
          .where(eq(releases.id, 'd'.repeat(64)));
        expect(await until('releases')).toBe(true);
      } finally {
        await subscription?.close();
        await writer.close();
        await reader.close();
        await test.drop();
      }
    },
  );
});

describe('migrations on PostgreSQL', () => {
  it.skipIf(!process.env.DATABASE_URL)(
    'let several server instances migrate one fresh database at the same time',
    async () => {
      const test = await createTestDatabase(process.env.DATABASE_URL!);
      const handles = await Promise.all(
        Array.from({ length: 3 }, () => openDatabase({ url: test.url, dataDir: ':memory:', poolSize: 2 })),
      );
      try {
        await Promise.all(handles.map((h) => migrate(h)));
        const rows = await handles[0]!.db.select().from(tiers);
        expect(rows.map((r) => r.name).sort()).toEqual(['beta', 'edge', 'stable']);
      } finally {
        for (const h of handles) await h.close();
        await test.drop();
      }
    },
  );
});
