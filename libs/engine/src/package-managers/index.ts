// The engine's seam: preparePackageStep (install, pkg revert), prepareReversePackageStep (uninstall), undoPackageStep (the UNDO table).
export {
  createPackageManager,
  detectPackageManager,
  PACKAGE_MANAGER_KINDS,
  type PackageManagerKind,
} from './detect.ts';
export { type ControlStanza, DpkgManager, debFileName, parseControl } from './dpkg.ts';
export { PACKAGE_ERROR_CODES, PackageError, type PackageErrorCode } from './errors.ts';
export type { PackageFileInfo, PackageManager, RestorePlan } from './package-manager.ts';
export {
  type PackageStepContext,
  type PackageUndo,
  type PackageUndoAction,
  preparePackageStep,
  prepareReversePackageStep,
  undoPackageStep,
} from './package-step.ts';
export { PacmanManager, parsePkgInfo } from './pacman.ts';
