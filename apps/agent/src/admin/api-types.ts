/**
 * The shapes of the admin API answers that clpctl reads: the inferred types of the schemas the
 * server validates with (@clp/protocol), so a field renamed on the server fails to compile here.
 */
import type {
  AdminToken,
  AuditEntry as AuditEntryShape,
  CreatedAdminToken,
  CreatedEnrollmentToken,
  EnrollmentToken as EnrollmentTokenShape,
  Explanation as ExplanationShape,
  Machine as MachineShape,
  MaintenanceWindowEntry,
  Overview as OverviewShape,
  Release as ReleaseShape,
  Report as ReportShape,
  RetryFailedResult as RetryFailedShape,
  RolloutPreview as RolloutPreviewShape,
  RolloutProgressView,
  RolloutTimeline as RolloutTimelineShape,
  Tier as TierShape,
  User as UserShape,
} from '@clp/protocol';

export type Release = ReleaseShape;
export type Tier = TierShape;
export type Rollout = RolloutProgressView;
export type RetryFailedResult = RetryFailedShape;
export type MaintenanceWindowItem = MaintenanceWindowEntry;
export type AuditEntry = AuditEntryShape;
/** A listed token has no secret; a created one carries it once. */
export type EnrollmentToken = EnrollmentTokenShape & Partial<Pick<CreatedEnrollmentToken, 'token'>>;
export type ApiToken = AdminToken & Partial<Pick<CreatedAdminToken, 'token'>>;
export type Machine = MachineShape;
export type Report = ReportShape;
export type Explanation = ExplanationShape;
export type User = UserShape;
export type Overview = OverviewShape;
export type RolloutPreview = RolloutPreviewShape;
export type RolloutTimeline = RolloutTimelineShape;
