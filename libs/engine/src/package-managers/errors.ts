import { ClpError } from '@clp/format';

export const PACKAGE_ERROR_CODES = [
  /** The package tool (pacman, dpkg, dpkg-deb, bsdtar) failed or is not installed. */
  'CLP_E_PACKAGE_MANAGER_FAILED',
  /** No package file for the wanted name/version in the patch, the cache or at the URL. */
  'CLP_E_PACKAGE_NOT_FOUND',
  /** A version without its release number matches several package files; each is named. */
  'CLP_E_PACKAGE_AMBIGUOUS',
  /** The installed version cannot be kept for undo and the caller did not allow that. */
  'CLP_E_PACKAGE_IRREVERSIBLE',
  /** A package file's name or version differs from the action's. */
  'CLP_E_PACKAGE_MISMATCH',
  /** No supported package manager on this root, or the preferred one is unknown. */
  'CLP_E_NO_PACKAGE_MANAGER',
  /** A downloaded package file's sha256 differs from the action's. */
  'CLP_E_PACKAGE_HASH_MISMATCH',
  /** The package file could not be downloaded from the action's URL. */
  'CLP_E_PACKAGE_DOWNLOAD_FAILED',
  /** The action's URL (or a redirect) is not https:// (plain http:// only when allowed). */
  'CLP_E_PACKAGE_URL_REFUSED',
  /** The download is larger than the action's signed size or the configured cap; nothing of it was kept. */
  'CLP_E_PACKAGE_TOO_LARGE',
] as const;

export type PackageErrorCode = (typeof PACKAGE_ERROR_CODES)[number];

export class PackageError extends ClpError<PackageErrorCode> {
  constructor(
    code: PackageErrorCode,
    message: string,
    options?: { cause?: unknown; details?: Record<string, unknown> },
  ) {
    super(code, message, options);
    this.name = 'PackageError';
  }
}
