import { randomUUID } from 'node:crypto';
import { enrollmentTokens, machines } from '@clp/db';
import type {
  EnrollRequest,
  EnrollResponse,
  PollRequest,
  PollResponse,
  ReportBatch,
  ReportBatchResponse,
} from '@clp/protocol';
import { type MaintenanceWindow, windowOpening } from '@clp/protocol';
import { and, eq, gt, isNull, ne, sql } from 'drizzle-orm';
import type { AgentMachine, AppContext } from './context.ts';
import { ServerError } from './errors.ts';
import { changesInstalled } from './installed-from-reports.ts';
import { desiredState, windowFor } from './poll.ts';
import { hashSecret, newSecret } from './secrets.ts';

/** Thrown inside the enrollment transaction so that the token's use is given back. */
class IdTaken extends Error {
  /** The enrolled id, when it differs from the asked one only in case. */
  readonly enrolled: string | undefined;
  constructor(enrolled?: string) {
    super('machine id taken');
    this.enrolled = enrolled;
  }
}

/**
 * The enrolled id that differs from `machineId` only in case, if any: it would be a look-alike in
 * every list an operator reads (and in the commands they type). A unique index on lower(id)
 * (migration 0014) keeps two from being enrolled at once.
 */
async function caseAlike(
  tx: Pick<AppContext['db'], 'select'>,
  machineId: string,
): Promise<string | undefined> {
  const [alike] = await tx
    .select({ id: machines.id })
    .from(machines)
    .where(and(sql`lower(${machines.id}) = lower(${machineId})`, ne(machines.id, machineId)))
    .limit(1);
  return alike?.id;
}

/**
 * Enrolls a machine with an enrollment token (one use is spent atomically). An id that is
 * enrolled already is not taken over: enrolling under it again needs the machine's current
 * credential (the machine itself, e.g. moving to another tier) or an operator's re-key (a
 * reinstalled machine); otherwise 409, and the token's use is not spent. Either way the new
 * credential replaces the old one, which stops working at once.
 */
export async function enroll(ctx: AppContext, body: EnrollRequest): Promise<EnrollResponse> {
  const now = ctx.clock.now();
  const credential = newSecret('clp_mch');
  const machineId = body.machineId ?? randomUUID();
  let result:
    | { tier: string; tags: string[]; again: boolean; how: 'new' | 'credential' | 'rekey' }
    | undefined;
  try {
    result = await ctx.db.transaction(async (tx) => {
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
      // The token is checked first: without a valid one, nobody learns which ids are enrolled.
      if (!token) return undefined;
      const [before] = await tx
        .select({
          credentialHash: machines.credentialHash,
          revokedAt: machines.revokedAt,
          rekeyUntil: machines.rekeyUntil,
        })
        .from(machines)
        .where(eq(machines.id, machineId))
        .for('update');
      let how: 'new' | 'credential' | 'rekey' = 'new';
      if (!before) {
        const alike = await caseAlike(tx, machineId);
        if (alike) throw new IdTaken(alike);
      }
      if (before) {
        const proves =
          body.credential !== undefined &&
          before.revokedAt === null &&
          hashSecret(body.credential) === before.credentialHash;
        const rekeyed = before.rekeyUntil !== null && before.rekeyUntil.getTime() > now.getTime();
        if (!proves && !rekeyed) throw new IdTaken();
        how = proves ? 'credential' : 'rekey';
      }
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
        rekeyUntil: null,
      };
      if (how === 'new') {
        // No row to lock yet: another enrollment may be inserting this id right now. The one
        // whose insert lands first is let in; the others are refused like any taken id, instead
        // of replacing its credential unseen.
        const inserted = await tx
          .insert(machines)
          .values({ id: machineId, ...values })
          .onConflictDoNothing()
          .returning({ id: machines.id });
        if (inserted.length === 0) throw new IdTaken(await caseAlike(tx, machineId));
      } else {
        await tx.update(machines).set(values).where(eq(machines.id, machineId));
      }
      return { tier: token.tier, tags, again: before !== undefined, how };
    });
  } catch (error) {
    if (!(error instanceof IdTaken)) throw error;
    ctx.log.warn({ machine: machineId }, 'enrollment under an enrolled machine id refused');
    if (error.enrolled) {
      throw new ServerError(
        'CLP_E_CONFLICT',
        `machine id ${machineId} differs only in case from the enrolled machine ${error.enrolled}; machine ids are told apart regardless of case, so enroll under ${error.enrolled} (with its credential, or after 'clpctl admin machines rekey ${error.enrolled}') or under another id`,
        { field: 'body.machineId' },
      );
    }
    throw new ServerError(
      'CLP_E_CONFLICT',
      `machine id ${machineId} is enrolled already; a machine enrolls again under its id with its current credential (clpctl enroll --force does), or after an operator re-keys it (clpctl admin machines rekey ${machineId})`,
      { field: 'body.machineId' },
    );
  }
  if (!result) {
    throw new ServerError(
      'CLP_E_ENROLLMENT_TOKEN',
      "the enrollment token is unknown, expired, revoked or used up; ask an operator for a new one ('clpctl admin tokens create --tier TIER')",
    );
  }
  // The old credential of a machine enrolling again must stop working now, not when its cache entry ends.
  if (result.again) {
    ctx.machineAuth.clear();
    ctx.seen.forget(machineId);
  }
  ctx.log.info(
    { machine: machineId, tier: result.tier, again: result.again, proof: result.how },
    'machine enrolled',
  );
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
  const window = windowFor(machine, ctx.rollouts.windows());
  const { apply, revert } = desiredState(
    { id: machine.id, tier: machine.tier, tags: machine.tags, arch: body.facts.arch, osId: body.facts.os.id },
    body.installed,
    views,
  );
  // What this poll offers is what the machine's reports may count for (rollout-outcomes.ts).
  for (const offer of apply) if (offer.rolloutId) ctx.offers.record(offer.rolloutId, machine.id, now);
  ctx.metrics.polls.inc({ result: apply.length + revert.length > 0 ? 'offer' : 'idle' });
  return {
    machineId: machine.id,
    serverTime: now.toISOString(),
    apply,
    revert,
    nextPollSeconds: ctx.config.nextPollSeconds,
    maintenanceWindow: window ?? null,
  };
}

