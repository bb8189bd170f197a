import { type Database, releases, rolloutAudit, rolloutCounters, rollouts } from '@clp/db';
import { and, eq, inArray, isNull, type SQL } from 'drizzle-orm';
import type { Clock } from './clock.ts';
import type { ServerMetrics } from './metrics.ts';
import { countMachines, markSilent, silentCounts } from './rollout-evidence.ts';
import {
  failureRate,
  formatSeconds,
  type Gate,
  needsEvidence,
  nextTransition,
  type StageEvidence,
  type StageTransition,
  stageEndsAt,
  warrantsWarning,
} from './rollout-stage.ts';
import { enqueueEvent, type RolloutEvent, type WebhookConfig } from './webhooks.ts';

export interface JudgeOptions {
  webhooks?: WebhookConfig;
  metrics?: ServerMetrics;
  /**
   * How long a count of a rollout's targeted machines is reused (real time, ms): counting reads
   * the tier's machines, and reloads of the poll cache call this often. Offered machines are
   * checked for silence at the same pace. 0 counts and checks every time.
   */
  evidenceMs?: number;
}

export type JudgedChange =
  | { rolloutId: string; transition: StageTransition }
  | { rolloutId: string; transition: { kind: 'warn' | 'silent'; count?: number } };

const AUDIT_MACHINES = 50;

/** When each database's offered machines were last checked for silence (real time). */
const silenceCheckedAt = new WeakMap<Database, number>();

/** Counts of targeted machines per rollout stage, reused for a short while. */
const evidenceMemo = new WeakMap<Database, Map<string, { at: number; evidence: StageEvidence }>>();

/**
 * Judges every rollout that offers its release (active or completed) and applies what is due:
 * machines silent past their timeout are marked (and audited); an unhealthy rollout halts,
 * completed or not; an active one warns once at half its failure threshold, waits at a gate
 * (audited once per gate), advances a stage, or completes once every targeted machine answered or
 * its completion window passed. Each change is a conditional update on the state as read, so that
 * several server processes judging at once never apply (or announce) one step twice.
 */
export async function advanceRollouts(
  db: Database,
  clock: Clock,
  options: JudgeOptions = {},
): Promise<JudgedChange[]> {
  const now = clock.now();
  const changed: JudgedChange[] = [];

  // Timeouts are hours or days: checking every few seconds is plenty, and the check reads every
  // unanswered offer of every offering rollout.
  const reuseMs = options.evidenceMs ?? 0;
  const checked = silenceCheckedAt.get(db);
  const checkSilence = reuseMs === 0 || checked === undefined || performance.now() - checked >= reuseMs;
  if (checkSilence) silenceCheckedAt.set(db, performance.now());
  const silentNow = !checkSilence
    ? new Map<string, Array<{ rolloutId: string; machineId: string; since: Date }>>()
    : await db.transaction(async (tx) => {
        const marked = await markSilent(tx, now);
        const byRollout = new Map<string, typeof marked>();
        for (const m of marked) byRollout.set(m.rolloutId, [...(byRollout.get(m.rolloutId) ?? []), m]);
        for (const [rolloutId, list] of byRollout) {
          await tx.insert(rolloutAudit).values({
            rolloutId,
            actor: 'system',
            action: 'silent',
            at: now,
            details: {
              count: list.length,
              reason: 'offered the release and sent no outcome within the silence timeout: counted as failed',
              machines: list
                .slice(0, AUDIT_MACHINES)
                .map((m) => ({ machineId: m.machineId, since: m.since.toISOString() })),
            },
          });
        }
        return byRollout;
      });
  for (const [rolloutId, list] of silentNow) {
    changed.push({ rolloutId, transition: { kind: 'silent', count: list.length } });
    options.metrics?.rolloutEvents.inc({ event: 'silent' }, list.length);
  }

  const rows = await db
    .select({ rollout: rollouts, counters: rolloutCounters, release: releases })
    .from(rollouts)
    .innerJoin(releases, eq(releases.id, rollouts.releaseId))
    .leftJoin(rolloutCounters, eq(rolloutCounters.rolloutId, rollouts.id))
    .where(inArray(rollouts.state, ['active', 'completed']));
  const silent = await silentCounts(
    db,
    rows.map((r) => r.rollout.id),
  );

  for (const { rollout, counters, release } of rows) {
    const outcomes = {
      applied: counters?.applied ?? 0,
      failed: counters?.failed ?? 0,
      silent: silent.get(rollout.id) ?? 0,
    };
    const evidence =
      rollout.state === 'active' && // Evidence is only worth counting once the stage's minimum time is up.
      needsEvidence(rollout) &&
      now >= stageEndsAt(rollout)
        ? await stageEvidence(db, rollout, release, now, options.evidenceMs ?? 0)
        : undefined;
    const transition = nextTransition(rollout, outcomes, now, evidence);
    const payload = {
      releaseId: release.id,
      releaseName: release.name,
      tier: rollout.tier,
      stage: rollout.currentStage,
      counters: outcomes,
      failureRate: failureRate(outcomes),
      threshold: {
        maxFailureRate: rollout.maxFailureRate,
        minReports: rollout.minReports,
        maxFailures: rollout.maxFailures,
      },
    };

    if (transition.kind !== 'halt' && rollout.warnedAt === null && warrantsWarning(rollout, outcomes)) {
      const reason = `failure rate ${(failureRate(outcomes) * 100).toFixed(1)} % reached half the threshold of ${(rollout.maxFailureRate * 100).toFixed(1)} %`;
      const warned = await db.transaction(async (tx) => {
        const done = await tx
          .update(rollouts)
          .set({ warnedAt: now })
          .where(and(eq(rollouts.id, rollout.id), isNull(rollouts.warnedAt)))
          .returning({ id: rollouts.id });
        if (done.length === 0) return false;
        await tx.insert(rolloutAudit).values({
          rolloutId: rollout.id,
          actor: 'system',
          action: 'warning',
          at: now,
          details: { reason, counters: outcomes },
        });
        await enqueueEvent(
          tx,
          options.webhooks,
          'rollout.failure-warning',
          rollout.id,
          { ...payload, reason },
          now,
        );
        return true;
      });
      if (warned) {
        changed.push({ rolloutId: rollout.id, transition: { kind: 'warn' } });
        options.metrics?.rolloutEvents.inc({ event: 'failure_warning' });
      }
    }

    if (transition.kind === 'none') continue;
    if (transition.kind === 'wait') {
      if (rollout.waitingGate === transition.gate.kind) continue;
      if (await recordGate(db, rollout, transition.gate, evidence, now))
        changed.push({ rolloutId: rollout.id, transition });
      continue;
    }
    const set: Partial<typeof rollouts.$inferInsert> =
      transition.kind === 'advance'
        ? { currentStage: transition.toStage, stageStartedAt: now, updatedAt: now, waitingGate: null }
        : transition.kind === 'complete'
          ? { state: 'completed', updatedAt: now, waitingGate: null }
          : { state: 'halted', haltReason: transition.reason, updatedAt: now, waitingGate: null };
    const event: RolloutEvent | undefined =
      transition.kind === 'halt'
        ? 'rollout.halted'
        : transition.kind === 'complete'
          ? 'rollout.completed'
          : undefined;
    const done = await db.transaction(async (tx) => {
      const updated = await tx
        .update(rollouts)
        .set(set)
        .where(
          and(
            eq(rollouts.id, rollout.id),
            eq(rollouts.state, rollout.state),
            eq(rollouts.currentStage, rollout.currentStage),
          ),
        )
        .returning({ id: rollouts.id });
      if (updated.length === 0) return false;
      await tx.insert(rolloutAudit).values({
        rolloutId: rollout.id,
        actor: 'system',
        action: transition.kind,
        at: now,
        details:
          transition.kind === 'advance'
            ? {
                fromStage: rollout.currentStage,
                toStage: transition.toStage,
                percent: rollout.stages[transition.toStage]?.percent,
                ...(evidence ? { evidence } : {}),
                ...(rollout.approvedStage === rollout.currentStage ? { approved: true } : {}),
              }
            : transition.kind === 'halt'
              ? { reason: transition.reason, counters: outcomes, from: rollout.state }
              : { reason: transition.reason, ...(evidence ? { evidence } : {}) },
      });
      if (event && transition.kind !== 'advance') {
        await enqueueEvent(
          tx,
          options.webhooks,
          event,
          rollout.id,
          {
            ...payload,
            reason: transition.reason,
            state: transition.kind === 'halt' ? 'halted' : 'completed',
          },
          now,
        );
      }
      return true;
    });
    if (!done) continue;
    changed.push({ rolloutId: rollout.id, transition });
    if (transition.kind === 'halt') options.metrics?.rolloutEvents.inc({ event: 'halted' });
    if (transition.kind === 'complete') options.metrics?.rolloutEvents.inc({ event: 'completed' });
  }
  return changed;
}

