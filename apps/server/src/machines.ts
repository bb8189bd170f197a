import { type InstalledPatchRecord, machines, reports, rolloutMachines, rollouts } from '@clp/db';
import { readableTime } from '@clp/protocol';
import { and, asc, desc, eq, inArray, isNotNull, isNull, type SQL, sql } from 'drizzle-orm';
import type { z } from 'zod';
import { type AppContext, actorName, type MachineRow, type Principal } from './context.ts';
import { judgeCutoff, parseCutoff } from './cutoff.ts';
import { ServerError } from './errors.ts';
import { decide, type PollMachine, windowFor } from './poll.ts';
import { findRelease } from './releases.ts';
import { rolloutView } from './rollout-cache.ts';
import { formatSeconds } from './rollout-stage.ts';
import type { Explanation, Machine, MachineListQuery, Report, ReportListQuery } from './schemas.ts';
import { requireTier } from './tiers.ts';

type MachineOut = z.infer<typeof Machine>;

function machineView(row: MachineRow): MachineOut {
  return {
    id: row.id,
    hostname: row.hostname,
    arch: row.arch,
    os: { id: row.osId, version: row.osVersion },
    agentVersion: typeof row.facts.agentVersion === 'string' ? row.facts.agentVersion : null,
    tier: row.tier,
    tags: row.tags,
    enrolledAt: row.enrolledAt.toISOString(),
    lastSeenAt: row.lastSeenAt?.toISOString() ?? null,
    installed: row.installed as unknown as Record<string, unknown>[],
    facts: row.facts,
    revoked: row.revokedAt !== null,
    rekeyUntil: row.rekeyUntil?.toISOString() ?? null,
  };
}

export async function listMachines(
  ctx: AppContext,
  query: z.infer<typeof MachineListQuery>,
): Promise<{ machines: MachineOut[]; total: number }> {
  // Polls write in batches; flush so that a listing shows what the machines said last.
  await ctx.seen.flush();
  // A mistyped tier is a mistake to name, not an empty fleet.
  if (query.tier) await requireTier(ctx, query.tier, 'query.tier');
  const where: SQL[] = [];
  if (query.tier) where.push(eq(machines.tier, query.tier));
  if (query.arch) where.push(eq(machines.arch, query.arch));
  if (query.os) where.push(eq(machines.osId, query.os));
  if (query.hostname) where.push(eq(machines.hostname, query.hostname));
  if (query.tag) where.push(sql`${machines.tags} @> ${JSON.stringify([query.tag])}::jsonb`);
  if (query.installed) {
    where.push(
      sql`${machines.installed} @> ${JSON.stringify([{ sha256: query.installed, state: 'installed' }])}::jsonb`,
    );
  }
  if (query.failed) {
    where.push(
      sql`${machines.installed} @> ${JSON.stringify([{ sha256: query.failed, state: 'failed' }])}::jsonb`,
    );
  }
  if (query.q) {
    const pattern = `%${query.q.replace(/[\\%_]/g, (c) => `\\${c}`)}%`;
    where.push(sql`(${machines.hostname} ilike ${pattern} or ${machines.id} ilike ${pattern})`);
  }
  if (query.seen) {
    const now = ctx.clock.now().getTime();
    const since = (days: number) => new Date(now - days * 86_400_000).toISOString();
    if (query.seen === 'day') where.push(sql`${machines.lastSeenAt} >= ${since(1)}::timestamptz`);
    if (query.seen === 'week') where.push(sql`${machines.lastSeenAt} >= ${since(7)}::timestamptz`);
    if (query.seen === 'stale')
      where.push(sql`(${machines.lastSeenAt} is null or ${machines.lastSeenAt} < ${since(7)}::timestamptz)`);
    if (query.seen === 'never') where.push(isNull(machines.lastSeenAt));
  }
  if (query.revoked === 'true') where.push(isNotNull(machines.revokedAt));
  if (query.revoked === 'false') where.push(isNull(machines.revokedAt));
  const filter = where.length ? and(...where) : undefined;
  const order =
    query.sort === 'lastSeen'
      ? [sql`${machines.lastSeenAt} desc nulls last`, asc(machines.id)]
      : query.sort === 'enrolled'
        ? [desc(machines.enrolledAt), asc(machines.id)]
        : [asc(machines.hostname), asc(machines.id)];
  const rows = await ctx.db
    .select()
    .from(machines)
    .where(filter)
    .orderBy(...order)
    .limit(query.limit)
    .offset(query.offset);
  const [count] = await ctx.db.select({ n: sql<number>`count(*)::int` }).from(machines).where(filter);
  return { machines: rows.map(machineView), total: Number(count?.n ?? 0) };
}

async function findMachine(ctx: AppContext, id: string): Promise<MachineRow> {
  await ctx.seen.flush();
  const [row] = await ctx.db.select().from(machines).where(eq(machines.id, id));
  if (!row)
    throw new ServerError(
      'CLP_E_NOT_FOUND',
      `no machine with id ${id}; list them with 'clpctl admin machines'`,
    );
  return row;
}

