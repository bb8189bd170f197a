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
});

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
