export { ENGINE_ERROR_CODES, EngineError, type EngineErrorCode, type Refusal } from './errors.ts';
export { type InstallOptions, type InstallResult, installPatch, type Progress } from './install.ts';
export { type Drift, findDrift, type UninstallOptions, type UninstallResult, uninstallPatch } from './uninstall.ts';
export { type EngineStatus, engineStatus, type Explanation, explainPatch, getPatch, listInstalled, readHistory } from './query.ts';
export { type RecoverResult, recover } from './recover.ts';
export { hostArchitecture } from './host.ts';
export { keysDirOf, logFileOf, stateDirOf } from './paths.ts';
export type { FailedMark, HistoryEntry, InstalledPatch, PatchRecord } from './state.ts';
export type { CheckResult } from './health-check.ts';
