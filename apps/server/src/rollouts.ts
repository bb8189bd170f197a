import { randomUUID } from 'node:crypto';
import {
  promotions,
  type RolloutSelector,
  type RolloutState,
  releases,
  rolloutAudit,
  rolloutCounters,
  rolloutMachines,
  rollouts,
} from '@clp/db';
import { and, asc, desc, eq, inArray, isNull, type SQL, sql } from 'drizzle-orm';
import type { z } from 'zod';
import { type AppContext, actorName, type Principal } from './context.ts';
import { sqlState } from './db-errors.ts';
import { ServerError } from './errors.ts';
import { findRelease } from './releases.ts';
import { countMachines, type MachineCounts, silentCounts } from './rollout-evidence.ts';
import {
  completesBy,
  failureRate,
  isLastStage,
  offeredPercent,
  stageEndsAt,
  stageGate,
} from './rollout-stage.ts';
import type { AuditEntry, CreateRolloutBody, RolloutListQuery, RolloutProgressView } from './schemas.ts';
import { requireTier } from './tiers.ts';

type RolloutRow = typeof rollouts.$inferSelect;
type ReleaseRow = typeof releases.$inferSelect;

/** Namespace of the advisory lock taken while a rollout is created (the key is the release). */
const CREATE_LOCK = 0x434c5052;
/** States in which a rollout still offers, or may again offer, its release (a completed one offers it to newcomers). */
const RUNNING: RolloutState[] = ['active', 'paused', 'halted', 'completed'];

/** Sorted, without repeats or empty lists: selectors that mean the same are stored the same. */
function canonicalSelector(selector: RolloutSelector): RolloutSelector {
  const out: RolloutSelector = {};
  for (const key of ['tags', 'arch', 'os'] as const) {
    const values = [...new Set(selector[key] ?? [])].sort();
    if (values.length > 0) out[key] = values;
  }
  return out;
}

function sameSelector(a: RolloutSelector, b: RolloutSelector): boolean {
  return JSON.stringify(canonicalSelector(a)) === JSON.stringify(canonicalSelector(b));
}

function describeSelector(s: RolloutSelector): string {
  const parts = [
    s.tags ? `tags ${s.tags.join(',')}` : '',
    s.arch ? `arch ${s.arch.join(',')}` : '',
    s.os ? `os ${s.os.join(',')}` : '',
  ].filter(Boolean);
  return parts.length > 0 ? parts.join('; ') : 'every machine of the tier';
}
type CountersRow = typeof rolloutCounters.$inferSelect;
type RolloutOut = z.infer<typeof RolloutProgressView>;

export type RolloutAction = 'pause' | 'resume' | 'abort' | 'revert';

/** Which states each operator action may start from, and where it leads. */
const ACTIONS: Record<RolloutAction, { from: readonly RolloutState[]; to: RolloutState }> = {
  pause: { from: ['active'], to: 'paused' },
  resume: { from: ['paused'], to: 'active' },
  abort: { from: ['active', 'paused', 'halted'], to: 'aborted' },
  revert: { from: ['active', 'paused', 'halted', 'completed', 'aborted'], to: 'reverted' },
};

function view(
  row: RolloutRow,
  counters: CountersRow | null,
  releaseName: string,
  silent: number,
  machines: MachineCounts | null,
  now: Date,
): RolloutOut {
  const c = counters ?? { applied: 0, failed: 0, reverted: 0, revertFailed: 0 };
  const lastStage = isLastStage(row);
  const outcomes = { applied: c.applied, failed: c.failed, silent };
  const gate = row.state === 'active' ? (stageGate(row, machines ?? undefined, now) ?? null) : null;
  return {
    id: row.id,
    releaseId: row.releaseId,
    releaseName,
    tier: row.tier,
    selector: row.selector as RolloutOut['selector'],
    stages: row.stages,
    currentStage: row.currentStage,
    stageStartedAt: row.stageStartedAt.toISOString(),
    nextStageAt: row.state === 'active' && !lastStage ? stageEndsAt(row).toISOString() : null,
    percent: offeredPercent(row),
    state: row.state,
    haltReason: row.haltReason,
    failureThreshold: {
      maxFailureRate: row.maxFailureRate,
      minReports: row.minReports,
      ...(row.maxFailures !== null ? { maxFailures: row.maxFailures } : {}),
    },
    silenceTimeoutSeconds: row.silenceTimeoutSeconds,
    completionWindowSeconds: row.completionWindowSeconds,
    completesBy: row.state === 'active' && lastStage ? completesBy(row).toISOString() : null,
    approvedStage: row.approvedStage,
    gate,
    machines,
    counters: {
      applied: c.applied,
      failed: c.failed,
      silent,
      reverted: c.reverted,
      revertFailed: c.revertFailed,
    },
    failureRate: failureRate(outcomes),
    createdBy: row.createdBy,
    createdAt: row.createdAt.toISOString(),
    updatedAt: row.updatedAt.toISOString(),
  };
}

