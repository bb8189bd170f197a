import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { eq, sql } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type DatabaseHandle,
  migrationsFolder,
  releases,
  reports,
  rolloutCounters,
  rolloutMachines,
  rollouts,
} from '../src/index.ts';
import { drivers } from './drivers.ts';

/**
 * The upgrade to per-machine outcomes: counters that counted every report are recomputed from
 * each reporting machine's latest outcome, and those machines are taken as offered.
 */
describe.each(drivers())('the per-machine outcome upgrade on $name', (driver) => {
  let handle: DatabaseHandle;
  beforeAll(async () => {
    handle = await driver.open();
  });
  afterAll(async () => {
    await handle?.close();
  });

  it('recomputes counters from each machine’s latest outcome of the reports stored before it', async () => {
    const db = handle.db;
    const t = (minutes: number) => new Date(Date.UTC(2026, 0, 1, 0, minutes));
    await db.insert(releases).values({
      id: 'b'.repeat(64),
      sha256: 'b'.repeat(64),
      name: 'CLP1260101',
      series: 'CLP260101',
      version: '1',
      arch: 'any',
      meta: {},
      signerKeyId: '0123456789abcdef',
      size: 1,
      uploadedBy: 't',
    });
    await db.insert(rollouts).values({
      id: 'upgrade-rollout',
      releaseId: 'b'.repeat(64),
      tier: 'edge',
      stages: [{ percent: 100, minDurationSeconds: 0 }],
      stageStartedAt: t(0),
      state: 'active',
      maxFailureRate: 0.5,
      minReports: 1,
      createdBy: 't',
      createdAt: t(0),
      updatedAt: t(0),
    });
    // The counters as reports moved them before: five failures of one machine, two successes.
    await db.insert(rolloutCounters).values({ rolloutId: 'upgrade-rollout', applied: 2, failed: 5 });
    const row = (id: string, machineId: string, status: string, at: number) => ({
      id,
      machineId,
      rolloutId: 'upgrade-rollout',
      name: 'CLP1260101',
      status,
      at: t(at),
      receivedAt: t(at),
    });
    await db
      .insert(reports)
      .values([
        ...[1, 2, 3, 4, 5].map((i) => row(`00000000-0000-4000-8000-00000000000${i}`, 'loud', 'failed', i)),
        row('00000000-0000-4000-8000-000000000006', 'retried', 'failed', 1),
        row('00000000-0000-4000-8000-000000000007', 'retried', 'applied', 2),
        row('00000000-0000-4000-8000-000000000008', 'quiet', 'applied', 3),
        row('00000000-0000-4000-8000-000000000009', 'quiet', 'reverted', 4),
        row('00000000-0000-4000-8000-00000000000a', 'downloading-only', 'downloading', 4),
      ]);
    const text = await readFile(join(migrationsFolder(), '0007_count_each_machine_once.sql'), 'utf8');
    for (const statement of text.split('--> statement-breakpoint')) await db.execute(sql.raw(statement));
    const machines = await db
      .select()
      .from(rolloutMachines)
      .where(eq(rolloutMachines.rolloutId, 'upgrade-rollout'))
      .orderBy(rolloutMachines.machineId);
    expect(machines.map((m) => [m.machineId, m.applyOutcome, m.revertOutcome, m.offeredAt])).toEqual([
      ['loud', 'failed', null, t(1)],
      ['quiet', 'applied', 'reverted', t(3)],
      ['retried', 'applied', null, t(1)],
    ]);
    const [counters] = await db
      .select()
      .from(rolloutCounters)
      .where(eq(rolloutCounters.rolloutId, 'upgrade-rollout'));
    expect(counters).toMatchObject({ applied: 2, failed: 1, reverted: 1, revertFailed: 0 });
  });
});
