import { sql } from 'drizzle-orm';
import {
  bigint,
  bigserial,
  customType,
  doublePrecision,
  index,
  integer,
  jsonb,
  pgTable,
  primaryKey,
  text,
  timestamp,
  uniqueIndex,
} from 'drizzle-orm/pg-core';

const ts = (name: string) => timestamp(name, { withTimezone: true, mode: 'date' });

/** Roles of admin API tokens; `admin` may do everything. */
export const ADMIN_ROLES = ['admin', 'release', 'operator', 'viewer'] as const;
export type AdminRole = (typeof ADMIN_ROLES)[number];

export const ROLLOUT_STATES = ['active', 'paused', 'halted', 'aborted', 'completed', 'reverted'] as const;
export type RolloutState = (typeof ROLLOUT_STATES)[number];

export interface RolloutSelector {
  tags?: string[];
  arch?: string[];
  os?: string[];
}

export interface RolloutStage {
  percent: number;
  minDurationSeconds: number;
  /** Leave the stage only once this share (%) of its cohort reported `applied`. */
  minAppliedPercent?: number;
  /** Leave the stage only once this many machines of its cohort reported `applied`. */
  minAppliedCount?: number;
  /** Leave the stage only after an operator's approval (`rollout approve`). */
  requireApproval?: boolean;
}

export interface InstalledPatchRecord {
  name: string;
  sha256: string;
  series?: string;
  state: 'installed' | 'failed';
}

export interface ReleaseEntry {
  name: string;
  size: number;
  mode: number;
}

/** Admin API tokens. Only the sha256 of the secret is stored. */
export const adminTokens = pgTable('admin_tokens', {
  id: text('id').primaryKey(),
  name: text('name').notNull(),
  tokenHash: text('token_hash').notNull().unique(),
  role: text('role').$type<AdminRole>().notNull(),
  createdAt: ts('created_at').notNull().defaultNow(),
  expiresAt: ts('expires_at'),
  revokedAt: ts('revoked_at'),
});

/**
 * Uploaded releases, content-addressed: the id is the sha256 of the .clp file. A patch name
 * (which carries its version and revision) names one file only: a changed file needs a new
 * revision, so the name is unique here, not merely checked by the upload handler.
 */
export const releases = pgTable(
  'releases',
  {
    id: text('id').primaryKey(),
    sha256: text('sha256').notNull().unique(),
    name: text('name').notNull(),
    series: text('series').notNull(),
    version: text('version').notNull(),
    arch: text('arch').notNull(),
    meta: jsonb('meta').$type<Record<string, unknown>>().notNull(),
    signerKeyId: text('signer_key_id').notNull(),
    size: bigint('size', { mode: 'number' }).notNull(),
    uploadedBy: text('uploaded_by').notNull(),
    uploadedAt: ts('uploaded_at').notNull().defaultNow(),
    yankedAt: ts('yanked_at'),
    yankedBy: text('yanked_by'),
    /** The archive's file entries as checked at upload (empty for releases stored before they were kept). */
    entries: jsonb('entries').$type<ReleaseEntry[]>().notNull().default([]),
  },
  (t) => [uniqueIndex('releases_name_unique').on(t.name), index('releases_series_idx').on(t.series)],
);

/** Release channels, ordered (edge → beta → stable by default) and editable. */
export const tiers = pgTable('tiers', {
  name: text('name').primaryKey(),
  position: integer('position').notNull(),
  description: text('description').notNull().default(''),
  createdAt: ts('created_at').notNull().defaultNow(),
});

/** Which release has been promoted to which tier. */
export const promotions = pgTable(
  'promotions',
  {
    releaseId: text('release_id')
      .notNull()
      .references(() => releases.id),
    tier: text('tier')
      .notNull()
      .references(() => tiers.name, { onUpdate: 'cascade' }),
    promotedBy: text('promoted_by').notNull(),
    promotedAt: ts('promoted_at').notNull().defaultNow(),
  },
  (t) => [primaryKey({ columns: [t.releaseId, t.tier] })],
);

