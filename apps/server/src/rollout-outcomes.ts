import { type Database, rolloutCounters, rolloutMachines, rollouts } from '@clp/db';
import { sql } from 'drizzle-orm';
import type { OfferLog } from './offer-log.ts';
import { reaches } from './poll.ts';
import { rowsOf } from './sql-rows.ts';

type Transaction = Parameters<Parameters<Database['transaction']>[0]>[0];

/** What a stored report says about its machine's outcome for a rollout. */
export interface OutcomeReport {
  id: string;
  machineId: string;
  rolloutId: string | null;
  releaseId: string | null;
  status: string;
  /** The agent's time of the report: which outcome is the latest. */
  at: Date;
  receivedAt: Date;
  /** With `scheduled`: when the maintenance window the machine waits for closes. */
  scheduledFor?: Date | null;
}

/** The longest wait for a window a machine may claim: a week and a day covers any weekly window. */
const MAX_WAIT_MS = 8 * 86_400_000;

type Slot = 'apply' | 'revert';
type Column = 'applied' | 'failed' | 'reverted' | 'revertFailed';

const SLOT: Record<string, Slot> = {
  applied: 'apply',
  failed: 'apply',
  reverted: 'revert',
  'revert-failed': 'revert',
};
const COLUMN: Record<string, Column> = {
  applied: 'applied',
  failed: 'failed',
  reverted: 'reverted',
  'revert-failed': 'revertFailed',
};

/** How far ahead of the server's clock an agent's clock may be and still order its reports. */
export const MAX_CLOCK_SKEW_MS = 5 * 60_000;

/**
 * The time a report's outcome is ordered by: the agent's own, unless it is further ahead than
 * any clock skew explains; then the time it was received. A report dated years ahead (a reset
 * clock, or a machine that wants its success to stick) would otherwise outrank every later one.
 */
function outcomeTime(r: OutcomeReport): Date {
  return r.at.getTime() > r.receivedAt.getTime() + MAX_CLOCK_SKEW_MS ? r.receivedAt : r.at;
}

const pairKey = (rolloutId: string, machineId: string) => `${rolloutId} ${machineId}`;
const compare = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);

interface Current {
  rolloutId: string;
  machineId: string;
  releaseId: string;
  applyOutcome: string | null;
  applyAt: Date | null;
  revertOutcome: string | null;
  revertAt: Date | null;
}

/**
 * Moves the per-machine outcomes, and the rollout counters that sum them, for the reports a round
 * stored (inside the round's transaction). A report counts only for a machine the rollout offered
 * its release to (a row in rollout_machines: written by the poll that offered it, or now, when the
 * offer is still in this process's memory or the rollout's current stage reaches the machine) and
 * for the rollout's own release. Each machine then counts once, by its latest outcome: the same
 * outcome sent again changes nothing, and a retry that succeeds replaces its failure.
 */
