import { machines, reports } from '@clp/db';
import type { Overview } from '@clp/protocol';
import { desc, eq, sql } from 'drizzle-orm';
import type { AppContext } from './context.ts';
import { listRollouts } from './rollouts.ts';
import { rowsOf } from './sql-rows.ts';

const DAY_MS = 86_400_000;

/** The fleet at a glance; every figure is an aggregate in the database (no fleet is loaded). */
export async function overview(ctx: AppContext): Promise<Overview> {
  await ctx.seen.flush();
  const now = ctx.clock.now();
  const dayAgo = new Date(now.getTime() - DAY_MS).toISOString();
  const weekAgo = new Date(now.getTime() - 7 * DAY_MS).toISOString();
  const [counts] = await ctx.db
    .select({
      enrolled: sql<number>`count(*) filter (where ${machines.revokedAt} is null)::int`,
      seenLastDay: sql<number>`count(*) filter (where ${machines.revokedAt} is null and ${machines.lastSeenAt} >= ${dayAgo}::timestamptz)::int`,
      notSeenForWeek: sql<number>`count(*) filter (where ${machines.revokedAt} is null and (${machines.lastSeenAt} is null or ${machines.lastSeenAt} < ${weekAgo}::timestamptz))::int`,
      revoked: sql<number>`count(*) filter (where ${machines.revokedAt} is not null)::int`,
    })
    .from(machines);
  const installed = await ctx.db.execute(
    sql`select p->>'name' as name, p->>'sha256' as sha256,
          count(*) filter (where p->>'state' = 'installed')::int as installed,
          count(*) filter (where p->>'state' = 'failed')::int as failed
        from ${machines} m cross join lateral jsonb_array_elements(m.installed) as p
        where m.revoked_at is null
        group by 1, 2 order by 3 desc, 1 limit 20`,
  );
  const failures = await ctx.db
    .select({ report: reports, hostname: machines.hostname })
    .from(reports)
    .leftJoin(machines, eq(machines.id, reports.machineId))
    .where(sql`${reports.status} in ('failed', 'revert-failed')`)
    .orderBy(desc(reports.receivedAt), desc(reports.id))
    .limit(10);
  const live = await listRollouts(ctx, { state: 'active,paused,halted', limit: 20, offset: 0 });
  const rows = rowsOf<{ name: string; sha256: string; installed: number; failed: number }>(installed);
  return {
    serverTime: now.toISOString(),
    machines: {
      enrolled: Number(counts?.enrolled ?? 0),
      seenLastDay: Number(counts?.seenLastDay ?? 0),
      notSeenForWeek: Number(counts?.notSeenForWeek ?? 0),
      revoked: Number(counts?.revoked ?? 0),
    },
    installed: rows.map((r) => ({
      name: String(r.name),
      sha256: String(r.sha256),
      installed: Number(r.installed),
      failed: Number(r.failed),
    })),
    rollouts: live.rollouts,
    recentFailures: failures.map(({ report: r, hostname }) => ({
      reportId: r.id,
      machineId: r.machineId,
      hostname,
      name: r.name,
      rolloutId: r.rolloutId,
      errorCode: r.errorCode,
      status: r.status,
      at: r.at.toISOString(),
      receivedAt: r.receivedAt.toISOString(),
    })),
  };
}
