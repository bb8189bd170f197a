import type { EngineErrorCode, PackageErrorCode } from '@clp/engine';
import type { FormatErrorCode } from '@clp/format';
import type { TrustErrorCode } from '@clp/trust';
import type { AdminErrorCode } from './admin/errors.ts';
import type { FleetErrorCode } from './fleet/errors.ts';

/** Exit codes of clpctl; documented in `clpctl --help` and the README. */
export const EXIT = {
  ok: 0,
  internal: 1,
  usage: 2,
  badArchive: 3,
  untrusted: 4,
  notApplicable: 5,
  applyFailed: 6,
  recoveryFailed: 7,
  network: 8,
  drift: 9,
  notFound: 10,
  busy: 11,
  unsafePath: 12,
} as const;
export type ExitCode = (typeof EXIT)[keyof typeof EXIT];

export const EXIT_CODE_HELP = `Exit codes:
  0   success
  1   internal error (a bug: please report it with the log)
  2   usage error (unknown command or option, missing argument, a --root that is not a folder)
  3   the patch archive is malformed or hostile (nothing was written), or a package download
      passed its signed size or the download cap
  4   signature missing, invalid, or by an untrusted or revoked key
  5   the patch does not apply here (architecture, OS, precondition, downgrade; scripts under
      --root without --run-scripts-on-host; a plain-http package URL without --allow-http), or a
      program clp needs is missing (flock of util-linux)
  6   applying failed and was rolled back; the system is as before
  7   a rollback or recovery could not finish; see the log and run 'clpctl recover'
  8   the server could not be reached or answered with an error
  9   files changed since the patch was applied (drift); --force overrides
  10  no such patch, file or key
  11  busy: another clpctl or the package manager is changing this system; nothing was changed,
      try again later
  12  refused for safety, nothing was changed: a symbolic link would lead outside the root (in clp's
      state, log or trust store, or a folder of a patched file that became a link), or a patched path
      holds a folder, FIFO, socket or device instead of a regular file`;

/**
 * Every code any library can throw, mapped to an exit code. The Record type makes
 * this table exhaustive: adding a code to a library without mapping it here fails to compile.
 */
type KnownCode =
  | FormatErrorCode
  | TrustErrorCode
  | FleetErrorCode
  | AdminErrorCode
  | PackageErrorCode
  | EngineErrorCode
  | 'CLP_E_USAGE'
  | 'CLP_E_NOT_FOUND'
  | 'CLP_E_UNAVAILABLE'
  | 'CLP_E_INTERNAL';

