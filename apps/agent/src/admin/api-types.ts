/**
 * The shapes of the admin API answers that clpctl reads (the server's schemas.ts is the source;
 * only the fields shown here are relied on, and --json prints the answer whole).
 */
export interface Release {
  id: string;
  sha256: string;
  name: string;
  series: string;
  version: string;
  arch: string;
  size: number;
  signerKeyId: string;
  uploadedBy: string;
  uploadedAt: string;
  yanked: boolean;
  tiers: string[];
}

export interface Tier {
  name: string;
  position: number;
  description: string;
}

export interface Rollout {
  id: string;
  releaseId: string;
  releaseName: string;
  tier: string;
  selector: { tags?: string[]; arch?: string[]; os?: string[] };
  stages: { percent: number; minDurationSeconds: number }[];
  currentStage: number;
  stageStartedAt: string;
  nextStageAt: string | null;
  percent: number;
  state: string;
  haltReason: string | null;
  failureThreshold: { maxFailureRate: number; minReports: number };
  counters: { applied: number; failed: number; reverted: number; revertFailed: number };
  failureRate: number;
  createdBy: string;
  createdAt: string;
}

export interface AuditEntry {
  id: number;
  actor: string;
  action: string;
  at: string;
  details: Record<string, unknown>;
}

export interface EnrollmentToken {
  id: string;
  tier: string;
  tags: string[];
  expiresAt: string;
  usesLeft: number;
  createdBy: string;
  revoked: boolean;
  token?: string;
}

export interface ApiToken {
  id: string;
  name: string;
  role: string;
  createdAt: string;
  expiresAt: string | null;
  revoked: boolean;
  token?: string;
}

export interface Machine {
  id: string;
  hostname: string;
  arch: string;
  os: { id: string; version: string };
  tier: string;
  tags: string[];
  enrolledAt: string;
  lastSeenAt: string | null;
  installed: Record<string, unknown>[];
}

export interface Report {
  id: string;
  machineId: string;
  releaseId: string | null;
  rolloutId: string | null;
  name: string;
  status: string;
  errorCode: string | null;
  at: string;
  receivedAt: string;
}

export interface Explanation {
  machineId: string;
  releaseId: string;
  releaseName: string;
  yanked: boolean;
  installed: string;
  verdict: string;
  summary: string;
  rollouts: {
    rolloutId: string;
    state: string;
    tier: string;
    outcome: string;
    rule: string;
    reason: string;
  }[];
}
