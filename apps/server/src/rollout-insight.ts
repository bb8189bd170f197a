import { randomUUID } from 'node:crypto';
import { machines, rolloutMachines, rollouts } from '@clp/db';
import type { CreateRolloutBody, RolloutPreview, RolloutTimeline } from '@clp/protocol';
import { and, eq, isNull, type SQL, sql } from 'drizzle-orm';
import { BUCKETS } from './cohort.ts';
import type { AppContext } from './context.ts';
import { ServerError } from './errors.ts';
import { findRelease } from './releases.ts';
import { failureRate } from './rollout-stage.ts';
import { findRollout } from './rollouts.ts';
import { rowsOf } from './sql-rows.ts';
import { requireTier } from './tiers.ts';

/** Bucket widths offered, so that the chart's ticks fall on round times. */
const NICE_SECONDS = [60, 300, 600, 900, 1800, 3600, 7200, 10_800, 21_600, 43_200, 86_400, 172_800, 604_800];

function bucketWidth(spanSeconds: number, maxBuckets: number): number {
  const wanted = Math.max(1, spanSeconds / maxBuckets);
  return NICE_SECONDS.find((s) => s >= wanted) ?? Math.ceil(wanted / 604_800) * 604_800;
}

/**
 * Each offered machine's latest outcome for a rollout, per time bucket: applied and failed at the
 * time of the agent's report, silent when the rollout counted it so; with running totals and the
 * failure rate the halt rule judges ((failed + silent) / all outcomes, as rollout-stage.ts). The
 * last point's totals are the rollout's counters. One grouped query on rollout_machines' primary
 * key (bar P9), whatever the fleet's size.
 */
export async function rolloutTimeline(
  ctx: AppContext,
  id: string,
  maxBuckets: number,
): Promise<RolloutTimeline> {
  const rollout = await findRollout(ctx, id);
  const from = rollout.createdAt;
  const to = ctx.clock.now();
  const span = Math.max(60, (to.getTime() - from.getTime()) / 1000);
  const width = bucketWidth(span, maxBuckets);
  const count = Math.min(maxBuckets, Math.max(1, Math.ceil(span / width)));
  const origin = from.toISOString();
  const result = await ctx.db.execute(
    sql`select floor(extract(epoch from (coalesce(${rolloutMachines.applyAt}, ${rolloutMachines.silentAt}) - ${origin}::timestamptz)) / ${width})::int as bucket,
          count(*) filter (where ${rolloutMachines.applyOutcome} = 'applied')::int as applied,
          count(*) filter (where ${rolloutMachines.applyOutcome} = 'failed')::int as failed,
          count(*) filter (where ${rolloutMachines.applyOutcome} is null)::int as silent
        from ${rolloutMachines}
        where ${rolloutMachines.rolloutId} = ${id}
          and (${rolloutMachines.applyOutcome} is not null or ${rolloutMachines.silentAt} is not null)
        group by 1 order by 1`,
  );
  const byBucket = new Map<number, Outcomes>();
  for (const row of rowsOf<Outcomes & { bucket: number }>(result)) {
    // Agents' clocks differ: an outcome stamped before the rollout began counts in its first bucket, a later one in the last.
    const i = Math.min(count - 1, Math.max(0, Number(row.bucket)));
    const b = byBucket.get(i) ?? { applied: 0, failed: 0, silent: 0 };
    b.applied += Number(row.applied);
    b.failed += Number(row.failed);
    b.silent += Number(row.silent);
    byBucket.set(i, b);
  }
  const totals: Outcomes = { applied: 0, failed: 0, silent: 0 };
  const points: RolloutTimeline['points'] = [];
  for (let i = 0; i < count; i++) {
    const b = byBucket.get(i) ?? { applied: 0, failed: 0, silent: 0 };
    totals.applied += b.applied;
    totals.failed += b.failed;
    totals.silent += b.silent;
    points.push({
      at: new Date(from.getTime() + i * width * 1000).toISOString(),
      ...b,
      appliedTotal: totals.applied,
      failedTotal: totals.failed,
      silentTotal: totals.silent,
      failureRate: failureRate(totals),
    });
  }
  return {
    rolloutId: id,
    from: origin,
    to: to.toISOString(),
    bucketSeconds: width,
    maxFailureRate: rollout.maxFailureRate,
    minReports: rollout.minReports,
    points,
  };
}

interface Outcomes {
  applied: number;
  failed: number;
  silent: number;
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
