export { type Access, authenticate, MachineAuthCache } from './auth.ts';
export { type BlobStore, FolderBlobStore, isSha256 } from './blob-store.ts';
export { type Clock, ManualClock, systemClock } from './clock.ts';
export { BUCKETS, cohortBucket, inStage } from './cohort.ts';
export { configFromEnv, DEFAULT_PORT, defaultConfig, type ServerConfig } from './config.ts';
export type { AppContext, Principal } from './context.ts';
export { httpStatusFor, SERVER_ERROR_CODES, ServerError, type ServerErrorCode } from './errors.ts';
export { buildOpenApi } from './openapi.ts';
export { type Decision, decide, desiredState, type PollMachine, type RolloutView } from './poll.ts';
export {
  type InspectedRelease,
  type ReleaseInspector,
  trustedReleaseInspector,
} from './release-inspector.ts';
export {
  failureRate,
  nextTransition,
  offeredPercent,
  type RolloutOutcomes,
  type RolloutProgress,
  type StageTransition,
  stageEndsAt,
  unhealthyReason,
} from './rollout-stage.ts';
export { type HttpMethod, ROLES, ROUTES, type Route, type RouteInput, type RouteResult } from './routes.ts';
export * as schemas from './schemas.ts';
export { type ClpServer, createServer, type ServerDeps } from './server.ts';
