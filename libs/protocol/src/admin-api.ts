import { z } from 'zod';
import { MachineFacts, ReportStatus } from './agent-api.ts';

/**
 * Request and response bodies of the admin API (the agent API is in agent-api.ts). The server
 * validates with them, and the console and clpctl read their answers through the inferred types,
 * so the three cannot drift apart.
 */

/** Roles of admin API tokens and users; `admin` may do everything. */
export const ADMIN_ROLES = ['admin', 'release', 'operator', 'viewer'] as const;
export type AdminRole = (typeof ADMIN_ROLES)[number];

export const Sha256Param = z.object({
  sha256: z.string().regex(/^[0-9a-f]{64}$/, 'a blob id: the 64 lowercase hex digits of a sha256'),
});
/** Any id in a path (kept for callers outside the route table; each route declares its own kind). */
export const IdParam = z.object({ id: z.string().min(1).max(128) });
/** The ids of each kind, as the server makes them: what a path parameter must look like. */
export const UUID_PATTERN = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
export const MACHINE_ID_PATTERN = /^[A-Za-z0-9-]{8,64}$/;
export const ReleaseIdParam = z.object({
  id: z.string().regex(/^[0-9a-f]{64}$/, 'a release id: the sha256 of its file, 64 lowercase hex digits'),
});
export const RolloutIdParam = z.object({
  id: z.string().regex(UUID_PATTERN, 'a rollout id (a lowercase UUID)'),
});
export const TokenIdParam = z.object({ id: z.string().regex(UUID_PATTERN, 'a token id (a lowercase UUID)') });
export const MachineIdParam = z.object({
  id: z.string().regex(MACHINE_ID_PATTERN, 'a machine id: 8 to 64 letters, digits and -'),
});
export const TierParam = z.object({
  id: z
    .string()
    .regex(/^[a-z0-9][a-z0-9-]{0,31}$/, 'a tier name: lowercase letters, digits and -, at most 32'),
});

const tierName = z.string().regex(/^[a-z0-9][a-z0-9-]{0,31}$/, 'lowercase letters, digits and -, at most 32');
const tag = z
  .string()
  .regex(/^[A-Za-z0-9][A-Za-z0-9._:=-]{0,63}$/, 'letters, digits and . _ : = -, at most 64');

export const Release = z.object({
  id: z.string(),
  sha256: z.string(),
  name: z.string(),
  series: z.string(),
  version: z.string(),
  arch: z.string(),
  size: z.number(),
  signerKeyId: z.string(),
  uploadedBy: z.string(),
  uploadedAt: z.string(),
  yanked: z.boolean(),
  yankedAt: z.string().nullable(),
  tiers: z.array(z.string()),
  meta: z.record(z.string(), z.unknown()),
});
export type Release = z.infer<typeof Release>;

/** One release with its archive's file entries (as checked at upload). */
export const ReleaseDetail = Release.extend({
  entries: z.array(z.object({ name: z.string(), size: z.number(), mode: z.number() })),
});
export type ReleaseDetail = z.infer<typeof ReleaseDetail>;

export const ReleaseList = z.object({ releases: z.array(Release), total: z.number() });
export type ReleaseList = z.infer<typeof ReleaseList>;
export const ReleaseListQuery = z.object({
  name: z.string().max(64).optional(),
  series: z.string().max(64).optional(),
  tier: z.string().max(64).optional(),
  yanked: z.enum(['true', 'false']).optional(),
  /** Part of the name, any case. */
  q: z.string().max(64).optional(),
  limit: z.coerce.number().int().min(1).max(1000).default(100),
  offset: z.coerce.number().int().min(0).default(0),
});
export const PromoteBody = z.object({ tier: tierName });
export const YankBody = z.object({ reason: z.string().max(500).optional() }).default({});