/**
 * Until when the server believes a machine that says it waits for its maintenance window: not at
 * all without a window for it (its tier's or a tag's), and at most until that window's next
 * closing. A machine could otherwise keep itself from counting as silent for as long as it says.
 */
function believedWait(
  claimed: string | undefined,
  window: MaintenanceWindow | undefined,
  receivedAt: Date,
): Date | null {
  if (!claimed || !window) return null;
  const closes = windowOpening(window, receivedAt).closesAt;
  return new Date(Math.min(new Date(claimed).getTime(), closes.getTime()));
}

/**
 * Stores a batch of reports (through the group-commit writer); a report id seen before is a
 * duplicate and changes nothing, so agents may resend their spool freely.
 */
export async function ingestReports(
  ctx: AppContext,
  machine: AgentMachine,
  batch: ReportBatch,
): Promise<ReportBatchResponse> {
  const receivedAt = ctx.clock.now();
  // The windows come with the rollouts' cache: a report that claims a wait brings it up to date.
  if (batch.reports.some((r) => r.status === 'scheduled')) await ctx.rollouts.forTier(machine.tier);
  const window = windowFor(machine, ctx.rollouts.windows());
  const unique = new Map(batch.reports.map((r) => [r.id.toLowerCase(), r]));
  const rows = [...unique.entries()].map(([id, r]) => ({
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
    scheduledFor: r.status === 'scheduled' ? believedWait(r.scheduledFor, window, receivedAt) : null,
  }));
  const accepted = await ctx.reportWriter.write(rows);
  // The machine's record changed under MachineSeen's memory: its next poll is written, not skipped.
  if (rows.some((r) => accepted.has(r.id) && changesInstalled(r))) ctx.seen.forget(machine.id);
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
  // A new failure may halt a rollout: decide now (the reload checks health), so that the halt
  // reaches every server process through the change announcement instead of waiting for a poll
  // or the stage tick. Successes need no reload, which keeps heavy report traffic off the polls.
  const failures = batch.reports.some(
    (r) => (r.status === 'failed' || r.status === 'revert-failed') && response.accepted.includes(r.id),
  );
  if (failures) {
    ctx.rollouts.invalidate();
    // The reports are stored; if the database fails now, the stage tick decides a moment later.
    await ctx.rollouts.refresh().catch(() => undefined);
  }
  return response;
}
