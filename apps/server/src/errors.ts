import { ClpError, type FormatErrorCode } from '@clp/format';
import type { TrustErrorCode } from '@clp/trust';

export const SERVER_ERROR_CODES = [
  'CLP_E_VALIDATION',
  'CLP_E_UNAUTHORIZED',
  'CLP_E_FORBIDDEN',
  'CLP_E_CSRF',
  'CLP_E_RATE_LIMITED',
  'CLP_E_NOT_FOUND',
  'CLP_E_CONFLICT',
  'CLP_E_UPLOAD_TOO_LARGE',
  'CLP_E_UNSUPPORTED_MEDIA_TYPE',
  'CLP_E_BAD_BLOB_ID',
  'CLP_E_RANGE_NOT_SATISFIABLE',
  'CLP_E_ENROLLMENT_TOKEN',
  'CLP_E_RELEASE_YANKED',
  'CLP_E_ROLLOUT_STATE',
  'CLP_E_UNAVAILABLE',
  'CLP_E_DATA_DIR_IN_USE',
  'CLP_E_INTERNAL',
] as const;

export type ServerErrorCode = (typeof SERVER_ERROR_CODES)[number];

export class ServerError extends ClpError<ServerErrorCode> {
  /** The request field at fault, for validation errors. */
  readonly field: string | undefined;

  constructor(
    code: ServerErrorCode,
    message: string,
    options: { cause?: unknown; details?: Record<string, unknown>; field?: string } = {},
  ) {
    super(code, message, options);
    this.name = 'ServerError';
    this.field = options.field;
  }
}

type KnownCode = ServerErrorCode | FormatErrorCode | TrustErrorCode;

/** Every code the server can answer with, mapped to an HTTP status (exhaustive by type). */
const STATUS: Record<KnownCode, number> = {
  CLP_E_VALIDATION: 400,
  CLP_E_UNAUTHORIZED: 401,
  CLP_E_FORBIDDEN: 403,
  // A cookie request without the session's CSRF token, or from another origin.
  CLP_E_CSRF: 403,
  CLP_E_RATE_LIMITED: 429,
  CLP_E_NOT_FOUND: 404,
  CLP_E_CONFLICT: 409,
  CLP_E_UPLOAD_TOO_LARGE: 413,
  CLP_E_UNSUPPORTED_MEDIA_TYPE: 415,
  CLP_E_BAD_BLOB_ID: 400,
  CLP_E_RANGE_NOT_SATISFIABLE: 416,
  CLP_E_ENROLLMENT_TOKEN: 401,
  CLP_E_RELEASE_YANKED: 409,
  CLP_E_ROLLOUT_STATE: 409,
  CLP_E_UNAVAILABLE: 503,
  // Only at start (the server refuses to run); never an HTTP answer.
  CLP_E_DATA_DIR_IN_USE: 500,
  CLP_E_INTERNAL: 500,
  // A hostile or malformed archive is the client's fault: 422 Unprocessable Content.
  CLP_E_NOT_AN_ARCHIVE: 422,
  CLP_E_TRUNCATED: 422,
  CLP_E_CORRUPT_ENTRY: 422,
  CLP_E_PATH_TRAVERSAL: 422,
  CLP_E_ABSOLUTE_PATH: 422,
  CLP_E_BAD_PATH: 422,
  CLP_E_LINK_ENTRY: 422,
  CLP_E_SPECIAL_ENTRY: 422,
  CLP_E_DUPLICATE_ENTRY: 422,
  CLP_E_TOO_MANY_ENTRIES: 422,
  CLP_E_TOO_LARGE: 422,
  CLP_E_ZIP_BOMB: 422,
  CLP_E_ENCRYPTED_ENTRY: 422,
  CLP_E_UNSUPPORTED_COMPRESSION: 422,
  CLP_E_MISSING_PKGINFO: 422,
  CLP_E_PKGINFO_TOO_LARGE: 422,
  CLP_E_XML_MALFORMED: 422,
  CLP_E_XML_DTD: 422,
  CLP_E_XML_ENTITY: 422,
  CLP_E_PKGINFO_INVALID: 422,
  CLP_E_BAD_NAME: 422,
  CLP_E_MISSING_SOURCE: 422,
  CLP_E_HASH_MISMATCH: 422,
  CLP_E_SIZE_MISMATCH: 422,
  CLP_E_EMPTY_PATCH: 422,
  CLP_E_SOURCE_DIR: 422,
  // Signature problems: the archive is well formed but not acceptable here.
  CLP_E_UNSIGNED: 422,
  CLP_E_SIGNATURE_INVALID: 422,
  CLP_E_UNKNOWN_KEY: 422,
  CLP_E_REVOKED_KEY: 422,
  CLP_E_MANIFEST_MISMATCH: 422,
  CLP_E_KEY_INVALID: 422,
  CLP_E_KEY_EXISTS: 409,
  CLP_E_KEY_NOT_FOUND: 422,
};

/** The HTTP status for an error code; unknown codes are a server bug (500). */
export function httpStatusFor(code: string): number {
  return (STATUS as Record<string, number>)[code] ?? 500;
}
