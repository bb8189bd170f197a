import type { FileHandle } from 'node:fs/promises';
import type { Readable } from 'node:stream';

/** One file entry of an archive, as its headers declare it (checked against the limits). */
export interface RawEntry {
  name: string;
  size: number;
  compressedSize: number;
  /** Permission bits (0o644 when the archive does not say). */
  mode: number;
  /** Zip only: the CRC-32 the entry declares, checked while it is read. */
  crc32?: number;
}

/** What an archive format gives the patch reader: its file entries and their bytes, streamed. */
export interface ArchiveBackend {
  readonly kind: 'zip' | 'tar.gz';
  readonly entries: readonly RawEntry[];
  /** Streams one entry's raw bytes (not yet checked: the caller pipes them through an EntryGuard). */
  open(entry: RawEntry): Promise<Readable>;
  /** Streams the chosen entries in archive order, one at a time. */
  visitEntries(
    choose: (entry: RawEntry) => boolean,
    visit: (entry: RawEntry, data: Readable) => Promise<void>,
  ): Promise<void>;
  /**
   * Zip only: the raw bytes of each entry (stored, or deflated when `deflated`), read in a few
   * large reads of neighbouring entries instead of two small ones per entry. Not yet checked.
   */
  readRaw?(
    entries: readonly RawEntry[],
    visit: (entry: RawEntry, raw: Buffer, deflated: boolean) => Promise<void> | void,
  ): Promise<void>;
  /** Zip only: where a stored entry's bytes lie in the archive file, to be read straight from it. */
  storedRange?(entry: RawEntry): Promise<{ handle: FileHandle; start: number; size: number } | null>;
  close(): Promise<void>;
}
