import { ClpError } from '@clp/format';

export const TRUST_ERROR_CODES = [
  'CLP_E_UNSIGNED',
  'CLP_E_SIGNATURE_INVALID',
  'CLP_E_UNKNOWN_KEY',
  'CLP_E_REVOKED_KEY',
  'CLP_E_MANIFEST_MISMATCH',
  'CLP_E_KEY_INVALID',
  'CLP_E_KEY_EXISTS',
  'CLP_E_KEY_NOT_FOUND',
] as const;

export type TrustErrorCode = (typeof TRUST_ERROR_CODES)[number];

export class TrustError extends ClpError<TrustErrorCode> {
  constructor(
    code: TrustErrorCode,
    message: string,
    options?: { cause?: unknown; details?: Record<string, unknown> },
  ) {
    super(code, message, options);
    this.name = 'TrustError';
  }
}