export const Tier = z.object({ name: z.string(), position: z.number(), description: z.string() });
export type Tier = z.infer<typeof Tier>;
export const TierList = z.object({ tiers: z.array(Tier) });
export type TierList = z.infer<typeof TierList>;
export const CreateTierBody = z.object({
  name: tierName,
  position: z.number().int().min(0).max(1000).optional(),
  description: z.string().max(500).default(''),
});
export const EditTierBody = z.object({
  position: z.number().int().min(0).max(1000).optional(),
  description: z.string().max(500).optional(),
});
export const ReorderTiersBody = z.object({ order: z.array(tierName).min(1).max(100) });

export const Selector = z.object({
  tags: z.array(tag).max(32).optional(),
  arch: z
    .array(z.enum(['x86_64', 'aarch64']))
    .max(2)
    .optional(),
  os: z.array(z.string().min(1).max(64)).max(32).optional(),
});
export type Selector = z.infer<typeof Selector>;
export const Stage = z.object({
  percent: z.number().gt(0).max(100),
  minDurationSeconds: z
    .number()
    .int()
    .min(0)
    .max(365 * 86_400),
  /** Gates for leaving the stage, beside its minimum time (not used by the last stage). */
  minAppliedPercent: z.number().gt(0).max(100).optional(),
  minAppliedCount: z.number().int().min(1).max(1_000_000).optional(),
  requireApproval: z.boolean().optional(),
});
export type Stage = z.infer<typeof Stage>;
export const FailureThreshold = z.object({
  maxFailureRate: z.number().gt(0).max(1),
  minReports: z.number().int().min(1).max(1_000_000),
  /** Halt after this many failed (or silent) machines, whatever the rate. */
  maxFailures: z.number().int().min(1).max(1_000_000).optional(),
});
export type FailureThreshold = z.infer<typeof FailureThreshold>;
export const CreateRolloutBody = z
  .object({
    releaseId: z.string().regex(/^[0-9a-f]{64}$/, 'a release id (sha256)'),
    tier: tierName,
    selector: Selector.default({}),
    stages: z.array(Stage).min(1).max(20),
    failureThreshold: FailureThreshold.default({ maxFailureRate: 0.05, minReports: 10 }),
    /** An offered machine silent this long counts as failed (default: twice the poll interval). */
    silenceTimeoutSeconds: z
      .number()
      .int()
      .min(60)
      .max(90 * 86_400)
      .optional(),
    /** The last stage completes when every targeted machine answered, or this long after it began. */
    completionWindowSeconds: z
      .number()
      .int()
      .min(0)
      .max(365 * 86_400)
      .default(3 * 86_400),
    /** The id a preview proposed (POST /v1/rollouts/preview): the rollout then reaches exactly the machines it showed. */
    id: z.string().uuid().optional(),
  })
  .refine((b) => b.stages.every((s, i) => i === 0 || s.percent >= b.stages[i - 1]!.percent), {
    message: 'stage percentages must not decrease',
    path: ['stages'],
  });
export type CreateRolloutBody = z.infer<typeof CreateRolloutBody>;
export const RolloutActionBody = z.object({ reason: z.string().max(500).optional() }).default({});
/** An approval says who (the token) and why. */
export const ApproveRolloutBody = z.object({ reason: z.string().min(1).max(500) });

/** Where each targeted machine stands (the machines the rollout's current stage reaches). */
export const RolloutMachineCounts = z.object({
  targeted: z.number(),
  /** Reported applied or failed, or had the release (installed or failed) before it was offered. */
  answered: z.number(),
  applied: z.number(),
  failed: z.number(),
  /** Offered, no outcome within the silence timeout: counted as failed for the threshold. */
  silent: z.number(),
  /** Said it waits for its maintenance window. */
  waitingForWindow: z.number(),
  notAnswered: z.number(),
});
export type RolloutMachineCounts = z.infer<typeof RolloutMachineCounts>;

