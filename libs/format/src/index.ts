export type { ArchiveBackend, RawEntry } from './backend.ts';
export { type CollectedFile, collectPatchDir } from './collect-patch-dir.ts';
export { type EntryDigest, EntryGuard } from './entry-guard.ts';
export { checkEntryName } from './entry-name.ts';
export { ClpError, FORMAT_ERROR_CODES, FormatError, type FormatErrorCode, isClpError } from './errors.ts';
export { type ArchiveLimits, DEFAULT_LIMITS, resolveLimits } from './limits.ts';
export {
  Action,
  Architecture,
  CheckAction,
  FileAction,
  PackageAction,
  PatchMeta,
  ScriptAction,
  ServiceAction,
  Severity,
  TargetSystem,
} from './model.ts';
export { comparePatchNames, type PatchName, parsePatchName } from './name.ts';
export {
  type ExtractOptions,
  type OpenPatchOptions,
  openPatch,
  type PatchArchive,
  type PatchEntry,
  SMALL_ENTRY_BYTES,
} from './patch-archive.ts';
export {
  INSTALL_SCRIPTS,
  PKGINFO_ENTRY,
  parseDuration,
  REMOVE_SCRIPTS,
  readPatchMeta,
} from './read-patch-meta.ts';
export { serializePatchMeta } from './serialize-patch-meta.ts';
export { type EntrySource, writePatch } from './write-patch.ts';
export { ACTION_ELEMENTS, ATTRIBUTE_OF, attributeOf, SIMPLE_FIELDS } from './xml-names.ts';
