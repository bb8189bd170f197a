export { ENGINE_ERROR_CODES, EngineError, type EngineErrorCode, type Refusal } from './errors.ts';
export type { CheckResult } from './health-check.ts';
export { hostArchitecture } from './host.ts';
export { type InstallOptions, type InstallResult, installPatch, type Progress } from './install.ts';
export { type Lock, lockFile } from './lock.ts';
export { appendLog } from './log.ts';
export { checkOwnPath, lstatOwn, openOwn, readOwnFile } from './own-files.ts';
export { PACKAGE_ERROR_CODES, PackageError, type PackageErrorCode } from './package-managers/index.ts';
export { keysDirOf, logFileOf, resolveUnderRoot, stateDirOf } from './paths.ts';
export { type RevertOptions, type RevertResult, revertPackage } from './pkg-revert.ts';
export {
  type EngineStatus,
  type Explanation,
  engineStatus,
  explainPatch,
  getPatch,
  listInstalled,
  readHistory,
} from './query.ts';
export { type RecoverResult, recover } from './recover.ts';
export { checkRoot } from './root-state.ts';
export type { FailedMark, HistoryEntry, InstalledPatch, PatchRecord } from './state.ts';
export {
  type Drift,
  findDrift,
  type UninstallOptions,
  type UninstallResult,
  uninstallPatch,
} from './uninstall.ts';
