export { CHANGE_CHANNEL, type ChangeListener } from './changes.ts';
export {
  type Database,
  type DatabaseHandle,
  migrate,
  migrationsFolder,
  type OpenDatabaseOptions,
  openDatabase,
  ping,
} from './database.ts';
export {
  ADMIN_ROLES,
  type AdminRole,
  adminTokens,
  blobChunks,
  blobs,
  enrollmentTokens,
  type InstalledPatchRecord,
  machines,
  promotions,
  ROLLOUT_STATES,
  type RolloutSelector,
  type RolloutStage,
  type RolloutState,
  releases,
  reports,
  rolloutAudit,
  rolloutCounters,
  rollouts,
  schema,
  tiers,
} from './schema.ts';
export { createTestDatabase, queryOnce, type TestDatabase } from './test-database.ts';
