/**
 * The Core LivePatch server as a library.
 *
 * - `startServer(options)` starts a whole server in this process and answers its URL and an admin
 *   token: what tests, end-to-end runs and benchmarks use. Options are the ServerConfig fields
 *   (dataDir, databaseUrl, trustedKeysDir, bootstrapToken, maxUploadBytes, rateLimits, …) plus
 *   port, host, clock, inspect, database and logStream.
 * - `createServer(config, deps)` builds it without listening (`listen`, `tick`, `close`).
 * - `ROUTES` is the route table that the HTTP API, /openapi.json and the auth tests are made from.
 * - `main.ts` is the program (`npm run build` bundles it as apps/server/dist/server.mjs); its
 *   settings come from PORT, CLP_DATA_DIR, DATABASE_URL, CLP_BLOB_STORE, CLP_TRUSTED_KEYS,
 *   CLP_BOOTSTRAP_TOKEN, CLP_WEBHOOK_URLS, CLP_WEBHOOK_SECRET (see configFromEnv).
 */
export { type Access, authenticate, MachineAuthCache } from './auth.ts';
export { type BlobStore, cleanUploads, FolderBlobStore, isSha256 } from './blob-store.ts';
export { type Clock, ManualClock, systemClock } from './clock.ts';
export { BUCKETS, cohortBucket, inStage } from './cohort.ts';
export { configFromEnv, DEFAULT_PORT, defaultConfig, type ServerConfig } from './config.ts';
export type { AppContext, Principal } from './context.ts';
export { type Cutoff, type CutoffVerdict, judgeCutoff, parseCutoff } from './cutoff.ts';
export { httpStatusFor, SERVER_ERROR_CODES, ServerError, type ServerErrorCode } from './errors.ts';
export { buildOpenApi, statusesOf } from './openapi.ts';
export { type Decision, decide, desiredState, type PollMachine, type RolloutView } from './poll.ts';
export { CHUNK_BYTES, PostgresBlobStore } from './postgres-blob-store.ts';
export { RateLimiter } from './rate-limit.ts';
export {
  type InspectedRelease,
  type ReleaseInspector,
  trustedReleaseInspector,
} from './release-inspector.ts';
export type { MachineCounts } from './rollout-evidence.ts';
export { advanceRollouts, type JudgedChange } from './rollout-judge.ts';
export {
  completesBy,
  failureRate,
  nextTransition,
  offeredPercent,
  type RolloutOutcomes,
  type RolloutProgress,
  type StageTransition,
  stageEndsAt,
  stageGate,
  unhealthyReason,
  warrantsWarning,
} from './rollout-stage.ts';
export { type HttpMethod, ROLES, ROUTES, type Route, type RouteInput, type RouteResult } from './routes.ts';
export * as schemas from './schemas.ts';
export { type ClpServer, createServer, type ServerDeps } from './server.ts';
export { type StartedServer, type StartServerOptions, startServer } from './start.ts';
export { MAX_ATTEMPTS, retryDelaySeconds, SIGNATURE_HEADER, signature } from './webhooks.ts';
