import type { AdminRole as DbAdminRole } from '@clp/db';
import { type AdminRole, ExplainQuery as ExplainQueryShape } from '@clp/protocol';
import { z } from 'zod';
import { parseCutoff } from './cutoff.ts';

/** The admin API's bodies live in @clp/protocol (shared with the console and clpctl); server-only checks are added here. */
export {
  AdminToken,
  AdminTokenList,
  ApproveRolloutBody,
  AuditEntry,
  AuditList,
  CreateAdminTokenBody,
  CreatedAdminToken,
  CreatedEnrollmentToken,
  CreateEnrollmentTokenBody,
  CreateRolloutBody,
  CreateTierBody,
  EditTierBody,
  EnrollmentToken,
  EnrollmentTokenList,
  Explanation,
  FailureThreshold,
  Health,
  IdParam,
  Machine,
  MachineDetail,
  MachineIdParam,
  MachineList,
  MachineListQuery,
  MaintenanceWindowEntry,
  MaintenanceWindowList,
  MaintenanceWindowParams,
  PromoteBody,
  RekeyMachineBody,
  Release,
  ReleaseDetail,
  ReleaseIdParam,
  ReleaseList,
  ReleaseListQuery,
  ReorderTiersBody,
  Report,
  ReportList,
  ReportListQuery,
  RetryFailedResult,
  RolloutActionBody,
  RolloutIdParam,
  RolloutList,
  RolloutListQuery,
  RolloutProgressView,
  Selector,
  SetMaintenanceWindowBody,
  Sha256Param,
  Stage,
  Tier,
  TierList,
  TierParam,
  TokenIdParam,
  TokenListQuery,
  YankBody,
} from '@clp/protocol';

export const ExplainQuery = ExplainQueryShape.extend({
  cutoff: z
    .string()
    .max(40)
    .refine((v) => parseCutoff(v) !== undefined, 'none, a delay in days (7d) or a date (2026-01-31)')
    .optional(),
});

// The database and the wire name the same roles: either list changing alone fails to compile.
type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : never) : never;
const sameRoles: Same<AdminRole, DbAdminRole> = true;
void sameRoles;