export async function createRollout(
  ctx: AppContext,
  body: z.infer<typeof CreateRolloutBody>,
  principal: Principal,
): Promise<RolloutOut> {
  const release = await findRelease(ctx, body.releaseId);
  if (release.yankedAt) {
    throw new ServerError(
      'CLP_E_RELEASE_YANKED',
      `release ${release.name} was yanked; it cannot be rolled out`,
      {
        field: 'releaseId',
      },
    );
  }
  await requireTier(ctx, body.tier);
  const now = ctx.clock.now();
  const id = body.id ?? randomUUID();
  const actor = actorName(principal);
  const selector = canonicalSelector(body.selector);
  try {
    await ctx.db.transaction(async (tx) => {
      // Rollouts of one release are created one at a time, across replicas too, so that the check
      // for an identical running rollout below cannot race another request doing the same.
      await tx.execute(sql`select pg_advisory_xact_lock(${CREATE_LOCK}, hashtext(${release.id}))`);
      const running = await tx
        .select({ id: rollouts.id, state: rollouts.state, selector: rollouts.selector })
        .from(rollouts)
        .where(
          and(
            eq(rollouts.releaseId, release.id),
            eq(rollouts.tier, body.tier),
            inArray(rollouts.state, RUNNING),
          ),
        );
      const twin = running.find((r) => sameSelector(r.selector, selector));
      if (twin) {
        const advice =
          twin.state === 'completed'
            ? 'it offers the release to every machine it selects already'
            : `abort it first ('clpctl admin rollout abort ${twin.id}') or choose another selector`;
        throw new ServerError(
          'CLP_E_CONFLICT',
          `rollout ${twin.id} of ${release.name} to ${body.tier} (${describeSelector(selector)}) exists already and is ${twin.state}; a second one would offer nothing new: ${advice}`,
          { field: 'tier', details: { existing: twin.id, state: twin.state } },
        );
      }
      // A rollout to a tier puts the release in that tier: the promotion is recorded with it.
      const promoted = await tx
        .insert(promotions)
        .values({ releaseId: release.id, tier: body.tier, promotedBy: actor, promotedAt: now })
        .onConflictDoNothing()
        .returning({ tier: promotions.tier });
      await tx.insert(rollouts).values({
        id,
        releaseId: release.id,
        tier: body.tier,
        selector,
        stages: body.stages,
        currentStage: 0,
        stageStartedAt: now,
        state: 'active',
        maxFailureRate: body.failureThreshold.maxFailureRate,
        minReports: body.failureThreshold.minReports,
        maxFailures: body.failureThreshold.maxFailures ?? null,
        // Twice the poll interval: a machine that polls on time has had two chances to answer.
        silenceTimeoutSeconds: body.silenceTimeoutSeconds ?? Math.max(60, 2 * ctx.config.nextPollSeconds),
        completionWindowSeconds: body.completionWindowSeconds,
        createdBy: actor,
        createdAt: now,
        updatedAt: now,
      });
      await tx.insert(rolloutCounters).values({ rolloutId: id });
      await tx.insert(rolloutAudit).values({
        rolloutId: id,
        actor,
        action: 'create',
        at: now,
        details: {
          releaseId: release.id,
          tier: body.tier,
          stages: body.stages,
          selector,
          promoted: promoted.length > 0,
          failureThreshold: body.failureThreshold,
        },
      });
    });
  } catch (error) {
    if (body.id && sqlState(error) === '23505') {
      throw new ServerError(
        'CLP_E_CONFLICT',
        `a rollout with id ${body.id} exists already; preview again for a new id`,
        {
          field: 'id',
        },
      );
    }
    throw error;
  }
  ctx.rollouts.invalidate();
  return showRollout(ctx, id);
}

