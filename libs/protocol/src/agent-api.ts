import { z } from 'zod';
import { MaintenanceWindow } from './maintenance-window.ts';

const sha256Hex = z.string().regex(/^[0-9a-f]{64}$/);

/** What an agent says about the machine it runs on. */
export const MachineFacts = z.object({
  hostname: z.string().min(1).max(253),
  /** os-release ID and VERSION_ID, e.g. vincent / 2025.11. */
  os: z.object({ id: z.string().min(1).max(64), version: z.string().max(64).default('') }),
  arch: z.enum(['x86_64', 'aarch64']),
  agentVersion: z.string().min(1).max(64),
});
export type MachineFacts = z.infer<typeof MachineFacts>;

export const EnrollRequest = z.object({
  token: z.string().min(1).max(200),
  facts: MachineFacts,
  /** A stable machine id (e.g. /etc/machine-id); the server makes one when absent. */
  machineId: z
    .string()
    .regex(/^[A-Za-z0-9-]{8,64}$/)
    .optional(),
  tags: z.array(z.string().min(1).max(64)).max(32).default([]),
  /**
   * The credential this machine holds now, when it enrolls again under its id: proof that it is
   * that machine. Without it (or an operator's re-key) an id already enrolled answers 409.
   */
  credential: z.string().min(1).max(512).optional(),
  /** Patches already installed when the machine enrolls (same shape as in the poll). */
  get installed() {
    return z.array(InstalledPatch).max(1000).optional();
  },
});
export type EnrollRequest = z.infer<typeof EnrollRequest>;

export const EnrollResponse = z.object({
  machineId: z.string(),
  /** The machine's own credential; sent as `Authorization: Bearer …` from now on. Shown once. */
  credential: z.string(),
  tier: z.string(),
  tags: z.array(z.string()),
});
export type EnrollResponse = z.infer<typeof EnrollResponse>;

export const InstalledPatch = z.object({
  name: z.string().min(1).max(64),
  sha256: sha256Hex,
  series: z.string().max(64).optional(),
  /** `failed`: rolled back by a failed health check; the agent will not retry it unasked. */
  state: z.enum(['installed', 'failed']),
});
export type InstalledPatch = z.infer<typeof InstalledPatch>;

export const PollRequest = z.object({
  facts: MachineFacts,
  installed: z.array(InstalledPatch).max(1000).default([]),
});
export type PollRequest = z.infer<typeof PollRequest>;

export const ReleaseToApply = z.object({
  releaseId: z.string(),
  rolloutId: z.string().nullable(),
  name: z.string(),
  series: z.string(),
  sha256: sha256Hex,
  size: z.number().int().nonnegative(),
  /** ISO timestamp of the upload; the agent's cut-off compares against it. */
  releasedAt: z.string(),
  /** Path relative to the server base URL, e.g. /v1/blobs/<sha256>. */
  url: z.string(),
  /**
   * An operator asked to offer this release again to machines where it failed (`rollout
   * retry-failed`): the agent applies it although it remembers the failure. Without it, a release
   * that failed here is never tried again by itself.
   */
  retry: z.boolean().optional(),
});
export type ReleaseToApply = z.infer<typeof ReleaseToApply>;

export const ReleaseToRevert = z.object({
  releaseId: z.string(),
  rolloutId: z.string().nullable(),
  name: z.string(),
  sha256: sha256Hex,
});
export type ReleaseToRevert = z.infer<typeof ReleaseToRevert>;

export const PollResponse = z.object({
  machineId: z.string(),
  serverTime: z.string(),
  apply: z.array(ReleaseToApply),
  revert: z.array(ReleaseToRevert),
  /** A hint for the next poll, in seconds. */
  nextPollSeconds: z.number().int().positive().optional(),
  /**
   * The machine's maintenance window (by its tier or tags), if one is set: it downloads and
   * verifies at once but applies only inside the window.
   */
  maintenanceWindow: MaintenanceWindow.nullable().optional(),
});
export type PollResponse = z.infer<typeof PollResponse>;

export const ReportStatus = z.enum([
  'downloading',
  'applied',
  'failed',
  'reverted',
  'revert-failed',
  'skipped',
  /** Downloaded and verified; waits for the machine's maintenance window (until `scheduledFor`). */
  'scheduled',
]);
export type ReportStatus = z.infer<typeof ReportStatus>;

export const AgentReport = z.object({
  /** Chosen by the agent (a UUID); a report sent twice is stored once. */
  id: z.string().uuid(),
  releaseId: z.string().optional(),
  rolloutId: z.string().nullable().optional(),
  name: z.string().min(1).max(64),
  sha256: sha256Hex.optional(),
  status: ReportStatus,
  errorCode: z.string().max(64).optional(),
  /** The last lines of the agent's log for this attempt. */
  log: z.string().max(16_384).optional(),
  at: z.string().datetime(),
  /** With `scheduled`: when the window the agent waits for closes (it applies before then). */
  scheduledFor: z.string().datetime().optional(),
});
export type AgentReport = z.infer<typeof AgentReport>;

export const ReportBatch = z.object({ reports: z.array(AgentReport).min(1).max(500) });
export type ReportBatch = z.infer<typeof ReportBatch>;

export const ReportBatchResponse = z.object({
  accepted: z.array(z.string()),
  duplicates: z.array(z.string()),
});
export type ReportBatchResponse = z.infer<typeof ReportBatchResponse>;

/** Error body of every 4xx/5xx from the server. */
export const ApiError = z.object({
  error: z.object({ code: z.string(), message: z.string(), field: z.string().optional() }),
});
export type ApiError = z.infer<typeof ApiError>;

/** The fixed HTTP paths of the agent API. */
export const AGENT_PATHS = {
  enroll: '/v1/agent/enroll',
  poll: '/v1/agent/poll',
  reports: '/v1/agent/reports',
  blob: (sha256: string) => `/v1/blobs/${sha256}`,
} as const;
