import { type Database, type InstalledPatchRecord, machines, releases } from '@clp/db';
import { inArray, sql } from 'drizzle-orm';

/** The part of a stored report that says what is on its machine now. */
export interface InstalledReport {
  machineId: string;
  releaseId: string | null;
  name: string;
  sha256: string | null;
  status: string;
  /** The agent's time of the report: the order in which its changes happened. */
  at: Date;
  /** When the server got it. */
  receivedAt: Date;
}

type Transaction = Parameters<Parameters<Database['transaction']>[0]>[0];

const CHANGES_INSTALLED = new Set(['applied', 'failed', 'reverted']);

/** True for a report that adds, marks or removes a release in its machine's installed list. */
export function changesInstalled(report: InstalledReport): boolean {
  return CHANGES_INSTALLED.has(report.status) && report.sha256 !== null;
}

/**
 * The installed list after the reports, taken in the order given: `applied` lists the release as
 * installed, `failed` as failed here (the agent will not retry it unasked), `reverted` drops it.
 * A release is one entry, whatever it was before.
 */
export function installedAfter(
  installed: readonly InstalledPatchRecord[],
  reports: readonly InstalledReport[],
  seriesOf: ReadonlyMap<string, string>,
): InstalledPatchRecord[] {
  let list = [...installed];
  for (const r of reports) {
    if (!changesInstalled(r)) continue;
    const sha256 = r.sha256!;
    const before = list.find((p) => p.sha256 === sha256 || p.name === r.name);
    list = list.filter((p) => p.sha256 !== sha256 && p.name !== r.name);
    if (r.status === 'reverted') continue;
    const series = (r.releaseId ? seriesOf.get(r.releaseId) : undefined) ?? before?.series;
    list.push({
      name: r.name,
      sha256,
      ...(series !== undefined ? { series } : {}),
      state: r.status === 'applied' ? 'installed' : 'failed',
    });
  }
  return list;
}

/**
 * Brings the installed lists of the reporting machines up to date inside the report round's
 * transaction, so that a machine shows what it applied as soon as it says so, not at its next
 * poll. `last_seen_at` moves to the report's arrival as well: a poll recorded before the report but
 * written after it (MachineSeen writes in batches, and may run on another replica) is older, and
 * MachineSeen does not write over newer news.
 */
export async function recordInstalled(tx: Transaction, reports: readonly InstalledReport[]): Promise<void> {
  const changing = reports.filter(changesInstalled);
  if (changing.length === 0) return;
  const ordered = changing
    .map((r, i) => ({ r, i }))
    .sort((a, b) => a.r.at.getTime() - b.r.at.getTime() || a.i - b.i)
    .map(({ r }) => r);
  const machineIds = [...new Set(ordered.map((r) => r.machineId))].sort();
  const releaseIds = [...new Set(ordered.flatMap((r) => (r.releaseId ? [r.releaseId] : [])))];
  // Rows locked in id order, like the counters: rounds on several replicas wait, not deadlock.
  const rows = await tx
    .select({ id: machines.id, installed: machines.installed })
    .from(machines)
    .where(inArray(machines.id, machineIds))
    .orderBy(machines.id)
    .for('update');
  if (rows.length === 0) return;
  const series = new Map<string, string>();
  if (releaseIds.length > 0) {
    const found = await tx
      .select({ id: releases.id, series: releases.series })
      .from(releases)
      .where(inArray(releases.id, releaseIds));
    for (const f of found) series.set(f.id, f.series);
  }
  const values = sql.join(
    rows.map((row) => {
      const mine = ordered.filter((r) => r.machineId === row.id);
      const next = installedAfter(row.installed, mine, series);
      const seen = new Date(Math.max(...mine.map((r) => r.receivedAt.getTime())));
      return sql`(${row.id}, ${JSON.stringify(next)}::jsonb, ${seen.toISOString()}::timestamptz)`;
    }),
    sql`, `,
  );
  await tx.execute(
    sql`update ${machines} as m set installed = v.installed,
          last_seen_at = greatest(coalesce(m.last_seen_at, v.seen), v.seen)
        from (values ${values}) as v(id, installed, seen) where m.id = v.id`,
  );
}