export const rollouts = pgTable(
  'rollouts',
  {
    id: text('id').primaryKey(),
    releaseId: text('release_id')
      .notNull()
      .references(() => releases.id),
    tier: text('tier')
      .notNull()
      .references(() => tiers.name, { onUpdate: 'cascade' }),
    selector: jsonb('selector').$type<RolloutSelector>().notNull().default({}),
    stages: jsonb('stages').$type<RolloutStage[]>().notNull(),
    currentStage: integer('current_stage').notNull().default(0),
    stageStartedAt: ts('stage_started_at').notNull(),
    state: text('state').$type<RolloutState>().notNull(),
    maxFailureRate: doublePrecision('max_failure_rate').notNull(),
    minReports: integer('min_reports').notNull(),
    /** Halt after this many failures (silent machines included), whatever the rate. */
    maxFailures: integer('max_failures'),
    /** An offered machine that has not reported after this long counts as failed. */
    silenceTimeoutSeconds: integer('silence_timeout_seconds').notNull().default(172_800),
    /** The last stage completes when every targeted machine answered, or after this long. */
    completionWindowSeconds: integer('completion_window_seconds').notNull().default(259_200),
    /** The stage an operator approved leaving (`rollout approve`). */
    approvedStage: integer('approved_stage'),
    /** The gate the current stage waits on (audited once when it starts waiting). */
    waitingGate: text('waiting_gate'),
    /** When the failure-rate warning (half the threshold) went out, once per rollout. */
    warnedAt: ts('warned_at'),
    /** Why the rollout halted by itself, when it did. */
    haltReason: text('halt_reason'),
    createdBy: text('created_by').notNull(),
    createdAt: ts('created_at').notNull(),
    updatedAt: ts('updated_at').notNull(),
  },
  (t) => [
    index('rollouts_state_tier_idx').on(t.state, t.tier),
    index('rollouts_release_idx').on(t.releaseId),
  ],
);

/** Outcome counters per rollout, bumped when reports arrive so that health needs no fleet scan. */
export const rolloutCounters = pgTable('rollout_counters', {
  rolloutId: text('rollout_id')
    .primaryKey()
    .references(() => rollouts.id),
  applied: integer('applied').notNull().default(0),
  failed: integer('failed').notNull().default(0),
  reverted: integer('reverted').notNull().default(0),
  revertFailed: integer('revert_failed').notNull().default(0),
});

/** The outcome of applying a release on one machine, and of reverting it. */
export type ApplyOutcome = 'applied' | 'failed';
export type RevertOutcome = 'reverted' | 'revert-failed';

/**
 * Each machine a rollout offered its release to, and that machine's latest outcome for it (by the
 * agent's report time): one vote per machine, a retry that succeeds replacing its failure. The
 * rollout's counters are the sums of these rows, and its halt decision reads them. A row is
 * written when a poll offers the release (in batches), or when a machine in the rollout's reached
 * cohort reports before that batch landed. A machine that was never offered has no row, and its
 * reports, though stored, count for nothing.
 */
export const rolloutMachines = pgTable(
  'rollout_machines',
  {
    rolloutId: text('rollout_id')
      .notNull()
      .references(() => rollouts.id),
    machineId: text('machine_id').notNull(),
    /** When the rollout first offered the release to the machine (its first poll that got it). */
    offeredAt: ts('offered_at').notNull(),
    applyOutcome: text('apply_outcome').$type<ApplyOutcome>(),
    /** The agent's time of the report that gave applyOutcome. */
    applyAt: ts('apply_at'),
    applyReportId: text('apply_report_id'),
    revertOutcome: text('revert_outcome').$type<RevertOutcome>(),
    revertAt: ts('revert_at'),
    revertReportId: text('revert_report_id'),
    /** The machine said it waits for its maintenance window until then: not silent meanwhile. */
    waitingUntil: ts('waiting_until'),
    /** When the rollout counted the machine silent (no outcome within its timeout). */
    silentAt: ts('silent_at'),
    /** An operator's retry-failed offered the release again; cleared by the machine's next outcome. */
    retryAt: ts('retry_at'),
  },
  (t) => [
    primaryKey({ columns: [t.rolloutId, t.machineId] }),
    // The machines still owing an answer: what the silence check reads on every tick.
    index('rollout_machines_unanswered_idx').on(t.rolloutId, t.offeredAt).where(sql`apply_outcome is null`),
    // Each reload of the rollout cache counts the silent machines and finds those retried (bar P9).
    index('rollout_machines_silent_idx')
      .on(t.rolloutId)
      .where(sql`apply_outcome is null and silent_at is not null`),
    index('rollout_machines_retry_idx')
      .on(t.rolloutId)
      .where(sql`apply_outcome is null and retry_at is not null`),
    // Where each machine of a rollout stands, read from the index alone (a rollout's page counts them).
    index('rollout_machines_outcome_idx').on(
      t.rolloutId,
      t.machineId,
      t.applyOutcome,
      t.silentAt,
      t.waitingUntil,
      t.retryAt,
    ),
  ],
);