export async function showMachine(
  ctx: AppContext,
  id: string,
): Promise<MachineOut & { recentReports: Report[] }> {
  const row = await findMachine(ctx, id);
  const recent = await ctx.db
    .select()
    .from(reports)
    .where(eq(reports.machineId, id))
    .orderBy(desc(reports.receivedAt))
    .limit(20);
  return { ...machineView(row), recentReports: recent.map(reportView) };
}

/** Why a machine has or has not been offered a release, rollout by rollout. */
export async function explain(
  ctx: AppContext,
  machineId: string,
  releaseId: string,
  cutoffSetting?: string,
): Promise<z.infer<typeof Explanation>> {
  const machine = await findMachine(ctx, machineId);
  const release = await findRelease(ctx, releaseId);
  await ctx.rollouts.refresh();
  const rows = await ctx.db
    .select()
    .from(rollouts)
    .where(eq(rollouts.releaseId, releaseId))
    .orderBy(asc(rollouts.createdAt));
  const installed = (machine.installed as InstalledPatchRecord[]).map((p) => ({ ...p }));
  const mine = installed.find((p) => p.sha256 === release.sha256);
  const pm: PollMachine = {
    id: machine.id,
    tier: machine.tier,
    tags: machine.tags,
    arch: machine.arch,
    osId: machine.osId,
  };
  const answers =
    rows.length === 0
      ? []
      : await ctx.db
          .select()
          .from(rolloutMachines)
          .where(
            and(
              eq(rolloutMachines.machineId, machine.id),
              inArray(
                rolloutMachines.rolloutId,
                rows.map((r) => r.id),
              ),
            ),
          );
  const now = ctx.clock.now();
  const timeoutOf = new Map(rows.map((r) => [r.id, r.silenceTimeoutSeconds]));
  const offers = answers.map((a) => {
    const timeout = formatSeconds(timeoutOf.get(a.rolloutId) ?? 0);
    const retrying = a.retryAt !== null && a.applyOutcome === null;
    const [outcome, reason]: [Explanation['offers'][number]['outcome'], string] =
      a.applyOutcome === 'applied'
        ? ['applied', `reported applied at ${a.applyAt ? readableTime(a.applyAt) : '-'}`]
        : a.applyOutcome === 'failed'
          ? ['failed', `reported failed at ${a.applyAt ? readableTime(a.applyAt) : '-'}; counted as failed`]
          : a.silentAt !== null
            ? [
                'silent',
                `offered at ${readableTime(a.offeredAt)}${retrying ? ' (retried)' : ''} and no outcome within the silence timeout of ${timeout}: counted as failed since ${readableTime(a.silentAt)}`,
              ]
            : a.waitingUntil !== null && a.waitingUntil > now
              ? [
                  'waiting-for-window',
                  `waits for its maintenance window, which closes at ${readableTime(a.waitingUntil)}`,
                ]
              : retrying
                ? [
                    'retry',
                    `offered again by retry-failed at ${a.retryAt ? readableTime(a.retryAt) : '-'}; no outcome yet`,
                  ]
                : [
                    'pending',
                    `offered at ${readableTime(a.offeredAt)}; no outcome yet (silent after ${timeout})`,
                  ];
    return { rolloutId: a.rolloutId, offeredAt: a.offeredAt.toISOString(), outcome, reason };
  });
  const retryOf = new Map(
    answers.filter((a) => a.retryAt !== null && a.applyOutcome === null).map((a) => [a.rolloutId, true]),
  );
  const decisions = rows.map((r) => {
    const v = rolloutView(r, release, retryOf.get(r.id) ? new Set([machine.id]) : new Set());
    const d = decide(pm, installed, v);
    return {
      rolloutId: r.id,
      state: r.state,
      tier: r.tier,
      outcome: d.outcome,
      rule: d.rule,
      reason: r.state === 'halted' && r.haltReason ? `${d.reason} (halted: ${r.haltReason})` : d.reason,
      ...(d.bucket !== undefined ? { bucket: d.bucket } : {}),
      ...(d.percent !== undefined ? { percent: d.percent } : {}),
    };
  });
  const parsedCutoff = cutoffSetting === undefined ? undefined : parseCutoff(cutoffSetting);
  const cutoff = parsedCutoff === undefined ? null : judgeCutoff(parsedCutoff, release.uploadedAt, now);
  const silentOffer = offers.find((o) => o.outcome === 'silent');
  const offered = decisions.some((d) => d.outcome === 'apply');
  const verdict = offered
    ? cutoff?.held
      ? 'held'
      : 'offered'
    : decisions.some((d) => d.outcome === 'revert')
      ? 'revert'
      : 'not-offered';
  let summary: string;
  if (verdict === 'offered') summary = `offered: ${decisions.find((d) => d.outcome === 'apply')!.reason}`;
  else if (verdict === 'held')
    summary = `offered by the server, but held back by the machine's cut-off: ${cutoff!.reason}`;
  else if (verdict === 'revert')
    summary = `to be reverted: ${decisions.find((d) => d.outcome === 'revert')!.reason}`;
  else if (decisions.length === 0)
    summary = `release ${release.name} has no rollout; start one with 'clpctl admin rollout create ${release.name} --tier TIER'`;
  else {
    const inTier = decisions.filter((d) => d.rule !== 'tier');
    summary = `not offered: ${(inTier[inTier.length - 1] ?? decisions[decisions.length - 1])!.reason}`;
  }
  // Silence is an outcome of its own: "why" says so whatever the offer is now.
  if (silentOffer) summary = `${summary}; silent: ${silentOffer.reason}`;
  return {
    machineId: machine.id,
    releaseId: release.id,
    releaseName: release.name,
    yanked: release.yankedAt !== null,
    installed: mine ? mine.state : 'no',
    verdict,
    summary,
    releasedAt: release.uploadedAt.toISOString(),
    offers,
    maintenanceWindow: windowFor(machine, ctx.rollouts.windows())?.spec ?? null,
    cutoff,
    rollouts: decisions,
  };
}

