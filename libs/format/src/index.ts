export { ClpError, FORMAT_ERROR_CODES, FormatError, type FormatErrorCode, isClpError } from './errors.ts';
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