/** What the current stage waits on before it may end, when not only time. */
export const RolloutGate = z.object({
  kind: z.enum(['time', 'applied', 'approval', 'answers']),
  reason: z.string(),
});
export type RolloutGate = z.infer<typeof RolloutGate>;

export const RolloutProgressView = z.object({
  id: z.string(),
  releaseId: z.string(),
  releaseName: z.string(),
  tier: z.string(),
  selector: Selector,
  stages: z.array(Stage),
  currentStage: z.number(),
  stageStartedAt: z.string(),
  nextStageAt: z.string().nullable(),
  percent: z.number(),
  state: z.string(),
  haltReason: z.string().nullable(),
  failureThreshold: FailureThreshold,
  silenceTimeoutSeconds: z.number(),
  completionWindowSeconds: z.number(),
  /** When the last stage completes at the latest (its start plus the completion window). */
  completesBy: z.string().nullable(),
  /** The stage whose leaving an operator approved. */
  approvedStage: z.number().nullable(),
  /** What the current stage waits on (shown while active). */
  gate: RolloutGate.nullable(),
  /** Per targeted machine (in `rollout show`; null in lists). */
  machines: RolloutMachineCounts.nullable(),
  counters: z.object({
    applied: z.number(),
    failed: z.number(),
    /** Offered machines with no outcome within the silence timeout (counted as failed). */
    silent: z.number(),
    reverted: z.number(),
    revertFailed: z.number(),
  }),
  failureRate: z.number(),
  createdBy: z.string(),
  createdAt: z.string(),
  updatedAt: z.string(),
});
export type RolloutProgressView = z.infer<typeof RolloutProgressView>;
/** The answer of retry-failed: the rollout, and how many machines are offered the release again. */
export const RetryFailedResult = RolloutProgressView.extend({ retried: z.number() });
export type RetryFailedResult = z.infer<typeof RetryFailedResult>;
export const RolloutList = z.object({ rollouts: z.array(RolloutProgressView), total: z.number() });
export type RolloutList = z.infer<typeof RolloutList>;
/** The states of a rollout (the database keeps the same list). */
export const ROLLOUT_STATES = ['active', 'paused', 'halted', 'aborted', 'completed', 'reverted'] as const;
const STATE_LIST = new RegExp(`^(${ROLLOUT_STATES.join('|')})(,(${ROLLOUT_STATES.join('|')}))*$`);
export const RolloutListQuery = z.object({
  /** One state, or several separated by commas (active,paused,halted). */
  state: z
    .string()
    .max(200)
    .regex(STATE_LIST, `each state must be one of ${ROLLOUT_STATES.join(', ')} (several separated by commas)`)
    .optional(),
  tier: z.string().max(64).optional(),
  releaseId: z.string().max(64).optional(),
  limit: z.coerce.number().int().min(1).max(1000).default(100),
  offset: z.coerce.number().int().min(0).default(0),
});
export const AuditEntry = z.object({
  id: z.number(),
  actor: z.string(),
  action: z.string(),
  at: z.string(),
  details: z.record(z.string(), z.unknown()),
});
export type AuditEntry = z.infer<typeof AuditEntry>;
export const AuditList = z.object({ entries: z.array(AuditEntry) });

export type AuditList = z.infer<typeof AuditList>;
export const CreateEnrollmentTokenBody = z.object({
  tier: tierName,
  tags: z.array(tag).max(32).default([]),
  expiresInSeconds: z
    .number()
    .int()
    .min(60)
    .max(365 * 86_400)
    .default(7 * 86_400),
  uses: z.number().int().min(1).max(1_000_000).default(1),
});
export const EnrollmentToken = z.object({
  id: z.string(),
  tier: z.string(),
  tags: z.array(z.string()),
  expiresAt: z.string(),
  usesLeft: z.number(),
  createdBy: z.string(),
  createdAt: z.string(),
  revoked: z.boolean(),
});
export type EnrollmentToken = z.infer<typeof EnrollmentToken>;
export const CreatedEnrollmentToken = EnrollmentToken.extend({
  /** The secret, shown only in this answer. */
  token: z.string(),
});
export type CreatedEnrollmentToken = z.infer<typeof CreatedEnrollmentToken>;
export const EnrollmentTokenList = z.object({ tokens: z.array(EnrollmentToken), total: z.number() });