/**
 * Revokes a machine's credential: its next call gets 401, and its id cannot be enrolled again
 * until an operator re-keys it (a re-key window still open is closed too).
 */
export async function revokeMachine(ctx: AppContext, id: string, principal: Principal): Promise<MachineOut> {
  await ctx.seen.flush();
  const [row] = await ctx.db
    .update(machines)
    .set({ revokedAt: ctx.clock.now(), rekeyUntil: null })
    .where(eq(machines.id, id))
    .returning();
  if (!row)
    throw new ServerError(
      'CLP_E_NOT_FOUND',
      `no machine with id ${id}; list them with 'clpctl admin machines'`,
    );
  ctx.machineAuth.clear();
  ctx.log.info({ machine: id, by: actorName(principal) }, 'machine credential revoked');
  return machineView(row);
}

/**
 * Re-keys a machine (reinstalled, or its credential lost or exposed): its current credential
 * stops working now, and for `expiresInSeconds` one enrollment under its id is let in without
 * that credential. The machine then runs `clpctl enroll` with an enrollment token as usual.
 */
export async function rekeyMachine(
  ctx: AppContext,
  id: string,
  body: { expiresInSeconds: number; reason?: string | undefined },
  principal: Principal,
): Promise<MachineOut> {
  await ctx.seen.flush();
  const now = ctx.clock.now();
  const [row] = await ctx.db
    .update(machines)
    .set({ revokedAt: now, rekeyUntil: new Date(now.getTime() + body.expiresInSeconds * 1000) })
    .where(eq(machines.id, id))
    .returning();
  if (!row)
    throw new ServerError(
      'CLP_E_NOT_FOUND',
      `no machine with id ${id}; list them with 'clpctl admin machines'`,
    );
  ctx.machineAuth.clear();
  ctx.log.info(
    { machine: id, by: actorName(principal), until: row.rekeyUntil, reason: body.reason },
    'machine re-keyed: its credential is revoked and its id may enroll again',
  );
  return machineView(row);
}

function reportView(row: typeof reports.$inferSelect): Report {
  return {
    id: row.id,
    machineId: row.machineId,
    releaseId: row.releaseId,
    rolloutId: row.rolloutId,
    name: row.name,
    sha256: row.sha256,
    status: row.status,
    errorCode: row.errorCode,
    log: row.log,
    at: row.at.toISOString(),
    receivedAt: row.receivedAt.toISOString(),
  };
}

/** Reports, newest first, with the machine's host name; paged by limit and offset. */
export async function listReports(
  ctx: AppContext,
  query: z.infer<typeof ReportListQuery>,
): Promise<{ reports: Report[]; total: number }> {
  if (query.machine) await findMachine(ctx, query.machine);
  const where: SQL[] = [];
  if (query.rollout) where.push(eq(reports.rolloutId, query.rollout));
  if (query.machine) where.push(eq(reports.machineId, query.machine));
  if (query.status) where.push(eq(reports.status, query.status));
  const filter = where.length ? and(...where) : undefined;
  const rows = await ctx.db
    .select({ report: reports, hostname: machines.hostname })
    .from(reports)
    .leftJoin(machines, eq(machines.id, reports.machineId))
    .where(filter)
    // Reports that arrived together (one batch) follow the agent's own times: last event first.
    .orderBy(desc(reports.receivedAt), desc(reports.at), desc(reports.id))
    .limit(query.limit)
    .offset(query.offset);
  const [count] = await ctx.db.select({ n: sql<number>`count(*)::int` }).from(reports).where(filter);
  return {
    reports: rows.map((r) => ({ ...reportView(r.report), hostname: r.hostname })),
    total: Number(count?.n ?? 0),
  };
}
