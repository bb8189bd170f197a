import { randomUUID } from 'node:crypto';
import { machines, reports, rollouts } from '@clp/db';
import type { CreateRolloutBody, RolloutPreview, RolloutTimeline } from '@clp/protocol';
import { and, eq, isNull, type SQL, sql } from 'drizzle-orm';
import { BUCKETS } from './cohort.ts';
import type { AppContext } from './context.ts';
import { ServerError } from './errors.ts';
import { findRelease } from './releases.ts';
import { showRollout } from './rollouts.ts';
import { rowsOf } from './sql-rows.ts';
import { requireTier } from './tiers.ts';

/** Bucket widths offered, so that the chart's ticks fall on round times. */
const NICE_SECONDS = [60, 300, 600, 900, 1800, 3600, 7200, 10_800, 21_600, 43_200, 86_400, 172_800, 604_800];

function bucketWidth(spanSeconds: number, maxBuckets: number): number {
  const wanted = Math.max(1, spanSeconds / maxBuckets);
  return NICE_SECONDS.find((s) => s >= wanted) ?? Math.ceil(wanted / 604_800) * 604_800;
}

/**
 * Applied and failed reports of a rollout per time bucket, with running totals and the failure
 * rate the halt rule judges (bar P9: one indexed, grouped query, whatever the fleet's size).
 */
export async function rolloutTimeline(
  ctx: AppContext,
  id: string,
  maxBuckets: number,
): Promise<RolloutTimeline> {
  const rollout = await showRollout(ctx, id);
  const from = new Date(rollout.createdAt);
  const to = ctx.clock.now();
  const span = Math.max(60, (to.getTime() - from.getTime()) / 1000);
  const width = bucketWidth(span, maxBuckets);
  const count = Math.min(maxBuckets, Math.max(1, Math.ceil(span / width)));
  const result = await ctx.db.execute(
    sql`select floor(extract(epoch from (${reports.receivedAt} - ${from.toISOString()}::timestamptz)) / ${width})::int as bucket,
          count(*) filter (where ${reports.status} = 'applied')::int as applied,
          count(*) filter (where ${reports.status} = 'failed')::int as failed
        from ${reports} where ${reports.rolloutId} = ${id} and ${reports.status} in ('applied', 'failed')
        group by 1 order by 1`,
  );
  const byBucket = new Map<number, { applied: number; failed: number }>();
  for (const row of rowsOf<{ bucket: number; applied: number; failed: number }>(result)) {
    // Reports stamped before the rollout's start (clock skew) count in its first bucket, later ones in the last.
    const i = Math.min(count - 1, Math.max(0, Number(row.bucket)));
    const b = byBucket.get(i) ?? { applied: 0, failed: 0 };
    b.applied += Number(row.applied);
    b.failed += Number(row.failed);
    byBucket.set(i, b);
  }
  let appliedTotal = 0;
  let failedTotal = 0;
  const points: RolloutTimeline['points'] = [];
  for (let i = 0; i < count; i++) {
    const b = byBucket.get(i) ?? { applied: 0, failed: 0 };
    appliedTotal += b.applied;
    failedTotal += b.failed;
    const total = appliedTotal + failedTotal;
    points.push({
      at: new Date(from.getTime() + i * width * 1000).toISOString(),
      applied: b.applied,
      failed: b.failed,
      appliedTotal,
      failedTotal,
      failureRate: total === 0 ? 0 : failedTotal / total,
    });
  }
  return {
    rolloutId: id,
    from: from.toISOString(),
    to: to.toISOString(),
    bucketSeconds: width,
    maxFailureRate: rollout.failureThreshold.maxFailureRate,
    minReports: rollout.failureThreshold.minReports,
    points,
  };
}

/** The cohort bucket of cohort.ts, computed by the database: the first 4 bytes of sha256(rollout \0 machine). */
function bucketSql(rolloutId: string): SQL {
  return sql`(('x' || substr(encode(sha256(convert_to(${rolloutId}, 'UTF8') || '\\x00'::bytea || convert_to(${machines.id}, 'UTF8')), 'hex'), 1, 8))::bit(32)::bigint % ${BUCKETS})`;
}

/**
 * How many machines each stage of a rollout would reach now. A machine's cohort depends on the
 * rollout's id, so the preview proposes one; a rollout created with it reaches exactly these.
 */
export async function previewRollout(ctx: AppContext, body: CreateRolloutBody): Promise<RolloutPreview> {
  const release = await findRelease(ctx, body.releaseId);
  await requireTier(ctx, body.tier);
  const rolloutId = body.id ?? randomUUID();
  if (body.id) {
    const [taken] = await ctx.db.select({ id: rollouts.id }).from(rollouts).where(eq(rollouts.id, body.id));
    if (taken) {
      throw new ServerError(
        'CLP_E_CONFLICT',
        `a rollout with id ${body.id} exists already; preview without an id`,
        {
          field: 'id',
        },
      );
    }
  }
  await ctx.seen.flush();
  const inTier = and(eq(machines.tier, body.tier), isNull(machines.revokedAt));
  const match: SQL[] = [];
  const s = body.selector;
  if (s.tags?.length) match.push(sql`${machines.tags} @> ${JSON.stringify(s.tags)}::jsonb`);
  const arch = [...(s.arch ?? [])].filter((a) => release.arch === 'any' || a === release.arch);
  if (s.arch?.length) match.push(arch.length ? sql`${machines.arch} in ${arch}` : sql`false`);
  if (release.arch !== 'any') match.push(eq(machines.arch, release.arch));
  if (s.os?.length) match.push(sql`${machines.osId} in ${s.os}`);
  const matches = match.length ? and(...match) : sql`true`;
  const stageCounts = body.stages.map(
    (stage, i) =>
      sql`count(*) filter (where ${matches} and ${bucketSql(rolloutId)} < ${Math.round(stage.percent * 100)})::int as ${sql.raw(`s${i}`)}`,
  );
  const result = await ctx.db.execute(
    sql`select count(*)::int as in_tier, count(*) filter (where ${matches})::int as matching, ${sql.join(stageCounts, sql`, `)}
        from ${machines} where ${inTier}`,
  );
  const row = rowsOf<Record<string, number>>(result)[0] ?? {};
  return {
    rolloutId,
    inTier: Number(row.in_tier ?? 0),
    matching: Number(row.matching ?? 0),
    stages: body.stages.map((stage, i) => ({ percent: stage.percent, machines: Number(row[`s${i}`] ?? 0) })),
  };
}