/**
 * A rollout's row, its stage transitions brought up to date, without the per-machine counts of
 * showRollout (a scan of its tier): for the timeline and the audit log, which a rollout's page
 * asks for beside the rollout itself.
 */
export async function findRollout(ctx: AppContext, id: string): Promise<RolloutRow> {
  ctx.rollouts.invalidate();
  await ctx.rollouts.refresh();
  const [row] = await ctx.db.select().from(rollouts).where(eq(rollouts.id, id));
  if (!row)
    throw new ServerError(
      'CLP_E_NOT_FOUND',
      `no rollout with id ${id}; list them with 'clpctl admin rollout list'`,
    );
  return row;
}

export async function showRollout(ctx: AppContext, id: string): Promise<RolloutOut> {
  // Brings stage transitions up to date before answering.
  ctx.rollouts.invalidate();
  await ctx.rollouts.refresh();
  const [row] = await ctx.db
    .select({ rollout: rollouts, counters: rolloutCounters, release: releases })
    .from(rollouts)
    .innerJoin(releases, eq(releases.id, rollouts.releaseId))
    .leftJoin(rolloutCounters, eq(rolloutCounters.rolloutId, rollouts.id))
    .where(eq(rollouts.id, id));
  if (!row)
    throw new ServerError(
      'CLP_E_NOT_FOUND',
      `no rollout with id ${id}; list them with 'clpctl admin rollout list'`,
    );
  const now = ctx.clock.now();
  const silent = (await silentCounts(ctx.db, [id])).get(id) ?? 0;
  const machines = await targetedMachines(ctx, row.rollout, row.release, now);
  return view(row.rollout, row.counters, row.release.name, silent, machines, now);
}

/** Where the machines of the rollout's current stage stand (any state: the stage it reached). */
function targetedMachines(ctx: AppContext, r: RolloutRow, release: ReleaseRow, now: Date) {
  return countMachines(
    ctx.db,
    {
      rolloutId: r.id,
      tier: r.tier,
      selector: r.selector,
      percent: r.stages[r.currentStage]?.percent ?? 0,
      release: { sha256: release.sha256, arch: release.arch },
    },
    now,
  );
}

/** Rollouts, newest first; `state` may list several states separated by commas. */
export async function listRollouts(
  ctx: AppContext,
  query: z.infer<typeof RolloutListQuery>,
): Promise<{ rollouts: RolloutOut[]; total: number }> {
  if (query.tier) await requireTier(ctx, query.tier, 'query.tier');
  ctx.rollouts.invalidate();
  await ctx.rollouts.refresh();
  const where: SQL[] = [];
  if (query.state) where.push(inArray(rollouts.state, query.state.split(',') as RolloutState[]));
  if (query.tier) where.push(eq(rollouts.tier, query.tier));
  if (query.releaseId) where.push(eq(rollouts.releaseId, query.releaseId));
  const rows = await ctx.db
    .select({ rollout: rollouts, counters: rolloutCounters, releaseName: releases.name })
    .from(rollouts)
    .innerJoin(releases, eq(releases.id, rollouts.releaseId))
    .leftJoin(rolloutCounters, eq(rolloutCounters.rolloutId, rollouts.id))
    .where(where.length ? and(...where) : undefined)
    .orderBy(desc(rollouts.createdAt), desc(rollouts.id))
    .limit(query.limit)
    .offset(query.offset);
  const [count] = await ctx.db
    .select({ n: sql<number>`count(*)::int` })
    .from(rollouts)
    .where(where.length ? and(...where) : undefined);
  const silent = await silentCounts(
    ctx.db,
    rows.map((r) => r.rollout.id),
  );
  const now = ctx.clock.now();
  return {
    rollouts: rows.map((r) =>
      view(r.rollout, r.counters, r.releaseName, silent.get(r.rollout.id) ?? 0, null, now),
    ),
    total: Number(count?.n ?? 0),
  };
}

