import type { Database, RolloutSelector } from '@clp/db';
import { sql } from 'drizzle-orm';
import { BUCKETS } from './cohort.ts';
import { rowsOf } from './sql-rows.ts';

type Executor = Pick<Database, 'execute'>;

/** What counting a rollout's targeted machines needs of it. */
export interface EvidenceQuery {
  rolloutId: string;
  tier: string;
  selector: RolloutSelector;
  /** The stage's share of the matching machines. */
  percent: number;
  release: { sha256: string; arch: string };
}

export interface MachineCounts {
  targeted: number;
  answered: number;
  applied: number;
  failed: number;
  silent: number;
  waitingForWindow: number;
  notAnswered: number;
}

/**
 * Counts the machines a rollout's stage reaches (tier, selector, architecture, and cohort — the
 * same bucket as cohort.ts, computed in SQL so that a large fleet is not loaded into memory) and
 * where each stands: answered (reported applied or failed, or had the release, installed or
 * failed, before any offer), applied, failed, silent, waiting for its maintenance window.
 * Machines enrolled while the rollout runs are counted like the others: they join their cohort.
 * The targeted set and the outcomes come from narrow indexes (machines_tier_cohort_idx,
 * rollout_machines_outcome_idx); a machine's wide row is read only when it has no outcome yet.
 */
export async function countMachines(db: Executor, q: EvidenceQuery, now: Date): Promise<MachineCounts> {
  const tags = JSON.stringify(q.selector.tags ?? []);
  const arch = JSON.stringify(q.selector.arch ?? []);
  const os = JSON.stringify(q.selector.os ?? []);
  const has = JSON.stringify([{ sha256: q.release.sha256 }]);
  const buckets = Math.round(q.percent * 100);
  const [row] = rowsOf<Record<string, string | number>>(
    await db.execute(sql`
      with targeted as (
        select m.id from machines m
        where m.tier = ${q.tier} and m.revoked_at is null
          and m.tags @> ${tags}::jsonb
          and (${arch}::jsonb = '[]'::jsonb or jsonb_exists(${arch}::jsonb, m.arch))
          and (${os}::jsonb = '[]'::jsonb or jsonb_exists(${os}::jsonb, m.os_id))
          and (${q.release.arch} = 'any' or m.arch = ${q.release.arch})
          and ('x' || substr(encode(sha256(convert_to(${q.rolloutId}, 'UTF8') || '\\x00'::bytea
                 || convert_to(m.id, 'UTF8')), 'hex'), 1, 8))::bit(32)::bigint % ${BUCKETS} < ${buckets}
      )
      select count(*)::int as targeted,
        count(*) filter (where rm.apply_outcome = 'applied')::int as applied,
        count(*) filter (where rm.apply_outcome = 'failed')::int as failed,
        count(*) filter (where rm.apply_outcome is null and rm.silent_at is not null)::int as silent,
        count(*) filter (where rm.apply_outcome is null and rm.silent_at is null
                           and rm.waiting_until > ${now.toISOString()}::timestamptz)::int as waiting,
        count(*) filter (where rm.apply_outcome is not null
                           or (rm.retry_at is null and exists (
                             select 1 from machines i where i.id = t.id and i.installed @> ${has}::jsonb)))::int as answered
      from targeted t
      left join rollout_machines rm on rm.rollout_id = ${q.rolloutId} and rm.machine_id = t.id`),
  );
  const n = (v: string | number | undefined) => Number(v ?? 0);
  const targeted = n(row?.targeted);
  const answered = n(row?.answered);
  return {
    targeted,
    answered,
    applied: n(row?.applied),
    failed: n(row?.failed),
    silent: n(row?.silent),
    waitingForWindow: n(row?.waiting),
    notAnswered: targeted - answered,
  };
}

/** Offered machines now silent, per rollout (for the threshold; any stage, targeted or not). */
export async function silentCounts(
  db: Executor,
  rolloutIds: readonly string[],
): Promise<Map<string, number>> {
  const out = new Map<string, number>();
  if (rolloutIds.length === 0) return out;
  const ids = sql.join(
    rolloutIds.map((id) => sql`${id}`),
    sql`, `,
  );
  const rows = rowsOf<{ rollout_id: string; silent: number | string }>(
    await db.execute(sql`
      select rollout_id, count(*)::int as silent from rollout_machines
      where rollout_id in (${ids}) and apply_outcome is null and silent_at is not null
      group by rollout_id`),
  );
  for (const r of rows) out.set(r.rollout_id, Number(r.silent));
  return out;
}

/**
 * Marks silent the offered machines of offering rollouts that have had no outcome within the
 * rollout's silence timeout, counted from the offer, a retry, or the end of the maintenance window
 * the machine said it waits for (whichever is latest). Answers the machines marked now: a
 * conditional update, so that several server processes never mark (and audit) one twice.
 */
export async function markSilent(
  db: Executor,
  now: Date,
): Promise<Array<{ rolloutId: string; machineId: string; since: Date }>> {
  const rows = rowsOf<{ rollout_id: string; machine_id: string; since: Date | string }>(
    await db.execute(sql`
      update rollout_machines rm set silent_at = ${now.toISOString()}::timestamptz
      from rollouts r
      where r.id = rm.rollout_id and r.state in ('active', 'completed')
        and rm.apply_outcome is null and rm.silent_at is null
        and greatest(rm.offered_at, rm.waiting_until, rm.retry_at)
              + make_interval(secs => r.silence_timeout_seconds) <= ${now.toISOString()}::timestamptz
      returning rm.rollout_id, rm.machine_id, greatest(rm.offered_at, rm.waiting_until, rm.retry_at) as since`),
  );
  return rows
    .map((r) => ({ rolloutId: r.rollout_id, machineId: r.machine_id, since: new Date(r.since) }))
    .sort((a, b) => (a.machineId < b.machineId ? -1 : a.machineId > b.machineId ? 1 : 0));
}