export type EnrollmentTokenList = z.infer<typeof EnrollmentTokenList>;
export const CreateAdminTokenBody = z.object({
  name: z.string().min(1).max(100),
  role: z.enum(ADMIN_ROLES),
  expiresInSeconds: z
    .number()
    .int()
    .min(60)
    .max(5 * 365 * 86_400)
    .optional(),
});
export const AdminToken = z.object({
  id: z.string(),
  name: z.string(),
  role: z.string(),
  createdAt: z.string(),
  expiresAt: z.string().nullable(),
  revoked: z.boolean(),
});
export type AdminToken = z.infer<typeof AdminToken>;
export const CreatedAdminToken = AdminToken.extend({ token: z.string() });
export type CreatedAdminToken = z.infer<typeof CreatedAdminToken>;
export const AdminTokenList = z.object({ tokens: z.array(AdminToken), total: z.number() });
/** Paging of the token lists, newest first. */
export const TokenListQuery = z.object({
  limit: z.coerce.number().int().min(1).max(1000).default(100),
  offset: z.coerce.number().int().min(0).default(0),
});

export type AdminTokenList = z.infer<typeof AdminTokenList>;
export const Machine = z.object({
  id: z.string(),
  hostname: z.string(),
  arch: z.string(),
  os: z.object({ id: z.string(), version: z.string() }),
  agentVersion: z.string().nullable(),
  tier: z.string(),
  tags: z.array(z.string()),
  enrolledAt: z.string(),
  lastSeenAt: z.string().nullable(),
  installed: z.array(z.record(z.string(), z.unknown())),
  facts: z.record(z.string(), z.unknown()),
  /** A revoked machine's credential no longer works; it enrolls again only after a re-key. */
  revoked: z.boolean(),
  /** Until then one enrollment may take this id without the old credential (an operator's re-key). */
  rekeyUntil: z.string().nullable(),
});
export type Machine = z.infer<typeof Machine>;
export const RekeyMachineBody = z
  .object({
    /** How long the machine has to enroll again (default one day). */
    expiresInSeconds: z
      .number()
      .int()
      .min(60)
      .max(30 * 86_400)
      .default(86_400),
    reason: z.string().max(500).optional(),
  })
  .default({ expiresInSeconds: 86_400 });
