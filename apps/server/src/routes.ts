import type { AdminRole } from '@clp/db';
import { ping } from '@clp/db';
import {
  ApiError,
  EnrollRequest,
  EnrollResponse,
  PollRequest,
  PollResponse,
  ReportBatch,
  ReportBatchResponse,
} from '@clp/protocol';
import type { Request, Response } from 'express';
import type { z } from 'zod';
import { enroll, ingestReports, poll } from './agent.ts';
import type { Access } from './auth.ts';
import { consoleRoutes } from './console-routes.ts';
import type { AgentMachine, AppContext, Principal } from './context.ts';
import { explain, listMachines, listReports, rekeyMachine, revokeMachine, showMachine } from './machines.ts';
import { clearWindow, listWindows, setWindow } from './maintenance-windows.ts';
import { buildOpenApi } from './openapi.ts';
import { listReleases, promoteRelease, showRelease, uploadRelease, yankRelease } from './releases.ts';
import {
  actOnRollout,
  approveRollout,
  createRollout,
  listRollouts,
  retryFailed,
  rolloutAuditLog,
  showRollout,
} from './rollouts.ts';
import {
  AdminToken,
  AdminTokenList,
  ApproveRolloutBody,
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
  ExplainQuery,
  Explanation,
  Health,
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
  ReportList,
  ReportListQuery,
  RetryFailedResult,
  RolloutActionBody,
  RolloutIdParam,
  RolloutList,
  RolloutListQuery,
  RolloutProgressView,
  SetMaintenanceWindowBody,
  Sha256Param,
  Tier,
  TierList,
  TierParam,
  TokenIdParam,
  TokenListQuery,
  YankBody,
} from './schemas.ts';
import { serveBlob } from './serve-blob.ts';
import { createTier, editTier, listTiers, reorderTiers } from './tiers.ts';
import {
  createAdminToken,
  createEnrollmentToken,
  listAdminTokens,
  listEnrollmentTokens,
  revokeAdminToken,
  revokeEnrollmentToken,
} from './tokens.ts';

/** Roles per kind of call. The admin role may do everything and is listed everywhere. */
export const ROLES = {
  read: ['admin', 'release', 'operator', 'viewer'],
  release: ['admin', 'release'],
  operator: ['admin', 'operator'],
  admin: ['admin'],
} as const satisfies Record<string, readonly AdminRole[]>;

export type HttpMethod = 'GET' | 'HEAD' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';

/** What a handler returns: a JSON body (status defaults to the route's), or `sent` when it wrote the response. */
export type RouteResult = { status?: number; body: unknown } | 'sent';

export interface RouteInput<P, Q, B> {
  params: P;
  query: Q;
  body: B;
  principal: Principal;
  req: Request;
  res: Response;
}

/** One row of the route table: everything the server, the OpenAPI document and the tests need. */
export interface Route<P = unknown, Q = unknown, B = unknown> {
  /** Stable operation id (OpenAPI operationId, CLI and dashboard use it). */
  id: string;
  method: HttpMethod;
  /** Express path syntax: /v1/releases/:id. */
  path: string;
  summary: string;
  access: Access;
  params?: z.ZodType<P>;
  query?: z.ZodType<Q>;
  /** A zod schema for JSON bodies, or `binary` for a raw application/octet-stream body. */
  body?: z.ZodType<B> | 'binary';
  /** Body fields that are logs and may hold tabs and line ends (`reports.*.log`); other text may not. */
  textBlocks?: readonly string[];
  /**
   * Statuses this route answers besides its success and those its access rule and body bring
   * (400, 401, 403, 413, 415, 429, 503): its not-found, conflicts, partial content… (the OpenAPI
   * document lists them, and the tests check that nothing else is answered).
   */
  statuses?: readonly number[];
  /** A success body that is not JSON: its media type and JSON schema (documentation). */
  content?: { type: string; schema: Record<string, unknown> };
  /** The success body (documentation; not checked at run time). */
  response?: z.ZodType;
  /** The success status (default 200). */
  status?: number;
  handle(ctx: AppContext, input: RouteInput<P, Q, B>): Promise<RouteResult>;
}

/** Keeps each row's handler typed by its own schemas. */
export function route<P = Record<string, string>, Q = Record<string, unknown>, B = undefined>(
  r: Route<P, Q, B>,
): Route {
  return r as unknown as Route;
}

const admin = (roles: readonly AdminRole[]): Access => ({ kind: 'admin', roles });
const agent: Access = { kind: 'agent' };
const publicAccess: Access = { kind: 'public' };