export async function recordOutcomes(
  tx: Transaction,
  reports: readonly OutcomeReport[],
  offers: OfferLog | undefined,
): Promise<void> {
  const counted = reports
    .filter((r) => r.rolloutId !== null && (SLOT[r.status] !== undefined || r.status === 'scheduled'))
    .map((r) => ({ ...r, at: outcomeTime(r) }));
  if (counted.length === 0) return;
  const byPair = new Map<string, OutcomeReport[]>();
  for (const r of counted) {
    const key = pairKey(r.rolloutId!, r.machineId);
    byPair.set(key, [...(byPair.get(key) ?? []), r]);
  }
  const pairs = [...byPair.keys()].sort(compare).map((k) => {
    const [rolloutId, machineId] = k.split(' ') as [string, string];
    return { rolloutId, machineId };
  });

  let current = await lockRows(tx, pairs);
  const missing = pairs.filter((p) => !current.has(pairKey(p.rolloutId, p.machineId)));
  if (missing.length > 0) {
    const offered = await offeredNow(tx, missing, byPair, offers);
    if (offered.length > 0) {
      await tx
        .insert(rolloutMachines)
        .values(offered.map((o) => ({ rolloutId: o.rolloutId, machineId: o.machineId, offeredAt: o.at })))
        .onConflictDoNothing();
      current = new Map([...current, ...(await lockRows(tx, offered))]);
    }
  }

  const deltas = new Map<string, Record<Column, number>>();
  const bump = (rolloutId: string, status: string | null, by: number) => {
    const column = status ? COLUMN[status] : undefined;
    if (!column) return;
    const d = deltas.get(rolloutId) ?? { applied: 0, failed: 0, reverted: 0, revertFailed: 0 };
    d[column] += by;
    deltas.set(rolloutId, d);
  };
  const changed: Array<
    Omit<Current, 'releaseId'> & { applyReportId: string | null; revertReportId: string | null }
  > = [];
  for (const [key, row] of [...current].sort(([a], [b]) => compare(a, b))) {
    // A report about another release than the rollout's says nothing about this rollout.
    const mine = (byPair.get(key) ?? []).filter((r) => !r.releaseId || r.releaseId === row.releaseId);
    const { releaseId: _release, ...outcome } = row;
    const next = { ...outcome, applyReportId: null as string | null, revertReportId: null as string | null };
    let moved = false;
    for (const slot of ['apply', 'revert'] as const) {
      const latest = mine
        .filter((r) => SLOT[r.status] === slot)
        .reduce<OutcomeReport | undefined>(
          (best, r) => (!best || r.at.getTime() >= best.at.getTime() ? r : best),
          undefined,
        );
      if (!latest) continue;
      const was = slot === 'apply' ? row.applyAt : row.revertAt;
      // An older report arriving late (a spool resent) does not undo a newer outcome.
      if (was && latest.at.getTime() < was.getTime()) continue;
      const before = slot === 'apply' ? row.applyOutcome : row.revertOutcome;
      if (slot === 'apply') {
        next.applyOutcome = latest.status;
        next.applyAt = latest.at;
        next.applyReportId = latest.id;
      } else {
        next.revertOutcome = latest.status;
        next.revertAt = latest.at;
        next.revertReportId = latest.id;
      }
      moved = true;
      if (before !== latest.status) {
        bump(row.rolloutId, before, -1);
        bump(row.rolloutId, latest.status, +1);
      }
    }
    if (moved) changed.push(next);
  }
  if (changed.length > 0) {
    const values = sql.join(
      changed.map(
        (c) =>
          sql`(${c.rolloutId}, ${c.machineId}, ${c.applyOutcome}::text, ${c.applyAt?.toISOString() ?? null}::timestamptz, ${c.applyReportId}::text, ${c.revertOutcome}::text, ${c.revertAt?.toISOString() ?? null}::timestamptz, ${c.revertReportId}::text)`,
      ),
      sql`, `,
    );
    await tx.execute(
      sql`update ${rolloutMachines} as rm set
            apply_outcome = v.apply_outcome, apply_at = v.apply_at,
            apply_report_id = coalesce(v.apply_report_id, rm.apply_report_id),
            revert_outcome = v.revert_outcome, revert_at = v.revert_at,
            revert_report_id = coalesce(v.revert_report_id, rm.revert_report_id)
          from (values ${values}) as v(rollout_id, machine_id, apply_outcome, apply_at, apply_report_id,
                                       revert_outcome, revert_at, revert_report_id)
          where rm.rollout_id = v.rollout_id and rm.machine_id = v.machine_id`,
    );
  }
  await recordWaits(tx, counted, current, changed);
  const moving = [...deltas].filter(([, d]) => Object.values(d).some((n) => n !== 0));
  if (moving.length > 0) {
    // One statement for every rollout of the round, in id order like the rows.
    const values = sql.join(
      moving
        .sort(([a], [b]) => compare(a, b))
        .map(
          ([rolloutId, d]) =>
            sql`(${rolloutId}, ${d.applied}::int, ${d.failed}::int, ${d.reverted}::int, ${d.revertFailed}::int)`,
        ),
      sql`, `,
    );
    await tx.execute(
      sql`update ${rolloutCounters} as c set applied = c.applied + v.applied, failed = c.failed + v.failed,
            reverted = c.reverted + v.reverted, revert_failed = c.revert_failed + v.revert_failed
          from (values ${values}) as v(rollout_id, applied, failed, reverted, revert_failed)
          where c.rollout_id = v.rollout_id`,
    );
  }
}

/**
 * A machine that said it waits for its maintenance window is not silent until that window has
 * closed (plus the silence timeout): its row keeps when the window closes. Only while it has no
 * outcome yet, and never further than MAX_WAIT_MS from the report.
 */
async function recordWaits(
  tx: Transaction,
  counted: readonly OutcomeReport[],
  current: ReadonlyMap<string, Current>,
  changed: ReadonlyArray<{ rolloutId: string; machineId: string }>,
): Promise<void> {
  const moved = new Set(changed.map((c) => pairKey(c.rolloutId, c.machineId)));
  const until = new Map<string, { rolloutId: string; machineId: string; at: Date }>();
  for (const r of counted) {
    if (r.status !== 'scheduled' || !r.scheduledFor) continue;
    const key = pairKey(r.rolloutId!, r.machineId);
    const row = current.get(key);
    if (!row || row.applyOutcome !== null || moved.has(key)) continue;
    if (r.releaseId && r.releaseId !== row.releaseId) continue;
    const at = new Date(Math.min(r.scheduledFor.getTime(), r.receivedAt.getTime() + MAX_WAIT_MS));
    const before = until.get(key);
    if (!before || at > before.at) until.set(key, { rolloutId: row.rolloutId, machineId: row.machineId, at });
  }
  if (until.size === 0) return;
  const values = sql.join(
    [...until.values()].map((w) => sql`(${w.rolloutId}, ${w.machineId}, ${w.at.toISOString()}::timestamptz)`),
    sql`, `,
  );
  await tx.execute(
    sql`update ${rolloutMachines} as rm set waiting_until = v.until, silent_at = null
        from (values ${values}) as v(rollout_id, machine_id, until)
        where rm.rollout_id = v.rollout_id and rm.machine_id = v.machine_id and rm.apply_outcome is null`,
  );
}