export const MachineList = z.object({ machines: z.array(Machine), total: z.number() });
export type MachineList = z.infer<typeof MachineList>;
export const MachineListQuery = z.object({
  tier: z.string().max(64).optional(),
  tag: z.string().max(64).optional(),
  arch: MachineFacts.shape.arch.optional(),
  os: z.string().max(64).optional(),
  hostname: z.string().max(253).optional(),
  /** Machines with this release (sha256 or release id) installed. */
  installed: z.string().max(64).optional(),
  /** Machines where this release (sha256 or release id) failed and was rolled back. */
  failed: z.string().max(64).optional(),
  /** Part of the host name or the machine id, any case. */
  q: z.string().max(253).optional(),
  /** day: seen in the last 24 hours; week: in the last 7 days; stale: not for 7 days (or never); never. */
  seen: z.enum(['day', 'week', 'stale', 'never']).optional(),
  revoked: z.enum(['true', 'false']).optional(),
  sort: z.enum(['hostname', 'lastSeen', 'enrolled']).default('hostname'),
  limit: z.coerce.number().int().min(1).max(1000).default(100),
  offset: z.coerce.number().int().min(0).max(1_000_000_000).default(0),
});
export const ExplainQuery = z.object({
  release: z.string().regex(/^[0-9a-f]{64}$/, 'a release id (sha256)'),
  /** The machine's cut-off setting (the agent applies it): none, 7d, or a date; the server checks it further. */
  cutoff: z.string().max(40).optional(),
});
export const Explanation = z.object({
  machineId: z.string(),
  releaseId: z.string(),
  releaseName: z.string(),
  yanked: z.boolean(),
  installed: z.enum(['installed', 'failed', 'no']),
  /** held: the server offers it, but the machine's cut-off (query `cutoff`) keeps it back for now. */
  verdict: z.enum(['offered', 'held', 'revert', 'not-offered']),
  summary: z.string(),
  releasedAt: z.string(),
  /** The machine's answer to each rollout that offered it the release. */
  offers: z.array(
    z.object({
      rolloutId: z.string(),
      offeredAt: z.string(),
      outcome: z.enum(['applied', 'failed', 'silent', 'waiting-for-window', 'retry', 'pending']),
      reason: z.string(),
    }),
  ),
  /** The maintenance window the machine applies in, if one is set for its tier or tags. */
  maintenanceWindow: z.string().nullable(),
  cutoff: z
    .object({
      setting: z.string(),
      held: z.boolean(),
      appliesFrom: z.string().nullable(),
      reason: z.string(),
    })
    .nullable(),
  rollouts: z.array(
    z.object({
      rolloutId: z.string(),
      state: z.string(),
      tier: z.string(),
      outcome: z.string(),
      rule: z.string(),
      reason: z.string(),
      bucket: z.number().optional(),
      percent: z.number().optional(),
    }),
  ),
});

export type Explanation = z.infer<typeof Explanation>;
export const Report = z.object({
  id: z.string(),
  machineId: z.string(),
  releaseId: z.string().nullable(),
  rolloutId: z.string().nullable(),
  name: z.string(),
  sha256: z.string().nullable(),
  status: z.string(),
  errorCode: z.string().nullable(),
  log: z.string().nullable(),
  at: z.string(),
  receivedAt: z.string(),
  /** The machine's host name, in lists (null once the machine is gone). */
  hostname: z.string().nullable().optional(),
});
export type Report = z.infer<typeof Report>;
export const ReportList = z.object({ reports: z.array(Report), total: z.number() });
export type ReportList = z.infer<typeof ReportList>;
/** One machine as GET /v1/machines/:id shows it: the record and its latest reports, newest first. */
export const MachineDetail = Machine.extend({ recentReports: z.array(Report) });
export type MachineDetail = z.infer<typeof MachineDetail>;
export const ReportListQuery = z.object({
  rollout: z.string().max(64).optional(),
  machine: z.string().max(64).optional(),
  status: ReportStatus.optional(),
  limit: z.coerce.number().int().min(1).max(1000).default(100),
  offset: z.coerce.number().int().min(0).default(0),
});

export const Health = z.object({ status: z.string(), database: z.string().optional() });

export type Health = z.infer<typeof Health>;

export const MaintenanceWindowEntry = z.object({
  kind: z.enum(['tier', 'tag']),
  name: z.string(),
  window: z.string(),
  updatedBy: z.string(),
  updatedAt: z.string(),
});
export type MaintenanceWindowEntry = z.infer<typeof MaintenanceWindowEntry>;
export const MaintenanceWindowList = z.object({ windows: z.array(MaintenanceWindowEntry) });
export type MaintenanceWindowList = z.infer<typeof MaintenanceWindowList>;
export const SetMaintenanceWindowBody = z.object({
  kind: z.enum(['tier', 'tag']),
  name: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._:=-]{0,63}$/, 'a tier or tag name'),
  window: z.string().min(1).max(100),
});
export const MaintenanceWindowParams = z.object({
  kind: z.enum(['tier', 'tag']),
  // Tier names and tags both fit the tag's pattern.
  name: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._:=-]{0,63}$/, 'a tier name or a tag'),
});