function machineOf(principal: Principal): AgentMachine {
  if (principal.kind !== 'machine') throw new Error('agent route reached without a machine principal');
  return principal.machine;
}

const rolloutAction = (action: 'pause' | 'resume' | 'abort' | 'revert', summary: string) =>
  route({
    id: `${action}Rollout`,
    statuses: [404, 409],
    method: 'POST',
    path: `/v1/rollouts/:id/${action}`,
    summary,
    access: admin(ROLES.operator),
    params: RolloutIdParam,
    body: RolloutActionBody,
    response: RolloutProgressView,
    handle: async (ctx, { params, body, principal }) => ({
      body: await actOnRollout(ctx, params.id, action, body.reason, principal),
    }),
  });

const blobRoute = (method: 'GET' | 'HEAD') =>
  route({
    id: method === 'GET' ? 'getBlob' : 'headBlob',
    statuses: [206, 304, 404, 416, 503],
    content: { type: 'application/octet-stream', schema: { type: 'string', format: 'binary' } },
    method,
    path: '/v1/blobs/:sha256',
    summary:
      'Download a release file by sha256: immutable, strong ETag, Range (206/416), cacheable; no credential needed (agents verify signatures)',
    access: publicAccess,
    params: Sha256Param,
    handle: async (ctx, { params, req, res }) => {
      await serveBlob(ctx, req, res, params.sha256);
      return 'sent';
    },
  });

const opsRoutes = [
  route({
    id: 'healthz',
    method: 'GET',
    path: '/healthz',
    summary: 'Liveness: the process answers',
    access: publicAccess,
    response: Health,
    handle: async () => ({ body: { status: 'ok' } }),
  }),
  route({
    id: 'readyz',
    statuses: [503],
    method: 'GET',
    path: '/readyz',
    summary: 'Readiness: the database answers (503 when it does not)',
    access: publicAccess,
    response: Health,
    handle: async (ctx) => {
      const up = await ping(ctx.database);
      return {
        status: up ? 200 : 503,
        body: { status: up ? 'ready' : 'database unreachable', database: ctx.database.kind },
      };
    },
  }),
  route({
    id: 'metrics',
    content: { type: 'text/plain', schema: { type: 'string' } },
    method: 'GET',
    path: '/metrics',
    summary: 'Prometheus metrics: requests, durations, polls, reports, uploads',
    access: publicAccess,
    handle: async (ctx, { res }) => {
      res.setHeader('Content-Type', ctx.metrics.registry.contentType);
      res.end(await ctx.metrics.registry.metrics());
      return 'sent';
    },
  }),
  route({
    id: 'openapi',
    content: { type: 'application/json', schema: { type: 'object' } },
    method: 'GET',
    path: '/openapi.json',
    summary: 'This API as an OpenAPI 3.1 document, generated from the route table',
    access: publicAccess,
    handle: async () => ({ body: openApiDocument() }),
  }),
];

let openApiCache: unknown;
function openApiDocument(): unknown {
  openApiCache ??= buildOpenApi(ROUTES);
  return openApiCache;
}