/** pause | resume | abort | revert, each recorded in the audit log. */
export async function actOnRollout(
  ctx: AppContext,
  id: string,
  action: RolloutAction,
  reason: string | undefined,
  principal: Principal,
): Promise<RolloutOut> {
  const current = await showRollout(ctx, id);
  const rule = ACTIONS[action];
  if (!rule.from.includes(current.state as RolloutState)) {
    throw new ServerError(
      'CLP_E_ROLLOUT_STATE',
      `cannot ${action} rollout ${id}: it is ${current.state} (${action} works from ${rule.from.join(', ')})`,
      { details: { state: current.state, action } },
    );
  }
  const now = ctx.clock.now();
  const changed = await ctx.db.transaction(async (tx) => {
    const set: Partial<typeof rollouts.$inferInsert> = { state: rule.to, updatedAt: now };
    // A resumed stage starts its minimum time again: the paused time was not observed.
    if (action === 'resume') set.stageStartedAt = now;
    const updated = await tx
      .update(rollouts)
      .set(set)
      .where(and(eq(rollouts.id, id), eq(rollouts.state, current.state as RolloutState)))
      .returning({ id: rollouts.id });
    if (updated.length === 0) return false;
    await tx.insert(rolloutAudit).values({
      rolloutId: id,
      actor: actorName(principal),
      action,
      at: now,
      details: { from: current.state, to: rule.to, ...(reason ? { reason } : {}) },
    });
    return true;
  });
  if (!changed) {
    throw new ServerError(
      'CLP_E_ROLLOUT_STATE',
      `rollout ${id} changed while the request ran; look at it again and retry`,
    );
  }
  ctx.rollouts.invalidate();
  return showRollout(ctx, id);
}

export async function rolloutAuditLog(ctx: AppContext, id: string): Promise<z.infer<typeof AuditEntry>[]> {
  await findRollout(ctx, id);
  const rows = await ctx.db
    .select()
    .from(rolloutAudit)
    .where(eq(rolloutAudit.rolloutId, id))
    .orderBy(asc(rolloutAudit.id));
  return rows.map((r) => ({
    id: r.id,
    actor: r.actor,
    action: r.action,
    at: r.at.toISOString(),
    details: r.details,
  }));
}

/**
 * An operator's approval of the current stage's gate: the stage may end once its time and
 * evidence are there too. Recorded with who and why.
 */
export async function approveRollout(
  ctx: AppContext,
  id: string,
  reason: string,
  principal: Principal,
): Promise<RolloutOut> {
  const current = await showRollout(ctx, id);
  const stage = current.stages[current.currentStage];
  if (current.state !== 'active') {
    throw new ServerError(
      'CLP_E_ROLLOUT_STATE',
      `cannot approve rollout ${id}: it is ${current.state}; only an active rollout waits for an approval`,
      { details: { state: current.state, action: 'approve' } },
    );
  }
  if (!stage?.requireApproval) {
    throw new ServerError(
      'CLP_E_ROLLOUT_STATE',
      `rollout ${id}: stage ${current.currentStage + 1} has no approval gate; nothing to approve`,
      { details: { state: current.state, action: 'approve' } },
    );
  }
  if (current.approvedStage === current.currentStage) {
    throw new ServerError(
      'CLP_E_ROLLOUT_STATE',
      `rollout ${id}: stage ${current.currentStage + 1} is approved already`,
      { details: { state: current.state, action: 'approve' } },
    );
  }
  const now = ctx.clock.now();
  const done = await ctx.db.transaction(async (tx) => {
    const updated = await tx
      .update(rollouts)
      .set({ approvedStage: current.currentStage, updatedAt: now })
      .where(
        and(
          eq(rollouts.id, id),
          eq(rollouts.state, 'active'),
          eq(rollouts.currentStage, current.currentStage),
        ),
      )
      .returning({ id: rollouts.id });
    if (updated.length === 0) return false;
    await tx.insert(rolloutAudit).values({
      rolloutId: id,
      actor: actorName(principal),
      action: 'approve',
      at: now,
      details: { stage: current.currentStage, reason },
    });
    return true;
  });
  if (!done)
    throw new ServerError(
      'CLP_E_ROLLOUT_STATE',
      `rollout ${id} changed while the request ran; look at it again and retry`,
    );
  ctx.rollouts.invalidate();
  return showRollout(ctx, id);
}