const TABLE: Record<KnownCode, ExitCode> = {
  CLP_E_BUSY: EXIT.busy,
  CLP_E_BAD_ROOT: EXIT.usage,
  CLP_E_LINK_REFUSED: EXIT.unsafePath,
  CLP_E_NOT_APPLICABLE: EXIT.notApplicable,
  CLP_E_ARCHITECTURE: EXIT.notApplicable,
  CLP_E_OS: EXIT.notApplicable,
  CLP_E_PRECONDITION: EXIT.notApplicable,
  CLP_E_DOWNGRADE: EXIT.notApplicable,
  CLP_E_ALREADY_INSTALLED: EXIT.notApplicable,
  CLP_E_PREVIOUSLY_FAILED: EXIT.notApplicable,
  CLP_E_INTERPRETER_MISSING: EXIT.notApplicable,
  CLP_E_TOOL_MISSING: EXIT.notApplicable,
  CLP_E_SCRIPT_ON_HOST: EXIT.notApplicable,
  CLP_E_PATH_ESCAPE: EXIT.unsafePath,
  CLP_E_TARGET_NOT_FILE: EXIT.unsafePath,
  CLP_E_UNKNOWN_OWNER: EXIT.notApplicable,
  CLP_E_NO_SPACE: EXIT.applyFailed,
  CLP_E_READ_ONLY: EXIT.applyFailed,
  CLP_E_PERMISSION: EXIT.applyFailed,
  CLP_E_APPLY_FAILED: EXIT.applyFailed,
  CLP_E_SCRIPT_FAILED: EXIT.applyFailed,
  CLP_E_SCRIPT_TIMEOUT: EXIT.applyFailed,
  CLP_E_SERVICE_FAILED: EXIT.applyFailed,
  CLP_E_CHECK_FAILED: EXIT.applyFailed,
  CLP_E_NOT_INSTALLED: EXIT.notFound,
  CLP_E_DRIFT: EXIT.drift,
  CLP_E_IRREVERSIBLE: EXIT.notApplicable,
  CLP_E_ROLLBACK_FAILED: EXIT.recoveryFailed,
  CLP_E_RECOVERY_FAILED: EXIT.recoveryFailed,
  CLP_E_JOURNAL_CORRUPT: EXIT.recoveryFailed,
  CLP_E_BAD_STATE: EXIT.internal,
  CLP_E_PACKAGE_MANAGER_FAILED: EXIT.applyFailed,
  CLP_E_PACKAGE_NOT_FOUND: EXIT.notFound,
  CLP_E_PACKAGE_AMBIGUOUS: EXIT.usage,
  CLP_E_PACKAGE_IRREVERSIBLE: EXIT.notApplicable,
  CLP_E_PACKAGE_MISMATCH: EXIT.notApplicable,
  CLP_E_NO_PACKAGE_MANAGER: EXIT.notApplicable,
  CLP_E_PACKAGE_HASH_MISMATCH: EXIT.badArchive,
  CLP_E_PACKAGE_DOWNLOAD_FAILED: EXIT.network,
  CLP_E_PACKAGE_URL_REFUSED: EXIT.notApplicable,
  CLP_E_PACKAGE_TOO_LARGE: EXIT.badArchive,
  CLP_E_USAGE: EXIT.usage,
  CLP_E_NOT_FOUND: EXIT.notFound,
  CLP_E_INTERNAL: EXIT.internal,
  // The server's 503: its database is not reachable right now.
  CLP_E_UNAVAILABLE: EXIT.network,
  CLP_E_NOT_AN_ARCHIVE: EXIT.badArchive,
  CLP_E_TRUNCATED: EXIT.badArchive,
  CLP_E_CORRUPT_ENTRY: EXIT.badArchive,
  CLP_E_PATH_TRAVERSAL: EXIT.badArchive,
  CLP_E_ABSOLUTE_PATH: EXIT.badArchive,
  CLP_E_BAD_PATH: EXIT.badArchive,
  CLP_E_LINK_ENTRY: EXIT.badArchive,
  CLP_E_SPECIAL_ENTRY: EXIT.badArchive,
  CLP_E_DUPLICATE_ENTRY: EXIT.badArchive,
  CLP_E_TOO_MANY_ENTRIES: EXIT.badArchive,
  CLP_E_TOO_LARGE: EXIT.badArchive,
  CLP_E_ZIP_BOMB: EXIT.badArchive,
  CLP_E_ENCRYPTED_ENTRY: EXIT.badArchive,
  CLP_E_UNSUPPORTED_COMPRESSION: EXIT.badArchive,
  CLP_E_MISSING_PKGINFO: EXIT.badArchive,
  CLP_E_PKGINFO_TOO_LARGE: EXIT.badArchive,
  CLP_E_XML_MALFORMED: EXIT.badArchive,
  CLP_E_XML_DTD: EXIT.badArchive,
  CLP_E_XML_ENTITY: EXIT.badArchive,
  CLP_E_PKGINFO_INVALID: EXIT.badArchive,
  CLP_E_BAD_NAME: EXIT.badArchive,
  CLP_E_MISSING_SOURCE: EXIT.badArchive,
  CLP_E_HASH_MISMATCH: EXIT.badArchive,
  CLP_E_SIZE_MISMATCH: EXIT.badArchive,
  CLP_E_EMPTY_PATCH: EXIT.badArchive,
  CLP_E_SOURCE_DIR: EXIT.usage,
  CLP_E_UNSIGNED: EXIT.untrusted,
  CLP_E_SIGNATURE_INVALID: EXIT.untrusted,
  CLP_E_UNKNOWN_KEY: EXIT.untrusted,
  CLP_E_REVOKED_KEY: EXIT.untrusted,
  CLP_E_MANIFEST_MISMATCH: EXIT.untrusted,
  CLP_E_KEY_INVALID: EXIT.usage,
  CLP_E_KEY_EXISTS: EXIT.usage,
  CLP_E_KEY_NOT_FOUND: EXIT.notFound,
  CLP_E_CONFIG_INVALID: EXIT.usage,
  CLP_E_CONFIG_KEY: EXIT.usage,
  CLP_E_INSECURE_HTTP: EXIT.usage,
  CLP_E_CA_FILE: EXIT.usage,
  CLP_E_NOT_ENROLLED: EXIT.usage,
  CLP_E_ALREADY_ENROLLED: EXIT.usage,
  CLP_E_UNSUPPORTED_ARCH: EXIT.notApplicable,
  CLP_E_SERVER_UNREACHABLE: EXIT.network,
  CLP_E_SERVER_REJECTED: EXIT.network,
  CLP_E_SERVER_PROTOCOL: EXIT.network,
  CLP_E_DOWNLOAD_FAILED: EXIT.network,
  CLP_E_DOWNLOAD_CORRUPT: EXIT.network,
  CLP_E_UPDATE_BUSY: EXIT.busy,
  // clpctl admin: the server's 4xx codes, then the command line's own.
  CLP_E_VALIDATION: EXIT.usage,
  CLP_E_UNAUTHORIZED: EXIT.network,
  CLP_E_FORBIDDEN: EXIT.network,
  CLP_E_RATE_LIMITED: EXIT.network,
  CLP_E_CONFLICT: EXIT.network,
  CLP_E_UPLOAD_TOO_LARGE: EXIT.network,
  CLP_E_UNSUPPORTED_MEDIA_TYPE: EXIT.network,
  CLP_E_BAD_BLOB_ID: EXIT.network,
  CLP_E_RANGE_NOT_SATISFIABLE: EXIT.network,
  CLP_E_ENROLLMENT_TOKEN: EXIT.network,
  CLP_E_RELEASE_YANKED: EXIT.network,
  CLP_E_ROLLOUT_STATE: EXIT.network,
  CLP_E_ADMIN_UNREACHABLE: EXIT.network,
  CLP_E_ADMIN_SERVER_FAILED: EXIT.network,
  CLP_E_ADMIN_NO_SERVER: EXIT.usage,
  CLP_E_ADMIN_NO_TOKEN: EXIT.usage,
  CLP_E_ADMIN_AMBIGUOUS: EXIT.usage,
  CLP_E_ADMIN_BAD_OPTION: EXIT.usage,
};

export function exitCodeFor(code: string): ExitCode {
  return (TABLE as Record<string, ExitCode>)[code] ?? EXIT.internal;
}