/** Every route of the server. The OpenAPI document, the auth tests and the admin tools are made from it. */
export const ROUTES: readonly Route[] = [
  ...opsRoutes,
  // Agents.
  route({
    id: 'enroll',
    statuses: [409],
    method: 'POST',
    path: '/v1/agent/enroll',
    summary: 'Enroll a machine with an enrollment token; answers its credential (shown once)',
    access: { kind: 'enroll' },
    body: EnrollRequest,
    response: EnrollResponse,
    status: 201,
    handle: async (ctx, { body }) => ({ status: 201, body: await enroll(ctx, body) }),
  }),
  route({
    id: 'poll',
    method: 'POST',
    path: '/v1/agent/poll',
    summary: 'What should this machine have now? Releases to apply and to revert',
    access: agent,
    body: PollRequest,
    response: PollResponse,
    handle: async (ctx, { body, principal }) => ({ body: await poll(ctx, machineOf(principal), body) }),
  }),
  route({
    id: 'report',
    method: 'POST',
    path: '/v1/agent/reports',
    summary: 'Send outcome reports; a report id already stored is a duplicate and changes nothing',
    access: agent,
    body: ReportBatch,
    textBlocks: ['reports.*.log'],
    response: ReportBatchResponse,
    handle: async (ctx, { body, principal }) => ({
      body: await ingestReports(ctx, machineOf(principal), body),
    }),
  }),
  blobRoute('HEAD'),
  blobRoute('GET'),

  // Releases.
  route({
    id: 'uploadRelease',
    statuses: [200, 409, 422],
    method: 'POST',
    path: '/v1/releases',
    summary: 'Upload a signed .clp (raw body, application/octet-stream); the same bytes again answer 200',
    access: admin(ROLES.release),
    body: 'binary',
    response: Release,
    status: 201,
    handle: async (ctx, { req, principal }) => uploadRelease(ctx, req, principal),
  }),
  route({
    id: 'listReleases',
    statuses: [404],
    method: 'GET',
    path: '/v1/releases',
    summary: 'List releases, newest first',
    access: admin(ROLES.read),
    query: ReleaseListQuery,
    response: ReleaseList,
    handle: async (ctx, { query }) => ({ body: await listReleases(ctx, query) }),
  }),
  route({
    id: 'getRelease',
    statuses: [404],
    method: 'GET',
    path: '/v1/releases/:id',
    summary: 'Show one release (id = sha256)',
    access: admin(ROLES.read),
    params: ReleaseIdParam,
    response: ReleaseDetail,
    handle: async (ctx, { params }) => ({ body: await showRelease(ctx, params.id) }),
  }),
  route({
    id: 'yankRelease',
    statuses: [404],
    method: 'POST',
    path: '/v1/releases/:id/yank',
    summary: 'Yank a release: no machine is offered it any more',
    access: admin(ROLES.release),
    params: ReleaseIdParam,
    body: YankBody,
    response: ReleaseDetail,
    handle: async (ctx, { params, principal }) => ({ body: await yankRelease(ctx, params.id, principal) }),
  }),
  route({
    id: 'promoteRelease',
    statuses: [404, 409],
    method: 'POST',
    path: '/v1/releases/:id/promote',
    summary: 'Promote a release to a tier',
    access: admin(ROLES.release),
    params: ReleaseIdParam,
    body: PromoteBody,
    response: ReleaseDetail,
    handle: async (ctx, { params, body, principal }) => ({
      body: await promoteRelease(ctx, params.id, body.tier, principal),
    }),
  }),

  // Tiers.
  route({
    id: 'listTiers',
    method: 'GET',
    path: '/v1/tiers',
    summary: 'List tiers in order',
    access: admin(ROLES.read),
    response: TierList,
    handle: async (ctx) => ({ body: { tiers: await listTiers(ctx) } }),
  }),
  route({
    id: 'createTier',
    statuses: [409],
    method: 'POST',
    path: '/v1/tiers',
    summary: 'Create a tier (placed last unless a position is given)',
    access: admin(ROLES.operator),
    body: CreateTierBody,
    response: Tier,
    status: 201,
    handle: async (ctx, { body }) => ({ status: 201, body: await createTier(ctx, body) }),
  }),
  route({
    id: 'reorderTiers',
    method: 'PUT',
    path: '/v1/tiers/order',
    summary: 'Set the order of all tiers',
    access: admin(ROLES.operator),
    body: ReorderTiersBody,
    response: TierList,
    handle: async (ctx, { body }) => ({ body: { tiers: await reorderTiers(ctx, body) } }),
  }),
  route({
    id: 'editTier',
    statuses: [404],
    method: 'PATCH',
    path: '/v1/tiers/:id',
    summary: 'Edit a tier (position, description)',
    access: admin(ROLES.operator),
    params: TierParam,
    body: EditTierBody,
    response: Tier,
    handle: async (ctx, { params, body }) => ({ body: await editTier(ctx, params.id, body) }),
  }),

  // Rollouts.
  route({
    id: 'createRollout',
    statuses: [404, 409],
    method: 'POST',
    path: '/v1/rollouts',
    summary: 'Start a staged rollout of a release to a tier',
    access: admin(ROLES.operator),
    body: CreateRolloutBody,
    response: RolloutProgressView,
    status: 201,
    handle: async (ctx, { body, principal }) => ({
      status: 201,
      body: await createRollout(ctx, body, principal),
    }),
  }),
  route({
    id: 'listRollouts',
    statuses: [404],
    method: 'GET',
    path: '/v1/rollouts',
    summary: 'List rollouts with their progress',
    access: admin(ROLES.read),
    query: RolloutListQuery,
    response: RolloutList,
    handle: async (ctx, { query }) => ({ body: await listRollouts(ctx, query) }),
  }),
  route({
    id: 'getRollout',
    statuses: [404],
    method: 'GET',
    path: '/v1/rollouts/:id',
    summary: 'Show a rollout: stage, percent, counters, failure rate, next stage time',
    access: admin(ROLES.read),
    params: RolloutIdParam,
    response: RolloutProgressView,
    handle: async (ctx, { params }) => ({ body: await showRollout(ctx, params.id) }),
  }),
  rolloutAction('pause', 'Pause a rollout: no new machine is offered the release, stages stop'),
  rolloutAction('resume', 'Resume a paused rollout (its current stage starts its minimum time again)'),
  rolloutAction('abort', 'Abort a rollout: it offers nothing more; installed machines keep the release'),
  rolloutAction(
    'revert',
    'Revert a rollout: machines that report the release installed are told to take it back',
  ),
  route({
    id: 'approveRollout',
    statuses: [404, 409],
    method: 'POST',
    path: '/v1/rollouts/:id/approve',
    summary:
      "Approve the current stage's gate (a stage created with requireApproval): it may end once its time and applied evidence are there; the audit log keeps who and why",
    access: admin(ROLES.operator),
    params: RolloutIdParam,
    body: ApproveRolloutBody,
    response: RolloutProgressView,
    handle: async (ctx, { params, body, principal }) => ({
      body: await approveRollout(ctx, params.id, body.reason, principal),
    }),
  }),
  route({
    id: 'retryFailedRollout',
    statuses: [404, 409],
    method: 'POST',
    path: '/v1/rollouts/:id/retry-failed',
    summary:
      'Offer the release again to the machines whose last outcome was failed (or that were silent), without restarting the rollout; a halted rollout becomes active at its stage',
    access: admin(ROLES.operator),
    params: RolloutIdParam,
    body: RolloutActionBody,
    response: RetryFailedResult,
    handle: async (ctx, { params, body, principal }) => ({
      body: await retryFailed(ctx, params.id, body.reason, principal),
    }),
  }),
  route({
    id: 'rolloutAudit',
    statuses: [404],
    method: 'GET',
    path: '/v1/rollouts/:id/audit',
    summary: 'Audit log of a rollout: who did what, when (including automatic stage changes and halts)',
    access: admin(ROLES.read),
    params: RolloutIdParam,
    response: AuditList,
    handle: async (ctx, { params }) => ({ body: { entries: await rolloutAuditLog(ctx, params.id) } }),
  }),

  // Maintenance windows.
  route({
    id: 'listMaintenanceWindows',
    method: 'GET',
    path: '/v1/maintenance-windows',
    summary: 'List the maintenance windows set per tier and per tag',
    access: admin(ROLES.read),
    response: MaintenanceWindowList,
    handle: async (ctx) => ({ body: { windows: await listWindows(ctx) } }),
  }),
  route({
    id: 'setMaintenanceWindow',
    statuses: [404],
    method: 'PUT',
    path: '/v1/maintenance-windows',
    summary:
      "Set a tier's or a tag's maintenance window, e.g. 'Sat 02:00-04:00 Europe/Paris' (a tag's window wins over the tier's); machines apply only inside it",
    access: admin(ROLES.operator),
    body: SetMaintenanceWindowBody,
    response: MaintenanceWindowEntry,
    handle: async (ctx, { body, principal }) => ({ body: await setWindow(ctx, body, principal) }),
  }),
  route({
    id: 'clearMaintenanceWindow',
    statuses: [404],
    method: 'DELETE',
    path: '/v1/maintenance-windows/:kind/:name',
    summary: "Remove a tier's or a tag's maintenance window (kind: tier or tag)",
    access: admin(ROLES.operator),
    params: MaintenanceWindowParams,
    response: MaintenanceWindowEntry,
    handle: async (ctx, { params }) => ({ body: await clearWindow(ctx, params.kind, params.name) }),
  }),

  // Enrollment tokens.
  route({
    id: 'createEnrollmentToken',
    statuses: [404],
    method: 'POST',
    path: '/v1/enrollment-tokens',
    summary: 'Make an enrollment token for a tier and tags; the secret is shown only in this answer',
    access: admin(ROLES.operator),
    body: CreateEnrollmentTokenBody,
    response: CreatedEnrollmentToken,
    status: 201,
    handle: async (ctx, { body, principal }) => ({
      status: 201,
      body: await createEnrollmentToken(ctx, body, principal),
    }),
  }),
  route({
    id: 'listEnrollmentTokens',
    method: 'GET',
    path: '/v1/enrollment-tokens',
    summary: 'List enrollment tokens (never their secrets)',
    access: admin(ROLES.read),
    query: TokenListQuery,
    response: EnrollmentTokenList,
    handle: async (ctx, { query }) => ({ body: await listEnrollmentTokens(ctx, query) }),
  }),
  route({
    id: 'revokeEnrollmentToken',
    statuses: [404],
    method: 'POST',
    path: '/v1/enrollment-tokens/:id/revoke',
    summary: 'Revoke an enrollment token',
    access: admin(ROLES.operator),
    params: TokenIdParam,
    response: EnrollmentToken,
    handle: async (ctx, { params }) => ({ body: await revokeEnrollmentToken(ctx, params.id) }),
  }),

  // Machines and reports.
  route({
    id: 'listMachines',
    statuses: [404],
    method: 'GET',
    path: '/v1/machines',
    summary:
      'List machines, paged with the total of matches: search q (part of the host name or id), filters tier, tag, arch, os, hostname, installed or failed release, seen (day, week, stale, never), revoked; sort hostname, lastSeen or enrolled',
    access: admin(ROLES.read),
    query: MachineListQuery,
    response: MachineList,
    handle: async (ctx, { query }) => ({ body: await listMachines(ctx, query) }),
  }),
  route({
    id: 'getMachine',
    statuses: [404],
    method: 'GET',
    path: '/v1/machines/:id',
    summary: 'Show a machine with its recent reports',
    access: admin(ROLES.read),
    params: MachineIdParam,
    response: MachineDetail,
    handle: async (ctx, { params }) => ({ body: await showMachine(ctx, params.id) }),
  }),
  route({
    id: 'explainMachine',
    statuses: [404],
    method: 'GET',
    path: '/v1/machines/:id/explain',
    summary:
      "Why a machine has or has not been offered a release: tier, selector, cohort and stage, halted or paused, yanked, and the machine's cut-off (query cutoff)",
    access: admin(ROLES.read),
    params: MachineIdParam,
    query: ExplainQuery,
    response: Explanation,
    handle: async (ctx, { params, query }) => ({
      body: await explain(ctx, params.id, query.release, query.cutoff),
    }),
  }),
  route({
    id: 'revokeMachine',
    statuses: [404],
    method: 'POST',
    path: '/v1/machines/:id/revoke',
    summary:
      'Revoke a machine credential: its next call gets 401, and its id enrolls again only after a re-key',
    access: admin(ROLES.operator),
    params: MachineIdParam,
    response: Machine,
    handle: async (ctx, { params, principal }) => ({ body: await revokeMachine(ctx, params.id, principal) }),
  }),
  route({
    id: 'rekeyMachine',
    statuses: [404],
    method: 'POST',
    path: '/v1/machines/:id/rekey',
    summary:
      'Re-key a machine (reinstalled, or its credential lost): the credential stops working now, and one enrollment under its id is let in until rekeyUntil',
    access: admin(ROLES.operator),
    params: MachineIdParam,
    body: RekeyMachineBody,
    response: Machine,
    handle: async (ctx, { params, body, principal }) => ({
      body: await rekeyMachine(ctx, params.id, body, principal),
    }),
  }),
  route({
    id: 'listReports',
    statuses: [404],
    method: 'GET',
    path: '/v1/reports',
    summary: 'List agent reports (filters: rollout, machine, status)',
    access: admin(ROLES.read),
    query: ReportListQuery,
    response: ReportList,
    handle: async (ctx, { query }) => ({ body: await listReports(ctx, query) }),
  }),

  // Admin tokens.
  route({
    id: 'createAdminToken',
    method: 'POST',
    path: '/v1/admin-tokens',
    summary: 'Make an API token with a role; the secret is shown only in this answer',
    access: admin(ROLES.admin),
    body: CreateAdminTokenBody,
    response: CreatedAdminToken,
    status: 201,
    handle: async (ctx, { body }) => ({ status: 201, body: await createAdminToken(ctx, body) }),
  }),
  route({
    id: 'listAdminTokens',
    method: 'GET',
    path: '/v1/admin-tokens',
    summary: 'List API tokens (never their secrets)',
    access: admin(ROLES.admin),
    query: TokenListQuery,
    response: AdminTokenList,
    handle: async (ctx, { query }) => ({ body: await listAdminTokens(ctx, query) }),
  }),
  route({
    id: 'revokeAdminToken',
    statuses: [404],
    method: 'POST',
    path: '/v1/admin-tokens/:id/revoke',
    summary: 'Revoke an API token',
    access: admin(ROLES.admin),
    params: TokenIdParam,
    response: AdminToken,
    handle: async (ctx, { params }) => ({ body: await revokeAdminToken(ctx, params.id) }),
  }),

  // Sessions, users, and the fleet views of the console (documented like the rest).
  ...consoleRoutes(),
];

/** The error body every 4xx/5xx carries (from @clp/protocol). */
export const ERROR_BODY = ApiError;
