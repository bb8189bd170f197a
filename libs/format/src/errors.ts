/**
 * Every expected failure in Core LivePatch is a ClpError with a stable string code.
 * Libraries extend the code union with their own codes; the agent and the server map
 * codes to exit codes and HTTP statuses in one exhaustive switch each.
 */
export class ClpError<C extends string = string> extends Error {
  readonly code: C;
  /** Extra facts for --json output and logs (entry name, expected hash, …). */
  declare readonly details: Readonly<Record<string, unknown>>;

  constructor(
    code: C,
    message: string,
    options: { cause?: unknown; details?: Record<string, unknown> } = {},
  ) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'ClpError';
    this.code = code;
    Object.defineProperty(this, 'details', { value: options.details ?? {}, enumerable: false });
  }
}

export const FORMAT_ERROR_CODES = [
  'CLP_E_NOT_AN_ARCHIVE',
  'CLP_E_TRUNCATED',
  'CLP_E_CORRUPT_ENTRY',
  'CLP_E_PATH_TRAVERSAL',
  'CLP_E_ABSOLUTE_PATH',
  'CLP_E_BAD_PATH',
  'CLP_E_LINK_ENTRY',
  'CLP_E_SPECIAL_ENTRY',
  'CLP_E_DUPLICATE_ENTRY',
  'CLP_E_TOO_MANY_ENTRIES',
  'CLP_E_TOO_LARGE',
  'CLP_E_ZIP_BOMB',
  'CLP_E_ENCRYPTED_ENTRY',
  'CLP_E_UNSUPPORTED_COMPRESSION',
  'CLP_E_MISSING_PKGINFO',
  'CLP_E_PKGINFO_TOO_LARGE',
  'CLP_E_XML_MALFORMED',
  'CLP_E_XML_DTD',
  'CLP_E_XML_ENTITY',
  'CLP_E_PKGINFO_INVALID',
  'CLP_E_BAD_NAME',
  'CLP_E_MISSING_SOURCE',
  'CLP_E_HASH_MISMATCH',
  'CLP_E_SIZE_MISMATCH',
  'CLP_E_EMPTY_PATCH',
  'CLP_E_SOURCE_DIR',
] as const;

export type FormatErrorCode = (typeof FORMAT_ERROR_CODES)[number];

export class FormatError extends ClpError<FormatErrorCode> {
  constructor(
    code: FormatErrorCode,
    message: string,
    options?: { cause?: unknown; details?: Record<string, unknown> },
  ) {
    super(code, message, options);
    this.name = 'FormatError';
  }
}

/** True for any ClpError, also across bundles where instanceof may not hold. */
export function isClpError(error: unknown): error is ClpError {
  return (
    error instanceof Error &&
    typeof (error as unknown as { code?: unknown }).code === 'string' &&
    (error as unknown as { code: string }).code.startsWith('CLP_E_')
  );
}
