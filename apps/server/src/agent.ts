import { randomUUID } from 'node:crypto';
import { enrollmentTokens, machines, reports, rolloutCounters } from '@clp/db';
import type {
  EnrollRequest,
  EnrollResponse,
  PollRequest,
  PollResponse,
  ReportBatch,
  ReportBatchResponse,
} from '@clp/protocol';
import { and, eq, gt, isNull, sql } from 'drizzle-orm';
import type { AgentMachine, AppContext } from './context.ts';
import { ServerError } from './errors.ts';
import { desiredState } from './poll.ts';
import { hashSecret, newSecret } from './secrets.ts';

/**
 * Enrolls a machine with an enrollment token (one use is spent atomically). A machine that
 * enrolls again under the same id gets a new credential; the old one stops working.
 */
export async function enroll(ctx: AppContext, body: EnrollRequest): Promise<EnrollResponse> {
  const now = ctx.clock.now();
  const credential = newSecret('clp_mch');
  const machineId = body.machineId ?? randomUUID();
  const result = await ctx.db.transaction(async (tx) => {
    const [token] = await tx
      .update(enrollmentTokens)
      .set({ usesLeft: sql`${enrollmentTokens.usesLeft} - 1` })
      .where(
        and(
          eq(enrollmentTokens.tokenHash, hashSecret(body.token)),
          gt(enrollmentTokens.usesLeft, 0),
          isNull(enrollmentTokens.revokedAt),
          gt(enrollmentTokens.expiresAt, now),
        ),
      )
      .returning();
    if (!token) return undefined;
    const [before] = await tx.select({ id: machines.id }).from(machines).where(eq(machines.id, machineId));
    const tags = [...new Set([...token.tags, ...body.tags])].sort();
    const values = {
      credentialHash: hashSecret(credential),
      hostname: body.facts.hostname,
      arch: body.facts.arch,
      osId: body.facts.os.id,
      osVersion: body.facts.os.version,
      facts: body.facts as unknown as Record<string, unknown>,
      tier: token.tier,
      tags,
      enrolledAt: now,
      revokedAt: null,
    };
    await tx
      .insert(machines)
      .values({ id: machineId, ...values })
      .onConflictDoUpdate({ target: machines.id, set: values });
    return { tier: token.tier, tags, again: before !== undefined };
  });
  if (!result) {
    throw new ServerError(
      'CLP_E_ENROLLMENT_TOKEN',
      'the enrollment token is unknown, expired, revoked or used up; ask an operator for a new one (POST /v1/enrollment-tokens)',
    );
  }
  // The old credential of a machine enrolling again must stop working now, not when its cache entry ends.
  if (result.again) ctx.machineAuth.clear();
  ctx.log.info({ machine: machineId, tier: result.tier, again: result.again }, 'machine enrolled');
  return { machineId, credential, tier: result.tier, tags: result.tags };
}

/** "What should I have now?" for one machine: no query beyond its authentication (rollouts are cached). */
export async function poll(ctx: AppContext, machine: AgentMachine, body: PollRequest): Promise<PollResponse> {
  const now = ctx.clock.now();
  ctx.seen.record(machine.id, {
    at: now,
    installed: body.installed,
    facts: body.facts as unknown as Record<string, unknown>,
  });
  const views = await ctx.rollouts.forTier(machine.tier);
  const { apply, revert } = desiredState(
    { id: machine.id, tier: machine.tier, tags: machine.tags, arch: body.facts.arch, osId: body.facts.os.id },
    body.installed,
    views,
  );
  ctx.metrics.polls.inc({ result: apply.length + revert.length > 0 ? 'offer' : 'idle' });
  return {
    machineId: machine.id,
    serverTime: now.toISOString(),
    apply,
    revert,
    nextPollSeconds: ctx.config.nextPollSeconds,
  };
}

/** PostgreSQL's deadlock and serialization failures: the transaction may simply run again. */
const RETRYABLE = new Set(['40P01', '40001']);