/** Maintenance windows by tier or tag: a machine applies only inside its window. */
export const maintenanceWindows = pgTable('maintenance_windows', {
  /** `tier:NAME` or `tag:NAME`. */
  target: text('target').primaryKey(),
  kind: text('kind').$type<'tier' | 'tag'>().notNull(),
  name: text('name').notNull(),
  /** e.g. `Sat 02:00-04:00 Europe/Paris` (see libs/protocol maintenance-window.ts). */
  spec: text('spec').notNull(),
  updatedBy: text('updated_by').notNull(),
  updatedAt: ts('updated_at').notNull(),
});

/**
 * Webhook deliveries, written in the transaction of the rollout change they announce (an
 * outbox): a delivery survives a restart and is sent by whichever server process claims it.
 */
export const webhookDeliveries = pgTable(
  'webhook_deliveries',
  {
    id: bigserial('id', { mode: 'number' }).primaryKey(),
    event: text('event').notNull(),
    rolloutId: text('rollout_id').notNull(),
    url: text('url').notNull(),
    payload: jsonb('payload').$type<Record<string, unknown>>().notNull(),
    attempts: integer('attempts').notNull().default(0),
    nextAt: ts('next_at').notNull(),
    deliveredAt: ts('delivered_at'),
    /** Set when the delivery gave up after its last attempt. */
    abandonedAt: ts('abandoned_at'),
    lastError: text('last_error'),
    createdAt: ts('created_at').notNull(),
  },
  (t) => [
    index('webhook_deliveries_due_idx')
      .on(t.nextAt)
      .where(sql`delivered_at is null and abandoned_at is null`),
  ],
);

export const rolloutAudit = pgTable(
  'rollout_audit',
  {
    id: bigserial('id', { mode: 'number' }).primaryKey(),
    rolloutId: text('rollout_id')
      .notNull()
      .references(() => rollouts.id),
    actor: text('actor').notNull(),
    action: text('action').notNull(),
    at: ts('at').notNull(),
    details: jsonb('details').$type<Record<string, unknown>>().notNull().default({}),
  },
  (t) => [index('rollout_audit_rollout_idx').on(t.rolloutId, t.id)],
);

/** One-time (or n-time) tokens with which a machine enrolls. Only the sha256 is stored. */
export const enrollmentTokens = pgTable('enrollment_tokens', {
  id: text('id').primaryKey(),
  tokenHash: text('token_hash').notNull().unique(),
  tier: text('tier')
    .notNull()
    .references(() => tiers.name, { onUpdate: 'cascade' }),
  tags: jsonb('tags').$type<string[]>().notNull().default([]),
  expiresAt: ts('expires_at').notNull(),
  usesLeft: integer('uses_left').notNull(),
  createdBy: text('created_by').notNull(),
  createdAt: ts('created_at').notNull(),
  revokedAt: ts('revoked_at'),
});

export const machines = pgTable(
  'machines',
  {
    id: text('id').primaryKey(),
    credentialHash: text('credential_hash').notNull().unique(),
    hostname: text('hostname').notNull(),
    arch: text('arch').notNull(),
    osId: text('os_id').notNull(),
    osVersion: text('os_version').notNull().default(''),
    facts: jsonb('facts').$type<Record<string, unknown>>().notNull(),
    tier: text('tier')
      .notNull()
      .references(() => tiers.name, { onUpdate: 'cascade' }),
    tags: jsonb('tags').$type<string[]>().notNull().default([]),
    enrolledAt: ts('enrolled_at').notNull(),
    lastSeenAt: ts('last_seen_at'),
    installed: jsonb('installed').$type<InstalledPatchRecord[]>().notNull().default([]),
    revokedAt: ts('revoked_at'),
    /**
     * Set by an operator's re-key: until then, one enrollment under this id may take it without
     * the old credential (a reinstalled machine). Otherwise an enrolled id answers 409.
     */
    rekeyUntil: ts('rekey_until'),
  },
  (t) => [
    // The machines list: a tier's machines by host name, paged without sorting the tier.
    index('machines_tier_hostname_idx').on(t.tier, t.hostname, t.id),
    index('machines_hostname_idx').on(t.hostname),
    // The list's search is a substring of the host name or id (ilike '%q%'): trigrams find it without a scan.
    index('machines_hostname_trgm_idx').using('gin', t.hostname.op('gin_trgm_ops')),
    index('machines_id_trgm_idx').using('gin', t.id.op('gin_trgm_ops')),
    // A rollout's targeted machines (rollout-evidence.ts) from the index alone, without the wide
    // rows; the columns after the unique id only carry what the count reads (Drizzle has no INCLUDE).
    index('machines_tier_cohort_idx').on(t.tier, t.id, t.revokedAt, t.arch, t.osId, t.tags),
  ],
);