/** The rows of these pairs that exist, locked (in key order) until the round commits. */
async function lockRows(
  tx: Transaction,
  pairs: ReadonlyArray<{ rolloutId: string; machineId: string }>,
): Promise<Map<string, Current>> {
  const out = new Map<string, Current>();
  if (pairs.length === 0) return out;
  const values = sql.join(
    pairs.map((p) => sql`(${p.rolloutId}, ${p.machineId})`),
    sql`, `,
  );
  const rows = rowsOf<{
    rollout_id: string;
    machine_id: string;
    release_id: string;
    apply_outcome: string | null;
    apply_at: Date | string | null;
    revert_outcome: string | null;
    revert_at: Date | string | null;
  }>(
    await tx.execute(
      sql`select rm.rollout_id, rm.machine_id, r.release_id, rm.apply_outcome, rm.apply_at,
                 rm.revert_outcome, rm.revert_at
          from ${rolloutMachines} as rm
            join (values ${values}) as v(rollout_id, machine_id)
              on rm.rollout_id = v.rollout_id and rm.machine_id = v.machine_id
            join ${rollouts} as r on r.id = rm.rollout_id
          order by rm.rollout_id, rm.machine_id
          for update of rm`,
    ),
  );
  const date = (v: Date | string | null) => (v === null ? null : new Date(v));
  for (const r of rows) {
    out.set(pairKey(r.rollout_id, r.machine_id), {
      rolloutId: r.rollout_id,
      machineId: r.machine_id,
      releaseId: r.release_id,
      applyOutcome: r.apply_outcome,
      applyAt: date(r.apply_at),
      revertOutcome: r.revert_outcome,
      revertAt: date(r.revert_at),
    });
  }
  return out;
}

/**
 * Of the pairs without a row, those the rollout did offer: a poll of this process offered it and
 * its batch has not landed yet, or the rollout's current stage reaches the machine (a poll on
 * another server process offered it, or is about to). The rest were never offered.
 */
async function offeredNow(
  tx: Transaction,
  missing: ReadonlyArray<{ rolloutId: string; machineId: string }>,
  byPair: ReadonlyMap<string, readonly OutcomeReport[]>,
  offers: OfferLog | undefined,
): Promise<Array<{ rolloutId: string; machineId: string; at: Date }>> {
  const out: Array<{ rolloutId: string; machineId: string; at: Date }> = [];
  const unknown: Array<{ rolloutId: string; machineId: string }> = [];
  for (const p of missing) {
    const at = offers?.pendingSince(p.rolloutId, p.machineId);
    if (at) out.push({ ...p, at });
    else unknown.push(p);
  }
  if (unknown.length > 0) {
    const values = sql.join(
      unknown.map((p) => sql`(${p.rolloutId}, ${p.machineId})`),
      sql`, `,
    );
    const rows = rowsOf<{
      rollout_id: string;
      machine_id: string;
      tier: string;
      selector: unknown;
      stages: unknown;
      current_stage: number;
      release_arch: string;
      machine_tier: string;
      tags: unknown;
      arch: string;
      os_id: string;
    }>(
      await tx.execute(
        sql`select v.rollout_id, v.machine_id, r.tier, r.selector, r.stages, r.current_stage,
                   rel.arch as release_arch, m.tier as machine_tier, m.tags, m.arch, m.os_id
            from (values ${values}) as v(rollout_id, machine_id)
            join rollouts r on r.id = v.rollout_id
            join releases rel on rel.id = r.release_id
            join machines m on m.id = v.machine_id`,
      ),
    );
    const json = <T>(v: unknown): T => (typeof v === 'string' ? JSON.parse(v) : v) as T;
    for (const r of rows) {
      const reached = reaches(
        {
          id: r.rollout_id,
          tier: r.tier,
          selector: json(r.selector),
          stages: json(r.stages),
          currentStage: Number(r.current_stage),
          release: { arch: r.release_arch },
        },
        { id: r.machine_id, tier: r.machine_tier, tags: json<string[]>(r.tags), arch: r.arch, osId: r.os_id },
      );
      if (!reached) continue;
      const first = (byPair.get(pairKey(r.rollout_id, r.machine_id)) ?? [])[0];
      out.push({ rolloutId: r.rollout_id, machineId: r.machine_id, at: first?.receivedAt ?? new Date() });
    }
  }
  return out.sort((a, b) => compare(pairKey(a.rolloutId, a.machineId), pairKey(b.rolloutId, b.machineId)));
}
