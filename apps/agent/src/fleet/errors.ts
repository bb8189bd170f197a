import { ClpError } from '@clp/format';

/** Codes of the fleet half of clpctl: configuration, enrollment, polling, downloads, reports. */
export const FLEET_ERROR_CODES = [
  'CLP_E_CONFIG_INVALID',
  'CLP_E_CONFIG_KEY',
  'CLP_E_NOT_ENROLLED',
  'CLP_E_ALREADY_ENROLLED',
  'CLP_E_UNSUPPORTED_ARCH',
  'CLP_E_SERVER_UNREACHABLE',
  'CLP_E_SERVER_REJECTED',
  'CLP_E_SERVER_PROTOCOL',
  'CLP_E_DOWNLOAD_FAILED',
  'CLP_E_DOWNLOAD_CORRUPT',
  'CLP_E_UPDATE_BUSY',
  'CLP_E_INSECURE_HTTP',
  'CLP_E_CA_FILE',
] as const;

export type FleetErrorCode = (typeof FLEET_ERROR_CODES)[number];

export class FleetError extends ClpError<FleetErrorCode> {
  constructor(
    code: FleetErrorCode,
    message: string,
    options?: { cause?: unknown; details?: Record<string, unknown> },
  ) {
    super(code, message, options);
    this.name = 'FleetError';
  }
}