/** Agent reports. The id is the agent's UUID, so a report sent twice is stored once. */
export const reports = pgTable(
  'reports',
  {
    id: text('id').primaryKey(),
    machineId: text('machine_id').notNull(),
    releaseId: text('release_id'),
    rolloutId: text('rollout_id'),
    name: text('name').notNull(),
    sha256: text('sha256'),
    status: text('status').notNull(),
    errorCode: text('error_code'),
    log: text('log'),
    at: ts('at').notNull(),
    receivedAt: ts('received_at').notNull(),
    /** With `scheduled`: when the maintenance window the machine waits for closes. */
    scheduledFor: ts('scheduled_for'),
  },
  (t) => [
    index('reports_rollout_idx').on(t.rolloutId, t.receivedAt),
    index('reports_machine_idx').on(t.machineId, t.receivedAt),
  ],
);

const bytea = customType<{ data: Buffer; driverData: Buffer }>({ dataType: () => 'bytea' });

/** Release files kept in the database (CLP_BLOB_STORE=postgres), so that every host reaches them. */
export const blobs = pgTable('blobs', {
  sha256: text('sha256').primaryKey(),
  size: bigint('size', { mode: 'number' }).notNull(),
  chunkSize: integer('chunk_size').notNull(),
  storedAt: ts('stored_at').notNull().defaultNow(),
});

/** A blob's bytes in fixed-size pieces: reads fetch only the pieces a Range needs. */
export const blobChunks = pgTable(
  'blob_chunks',
  {
    sha256: text('sha256')
      .notNull()
      .references(() => blobs.sha256, { onDelete: 'cascade' }),
    index: integer('index').notNull(),
    data: bytea('data').notNull(),
  },
  (t) => [primaryKey({ columns: [t.sha256, t.index] })],
);

/** People who sign in to the console: a name, a role, and a scrypt hash of their password. */
export const users = pgTable('users', {
  id: text('id').primaryKey(),
  username: text('username').notNull().unique(),
  passwordHash: text('password_hash').notNull(),
  role: text('role').$type<AdminRole>().notNull(),
  createdBy: text('created_by').notNull(),
  createdAt: ts('created_at').notNull(),
  passwordChangedAt: ts('password_changed_at').notNull(),
  disabledAt: ts('disabled_at'),
});

/**
 * Console sessions, behind an HttpOnly cookie. A session speaks for a user or for the admin token
 * it was opened with; its role is read from that user or token at each request, so a changed role,
 * a disabled user or a revoked token takes effect at once. Only the sha256 of the secret is stored.
 */
export const sessions = pgTable(
  'sessions',
  {
    id: text('id').primaryKey(),
    tokenHash: text('token_hash').notNull().unique(),
    userId: text('user_id').references(() => users.id),
    adminTokenId: text('admin_token_id').references(() => adminTokens.id),
    createdAt: ts('created_at').notNull(),
    expiresAt: ts('expires_at').notNull(),
    endedAt: ts('ended_at'),
  },
  (t) => [index('sessions_user_idx').on(t.userId)],
);

export const schema = {
  adminTokens,
  users,
  sessions,
  releases,
  tiers,
  promotions,
  rollouts,
  rolloutCounters,
  rolloutMachines,
  rolloutAudit,
  enrollmentTokens,
  machines,
  reports,
  blobs,
  blobChunks,
  maintenanceWindows,
  webhookDeliveries,
};