function sqlState(error: unknown): string | undefined {
  for (let e = error as { code?: unknown; cause?: unknown } | undefined, i = 0; e && i < 4; i++) {
    if (typeof e.code === 'string' && /^[0-9A-Z]{5}$/.test(e.code)) return e.code;
    e = e.cause as typeof e;
  }
  return undefined;
}

async function retryOnConflict<T>(run: () => Promise<T>, attempts = 5): Promise<T> {
  for (let i = 1; ; i++) {
    try {
      return await run();
    } catch (error) {
      const state = sqlState(error);
      if (i >= attempts || !state || !RETRYABLE.has(state)) throw error;
      await new Promise((r) => setTimeout(r, Math.random() * 20 * i));
    }
  }
}

const COUNTED = {
  applied: 'applied',
  failed: 'failed',
  reverted: 'reverted',
  'revert-failed': 'revertFailed',
} as const;

/**
 * Stores a batch of reports; a report id seen before is a duplicate and changes nothing, so
 * agents may resend their spool freely. Rollout counters move in the same transaction.
 */
export async function ingestReports(
  ctx: AppContext,
  machine: AgentMachine,
  batch: ReportBatch,
): Promise<ReportBatchResponse> {
  const receivedAt = ctx.clock.now();
  const unique = new Map(batch.reports.map((r) => [r.id.toLowerCase(), r]));
  // Rows and counters are written in a fixed order (ids sorted) so that concurrent batches that
  // share reports or rollouts wait for each other instead of deadlocking.
  const rows = [...unique.entries()]
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([id, r]) => ({
      id,
      machineId: machine.id,
      releaseId: r.releaseId ?? null,
      rolloutId: r.rolloutId ?? null,
      name: r.name,
      sha256: r.sha256 ?? null,
      status: r.status,
      errorCode: r.errorCode ?? null,
      log: r.log ?? null,
      at: new Date(r.at),
      receivedAt,
    }));
  const accepted = await retryOnConflict(() =>
    ctx.db.transaction(async (tx) => {
      const inserted = await tx
        .insert(reports)
        .values(rows)
        .onConflictDoNothing()
        .returning({ id: reports.id });
      const ids = new Set(inserted.map((r) => r.id));
      const deltas = new Map<string, Record<'applied' | 'failed' | 'reverted' | 'revertFailed', number>>();
      for (const row of rows) {
        if (!ids.has(row.id) || !row.rolloutId) continue;
        const column = COUNTED[row.status as keyof typeof COUNTED];
        if (!column) continue;
        const d = deltas.get(row.rolloutId) ?? { applied: 0, failed: 0, reverted: 0, revertFailed: 0 };
        d[column]++;
        deltas.set(row.rolloutId, d);
      }
      for (const [rolloutId, d] of [...deltas].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
        await tx
          .update(rolloutCounters)
          .set({
            applied: sql`${rolloutCounters.applied} + ${d.applied}`,
            failed: sql`${rolloutCounters.failed} + ${d.failed}`,
            reverted: sql`${rolloutCounters.reverted} + ${d.reverted}`,
            revertFailed: sql`${rolloutCounters.revertFailed} + ${d.revertFailed}`,
          })
          .where(eq(rolloutCounters.rolloutId, rolloutId));
      }
      return ids;
    }),
  );
  const response: ReportBatchResponse = { accepted: [], duplicates: [] };
  for (const r of batch.reports) {
    const id = r.id.toLowerCase();
    if (accepted.has(id)) {
      response.accepted.push(r.id);
      accepted.delete(id);
      ctx.metrics.reports.inc({ status: r.status, outcome: 'accepted' });
    } else {
      response.duplicates.push(r.id);
      ctx.metrics.reports.inc({ status: r.status, outcome: 'duplicate' });
    }
  }
  // A new failure may halt a rollout: let the next poll re-check health at once. Successes need
  // no reload (the cache lives at most a second), which keeps heavy report traffic off the polls.
  const failures = batch.reports.some(
    (r) => (r.status === 'failed' || r.status === 'revert-failed') && response.accepted.includes(r.id),
  );
  if (failures) ctx.rollouts.invalidate();
  return response;
}