/** States from which retry-failed works: the rollout offers its release, or halted for its failures. */
const RETRY_FROM: readonly RolloutState[] = ['active', 'completed', 'halted'];

/**
 * Offers the release again to the machines whose latest outcome for this rollout is `failed`
 * (after the cause was fixed), without restarting the rollout: their failures stop counting and
 * wait for the retries' outcomes, which the threshold judges like any other. A halted rollout
 * becomes active again at the stage it reached. The poll tells those machines that the offer is a
 * retry, so that their agents apply a release they remember as failed.
 */
export async function retryFailed(
  ctx: AppContext,
  id: string,
  reason: string | undefined,
  principal: Principal,
): Promise<RolloutOut & { retried: number }> {
  const current = await showRollout(ctx, id);
  if (!RETRY_FROM.includes(current.state as RolloutState)) {
    throw new ServerError(
      'CLP_E_ROLLOUT_STATE',
      `cannot retry the failed machines of rollout ${id}: it is ${current.state} (retry-failed works from ${RETRY_FROM.join(', ')})`,
      { details: { state: current.state, action: 'retry-failed' } },
    );
  }
  const now = ctx.clock.now();
  const retried = await ctx.db.transaction(async (tx) => {
    const state = current.state as RolloutState;
    const moved = await tx
      .update(rollouts)
      .set({
        updatedAt: now,
        ...(state === 'halted' ? { state: 'active' as const, haltReason: null, warnedAt: null } : {}),
      })
      .where(and(eq(rollouts.id, id), eq(rollouts.state, state)))
      .returning({ id: rollouts.id });
    if (moved.length === 0) return undefined;
    const machines = await tx
      .update(rolloutMachines)
      .set({ applyOutcome: null, retryAt: now, silentAt: null, waitingUntil: null })
      .where(and(eq(rolloutMachines.rolloutId, id), eq(rolloutMachines.applyOutcome, 'failed')))
      .returning({ machineId: rolloutMachines.machineId });
    // Silent machines are offered again too: their silence counted as a failure.
    const silent = await tx
      .update(rolloutMachines)
      .set({ retryAt: now, silentAt: null, waitingUntil: null })
      .where(
        and(
          eq(rolloutMachines.rolloutId, id),
          isNull(rolloutMachines.applyOutcome),
          sql`${rolloutMachines.silentAt} is not null`,
        ),
      )
      .returning({ machineId: rolloutMachines.machineId });
    await tx
      .update(rolloutCounters)
      .set({ failed: sql`greatest(0, ${rolloutCounters.failed} - ${machines.length})` })
      .where(eq(rolloutCounters.rolloutId, id));
    const all = [...machines, ...silent].map((m) => m.machineId).sort();
    await tx.insert(rolloutAudit).values({
      rolloutId: id,
      actor: actorName(principal),
      action: 'retry-failed',
      at: now,
      details: {
        failed: machines.length,
        silent: silent.length,
        machines: all.slice(0, 50),
        from: state,
        to: state === 'halted' ? 'active' : state,
        ...(reason ? { reason } : {}),
      },
    });
    return all.length;
  });
  if (retried === undefined)
    throw new ServerError(
      'CLP_E_ROLLOUT_STATE',
      `rollout ${id} changed while the request ran; look at it again and retry`,
    );
  ctx.rollouts.invalidate();
  return { ...(await showRollout(ctx, id)), retried };
}
