/** Limits every archive must stay within; they are part of the format (docs/patch-format.md). */
export interface ArchiveLimits {
  /** Most entries (files and folders) an archive may list. */
  maxEntries: number;
  /** Most bytes all entries may hold together, uncompressed. */
  maxTotalSize: number;
  /** Most bytes one entry may hold, uncompressed. */
  maxEntrySize: number;
  /** Highest uncompressed:compressed ratio for entries larger than `ratioThreshold`. */
  maxRatio: number;
  /** Entries up to this size are not held to `maxRatio` (small files compress well). */
  ratioThreshold: number;
  /** Most bytes PKGINFO.meta may hold. */
  maxMetaSize: number;
}

const MiB = 1024 * 1024;
const GiB = 1024 * MiB;

export const DEFAULT_LIMITS: Readonly<ArchiveLimits> = Object.freeze({
  maxEntries: 10_000,
  maxTotalSize: 4 * GiB,
  maxEntrySize: 2 * GiB,
  maxRatio: 200,
  ratioThreshold: MiB,
  maxMetaSize: MiB,
});

export function resolveLimits(limits: Partial<ArchiveLimits> | undefined): ArchiveLimits {
  return { ...DEFAULT_LIMITS, ...limits };
}
