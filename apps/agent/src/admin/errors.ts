import { ClpError } from '@clp/format';

/**
 * Codes of `clpctl admin`. The first group are the server's own API error codes (the HTTP
 * contract of /v1): a 4xx answer is shown with the server's code and message as they are.
 * The last group are the command line's own failures.
 */
export const ADMIN_ERROR_CODES = [
  'CLP_E_VALIDATION',
  'CLP_E_UNAUTHORIZED',
  'CLP_E_FORBIDDEN',
  'CLP_E_RATE_LIMITED',
  'CLP_E_CONFLICT',
  'CLP_E_UPLOAD_TOO_LARGE',
  'CLP_E_UNSUPPORTED_MEDIA_TYPE',
  'CLP_E_BAD_BLOB_ID',
  'CLP_E_RANGE_NOT_SATISFIABLE',
  'CLP_E_ENROLLMENT_TOKEN',
  'CLP_E_RELEASE_YANKED',
  'CLP_E_ROLLOUT_STATE',
  'CLP_E_ADMIN_UNREACHABLE',
  'CLP_E_ADMIN_SERVER_FAILED',
  'CLP_E_ADMIN_NO_SERVER',
  'CLP_E_ADMIN_NO_TOKEN',
  'CLP_E_ADMIN_AMBIGUOUS',
  'CLP_E_ADMIN_BAD_OPTION',
] as const;

export type AdminErrorCode = (typeof ADMIN_ERROR_CODES)[number];

export class AdminError extends ClpError<AdminErrorCode> {
  constructor(
    code: AdminErrorCode,
    message: string,
    options?: { cause?: unknown; details?: Record<string, unknown> },
  ) {
    super(code, message, options);
    this.name = 'AdminError';
  }
}

export function isAdminErrorCode(code: string): code is AdminErrorCode {
  return (ADMIN_ERROR_CODES as readonly string[]).includes(code);
}