async function stageEvidence(
  db: Database,
  rollout: typeof rollouts.$inferSelect,
  release: typeof releases.$inferSelect,
  now: Date,
  reuseMs: number,
): Promise<StageEvidence> {
  const key = `${rollout.id} ${rollout.currentStage}`;
  let memo = evidenceMemo.get(db);
  if (!memo) {
    memo = new Map();
    evidenceMemo.set(db, memo);
  }
  const kept = memo.get(key);
  if (kept && reuseMs > 0 && performance.now() - kept.at < reuseMs) return kept.evidence;
  const counts = await countMachines(
    db,
    {
      rolloutId: rollout.id,
      tier: rollout.tier,
      selector: rollout.selector,
      percent: rollout.stages[rollout.currentStage]?.percent ?? 0,
      release: { sha256: release.sha256, arch: release.arch },
    },
    now,
  );
  const evidence = { targeted: counts.targeted, answered: counts.answered, applied: counts.applied };
  if (memo.size > 1000) memo.clear();
  memo.set(key, { at: performance.now(), evidence });
  return evidence;
}

/** Notes (once per gate of a stage) what the stage waits on; answers whether this call wrote it. */
async function recordGate(
  db: Database,
  rollout: typeof rollouts.$inferSelect,
  gate: Gate,
  evidence: StageEvidence | undefined,
  now: Date,
): Promise<boolean> {
  return db.transaction(async (tx) => {
    const same: SQL =
      rollout.waitingGate === null
        ? isNull(rollouts.waitingGate)
        : eq(rollouts.waitingGate, rollout.waitingGate);
    const updated = await tx
      .update(rollouts)
      .set({ waitingGate: gate.kind })
      .where(
        and(
          eq(rollouts.id, rollout.id),
          eq(rollouts.state, 'active'),
          eq(rollouts.currentStage, rollout.currentStage),
          same,
        ),
      )
      .returning({ id: rollouts.id });
    if (updated.length === 0) return false;
    await tx.insert(rolloutAudit).values({
      rolloutId: rollout.id,
      actor: 'system',
      action: 'gate',
      at: now,
      details: {
        stage: rollout.currentStage,
        gate: gate.kind,
        reason: gate.reason,
        ...(evidence ? { evidence } : {}),
        ...(gate.kind === 'answers' ? { silenceTimeout: formatSeconds(rollout.silenceTimeoutSeconds) } : {}),
      },
    });
    return true;
  });
}
