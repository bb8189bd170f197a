import { FormatError } from './errors.ts';
import type { ArchiveLimits } from './limits.ts';

/** Refuses an entry whose declared size or compression ratio breaks the limits. */
export function checkEntrySize(
  archive: string,
  entry: string,
  size: number,
  compressedSize: number,
  limits: ArchiveLimits,
) {
  const details = { archive, entry, size, limit: limits.maxEntrySize };
  if (size > limits.maxEntrySize) {
    throw new FormatError(
      'CLP_E_TOO_LARGE',
      `${archive}: entry ${entry} is ${size} bytes; one entry may hold at most ${limits.maxEntrySize}`,
      { details },
    );
  }
  if (size > limits.ratioThreshold && size / Math.max(compressedSize, 1) > limits.maxRatio) {
    throw new FormatError(
      'CLP_E_ZIP_BOMB',
      `${archive}: entry ${entry} inflates ${compressedSize} bytes to ${size} (more than ${limits.maxRatio}:1); refused as a zip bomb`,
      { details: { archive, entry, size, compressedSize, maxRatio: limits.maxRatio } },
    );
  }
}

/** Adds up entry sizes against the archive-wide limit. */
export class LimitTally {
  #total = 0;
  readonly #archive: string;
  readonly #limits: ArchiveLimits;

  constructor(archive: string, limits: ArchiveLimits) {
    this.#archive = archive;
    this.#limits = limits;
  }

  add(entry: string, size: number): void {
    this.#total += size;
    if (this.#total > this.#limits.maxTotalSize) {
      throw new FormatError(
        'CLP_E_TOO_LARGE',
        `${this.#archive}: the entries hold more than ${this.#limits.maxTotalSize} bytes together (reached at ${entry})`,
        { details: { archive: this.#archive, entry, limit: this.#limits.maxTotalSize } },
      );
    }
  }
}
