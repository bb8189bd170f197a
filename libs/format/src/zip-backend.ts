import { closeSync, createReadStream, fstatSync, openSync } from 'node:fs';
import { type FileHandle, open } from 'node:fs/promises';
import { PassThrough, type Readable } from 'node:stream';
import yauzl from 'yauzl';
import type { ArchiveBackend, RawEntry } from './backend.ts';
import { checkEntryName, EntryNameSet } from './entry-name.ts';
import { FormatError, isClpError } from './errors.ts';
import { checkEntrySize, LimitTally } from './limit-checks.ts';
import type { ArchiveLimits } from './limits.ts';
import { WindowedFileReader } from './windowed-reader.ts';

const UNIX = 3;
const MACOS = 19;
const S_IFMT = 0o170000;
const S_IFREG = 0o100000;
const S_IFDIR = 0o040000;
const S_IFLNK = 0o120000;
const STORED = 0;
const VISIT_CONCURRENCY = 8;
const LARGE_STORED = 1024 * 1024;
const DIRECT_CHUNK = 1024 * 1024;
const DEFLATED = 8;
const LOCAL_SIGNATURE = 0x04034b50;
/** How much of the archive one read of neighbouring small entries takes at most. */
const RAW_WINDOW = 1024 * 1024;
/** Entries further apart than this are read separately rather than reading the bytes between. */
const RAW_GAP = 64 * 1024;
/** Room for the local header's extra field, which the central directory does not give. */
const LOCAL_EXTRA_ROOM = 256;

/** Maps yauzl's and zlib's errors to the format's codes; the message keeps their words. */
export function zipError(error: unknown, archive: string, entry?: string): FormatError {
  if (error instanceof FormatError) return error;
  if (isClpError(error)) return error as FormatError;
  const message = error instanceof Error ? error.message : String(error);
  const where = entry === undefined ? archive : `${archive}: entry ${entry}`;
  const details = { archive, ...(entry === undefined ? {} : { entry }) };
  if (/too many bytes/i.test(message)) {
    return new FormatError('CLP_E_ZIP_BOMB', `${where} inflates beyond its declared size (${message})`, {
      cause: error,
      details,
    });
  }
  if (/EOF|not enough bytes|unexpected end|truncat|beyond|out of range|past the end/i.test(message)) {
    return new FormatError('CLP_E_TRUNCATED', `${where} is cut short (${message}); download it again`, {
      cause: error,
      details,
    });
  }
  if (
    entry !== undefined ||
    /invalid (?:stored|distance|code|block)|incorrect|header check|data error/i.test(message)
  ) {
    return new FormatError('CLP_E_CORRUPT_ENTRY', `${where} is damaged (${message}); download it again`, {
      cause: error,
      details,
    });
  }
  return new FormatError('CLP_E_NOT_AN_ARCHIVE', `${where} is not a readable zip archive (${message})`, {
    cause: error,
    details,
  });
}

export async function openZip(file: string, limits: ArchiveLimits): Promise<ArchiveBackend> {
  let zip: yauzl.ZipFile;
  try {
    // Entry sizes are enforced by EntryGuard while reading, with coded errors naming the entry.
    zip = await openWindowed(file, {
      autoClose: false,
      decodeStrings: false,
      validateEntrySizes: false,
    });
  } catch (error) {
    throw zipError(error, file);
  }
  try {
    const entries = await readCentralDirectory(zip, file, limits);
    return new ZipBackend(zip, file, entries);
  } catch (error) {
    zip.close();
    throw zipError(error, file);
  }
}

/** yauzl over a WindowedFileReader: the central directory comes in one read, not two per entry. */
async function openWindowed(file: string, options: yauzl.Options): Promise<yauzl.ZipFile> {
  // A plain descriptor, not a FileHandle: the reader closes it when the zip is closed.
  const fd = openSync(file, 'r');
  try {
    const size = fstatSync(fd).size;
    return await yauzl.fromRandomAccessReaderPromise(new WindowedFileReader(fd, size), size, options);
  } catch (error) {
    closeSync(fd);
    throw error;
  }
}

interface ZipRawEntry extends RawEntry {
  zipEntry: yauzl.Entry;
}

async function readCentralDirectory(
  zip: yauzl.ZipFile,
  file: string,
  limits: ArchiveLimits,
): Promise<ZipRawEntry[]> {
  if (zip.entryCount > limits.maxEntries) tooMany(file, zip.entryCount, limits);
  const entries: ZipRawEntry[] = [];
  const names = new EntryNameSet(file);
  const tally = new LimitTally(file, limits);
  const extents: Extent[] = [];
  let count = 0;
  for await (const e of zip.eachEntry()) {
    if (++count > limits.maxEntries) tooMany(file, count, limits);
    const raw = yauzl.getFileNameLowLevel(e.generalPurposeBitFlag, e.fileNameRaw, e.extraFields, true);
    const name = checkEntryName(raw, file);
    extents.push({
      name,
      start: e.relativeOffsetOfLocalHeader,
      end: e.relativeOffsetOfLocalHeader + LOCAL_HEADER_SIZE + e.fileNameLength + e.compressedSize,
    });
    // Unix and macOS zips keep st_mode in the high half; others leave it 0. Any other value there is
    // read as a mode too, so that an unknown file type is refused rather than trusted.
    const host = e.versionMadeBy >> 8;
    const high = e.externalFileAttributes >>> 16;
    const unixMode = host === UNIX || host === MACOS || high !== 0 ? high : 0;
    const type = unixMode & S_IFMT;
    const details = { archive: file, entry: name };
    if (type === S_IFLNK) {
      throw new FormatError(
        'CLP_E_LINK_ENTRY',
        `${file}: entry ${name} is a symbolic link; patches carry regular files only`,
        {
          details,
        },
      );
    }
    if (type !== 0 && type !== S_IFREG && type !== S_IFDIR) {
      throw new FormatError(
        'CLP_E_SPECIAL_ENTRY',
        `${file}: entry ${name} is a device, socket or pipe (mode ${type.toString(8)}); patches carry regular files only`,
        { details },
      );
    }
    if (raw.endsWith('/') || type === S_IFDIR) {
      names.addFolder(name);
      continue;
    }
    if ((e.generalPurposeBitFlag & 1) !== 0) {
      throw new FormatError(
        'CLP_E_ENCRYPTED_ENTRY',
        `${file}: entry ${name} is encrypted; patches are signed, not encrypted`,
        {
          details,
        },
      );
    }
    if (e.compressionMethod !== STORED && e.compressionMethod !== DEFLATED) {
      throw new FormatError(
        'CLP_E_UNSUPPORTED_COMPRESSION',
        `${file}: entry ${name} uses compression method ${e.compressionMethod}; only stored (0) and deflate (8) are read`,
        { details: { ...details, method: e.compressionMethod } },
      );
    }
    if (e.compressionMethod === STORED && e.compressedSize !== e.uncompressedSize) {
      throw new FormatError(
        'CLP_E_CORRUPT_ENTRY',
        `${file}: entry ${name} is stored uncompressed but declares ${e.compressedSize} stored and ${e.uncompressedSize} real bytes`,
        { details },
      );
    }
    names.addFile(name);
    checkEntrySize(file, name, e.uncompressedSize, e.compressedSize, limits);
    tally.add(name, e.uncompressedSize);
    entries.push({
      name,
      size: e.uncompressedSize,
      compressedSize: e.compressedSize,
      mode: (unixMode & 0o7777) === 0 ? 0o644 : unixMode & 0o7777,
      crc32: e.crc32,
      zipEntry: e,
    });
  }
  names.finish();
  checkNoOverlap(file, extents);
  return entries;
}

const LOCAL_HEADER_SIZE = 30;

interface Extent {
  name: string;
  start: number;
  /** A lower bound: the local header's extra field is not counted. */
  end: number;
}

/** Entries sharing bytes let a small archive expand many times over (the overlapping zip bomb). */
function checkNoOverlap(file: string, extents: Extent[]): void {
  const sorted = [...extents].sort((a, b) => a.start - b.start);
  for (let i = 1; i < sorted.length; i++) {
    const previous = sorted[i - 1]!;
    const current = sorted[i]!;
    if (current.start < previous.end) {
      throw new FormatError(
        'CLP_E_ZIP_BOMB',
        `${file}: entries ${previous.name} and ${current.name} share bytes in the archive; overlapping entries are refused as a zip bomb`,
        { details: { archive: file, entry: current.name, overlaps: previous.name } },
      );
    }
  }
}

function tooMany(file: string, count: number, limits: ArchiveLimits): never {
  throw new FormatError(
    'CLP_E_TOO_MANY_ENTRIES',
    `${file} lists ${count} entries; the limit is ${limits.maxEntries}`,
    { details: { archive: file, count, limit: limits.maxEntries } },
  );
}

class ZipBackend implements ArchiveBackend {
  readonly kind = 'zip' as const;
  readonly entries: readonly ZipRawEntry[];
  readonly #zip: yauzl.ZipFile;
  readonly #file: string;
  #handle: Promise<FileHandle> | undefined;

  constructor(zip: yauzl.ZipFile, file: string, entries: ZipRawEntry[]) {
    this.#zip = zip;
    this.#file = file;
    this.entries = entries;
  }

  async open(entry: RawEntry): Promise<Readable> {
    const zipEntry = (entry as ZipRawEntry).zipEntry;
    let stream: Readable;
    try {
      stream =
        zipEntry.compressionMethod === STORED && entry.size >= LARGE_STORED
          ? await this.#openStoredDirect(zipEntry)
          : await this.#zip.openReadStreamPromise(zipEntry);
    } catch (error) {
      throw zipError(error, this.#file, entry.name);
    }
    return mapStreamErrors(stream, (error) => zipError(error, this.#file, entry.name));
  }

  /**
   * A large stored entry is read straight from the file in big chunks: its bytes are the entry's,
   * and EntryGuard still checks their count and digest.
   */
  async #openStoredDirect(zipEntry: yauzl.Entry): Promise<Readable> {
    const { fileDataStart } = await this.#zip.readLocalFileHeaderPromise(zipEntry, { minimal: true });
    return createReadStream(this.#file, {
      start: fileDataStart,
      end: fileDataStart + zipEntry.compressedSize - 1,
      highWaterMark: DIRECT_CHUNK,
    });
  }

  /** Entries are visited several at a time: small files cost round trips, not bandwidth. */
  async visitEntries(
    choose: (entry: RawEntry) => boolean,
    visit: (entry: RawEntry, data: Readable) => Promise<void>,
  ): Promise<void> {
    const chosen = this.entries.filter(choose);
    let next = 0;
    let failed = false;
    const worker = async (): Promise<void> => {
      while (!failed && next < chosen.length) {
        const entry = chosen[next++]!;
        try {
          await visit(entry, await this.open(entry));
        } catch (error) {
          failed = true;
          throw error;
        }
      }
    };
    const results = await Promise.allSettled(
      Array.from({ length: Math.min(VISIT_CONCURRENCY, chosen.length) }, worker),
    );
    const rejected = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (rejected) throw rejected.reason;
  }

  #rawHandle(): Promise<FileHandle> {
    this.#handle ??= open(this.#file, 'r');
    return this.#handle;
  }

  async readRaw(
    entries: readonly RawEntry[],
    visit: (entry: RawEntry, raw: Buffer, deflated: boolean) => Promise<void> | void,
  ): Promise<void> {
    const handle = await this.#rawHandle();
    const sorted = [...(entries as readonly ZipRawEntry[])].sort(
      (a, b) => a.zipEntry.relativeOffsetOfLocalHeader - b.zipEntry.relativeOffsetOfLocalHeader,
    );
    const reach = (e: ZipRawEntry): number =>
      e.zipEntry.relativeOffsetOfLocalHeader +
      LOCAL_HEADER_SIZE +
      e.zipEntry.fileNameLength +
      LOCAL_EXTRA_ROOM +
      e.compressedSize;
    for (let i = 0; i < sorted.length; ) {
      const start = sorted[i]!.zipEntry.relativeOffsetOfLocalHeader;
      let end = reach(sorted[i]!);
      let j = i + 1;
      while (
        j < sorted.length &&
        sorted[j]!.zipEntry.relativeOffsetOfLocalHeader - end <= RAW_GAP &&
        reach(sorted[j]!) - start <= RAW_WINDOW
      ) {
        end = Math.max(end, reach(sorted[j]!));
        j++;
      }
      const window = await readAt(handle, start, Math.min(end, this.#zip.fileSize) - start);
      for (const entry of sorted.slice(i, j)) {
        const raw = await this.#rawOf(handle, entry, window, start);
        await visit(entry, raw, entry.zipEntry.compressionMethod === DEFLATED);
      }
      i = j;
    }
  }

  /** The entry's raw bytes, from the window when its local header and data lie in it. */
  async #rawOf(handle: FileHandle, entry: ZipRawEntry, window: Buffer, windowStart: number): Promise<Buffer> {
    const at = entry.zipEntry.relativeOffsetOfLocalHeader - windowStart;
    if (window.length < at + LOCAL_HEADER_SIZE) throw this.#cutShort(entry);
    if (window.readUInt32LE(at) !== LOCAL_SIGNATURE) {
      throw new FormatError(
        'CLP_E_CORRUPT_ENTRY',
        `${this.#file}: entry ${entry.name} has no local header where the central directory puts it; the archive is damaged, download it again`,
        { details: { archive: this.#file, entry: entry.name } },
      );
    }
    const dataAt = at + LOCAL_HEADER_SIZE + window.readUInt16LE(at + 26) + window.readUInt16LE(at + 28);
    if (windowStart + dataAt + entry.compressedSize > this.#zip.fileSize) throw this.#cutShort(entry);
    if (dataAt + entry.compressedSize <= window.length)
      return window.subarray(dataAt, dataAt + entry.compressedSize);
    // A local extra field larger than the room left for it: this entry is read on its own.
    return readAt(handle, windowStart + dataAt, entry.compressedSize);
  }

  #cutShort(entry: RawEntry): FormatError {
    return new FormatError(
      'CLP_E_CORRUPT_ENTRY',
      `${this.#file}: entry ${entry.name} lies beyond the end of the archive; the archive is damaged or cut short, download it again`,
      { details: { archive: this.#file, entry: entry.name } },
    );
  }

  async storedRange(entry: RawEntry): Promise<{ handle: FileHandle; start: number; size: number } | null> {
    const zipEntry = (entry as ZipRawEntry).zipEntry;
    if (zipEntry.compressionMethod !== STORED) return null;
    let header: { fileDataStart: number };
    try {
      header = await this.#zip.readLocalFileHeaderPromise(zipEntry, { minimal: true });
    } catch (error) {
      throw zipError(error, this.#file, entry.name);
    }
    return { handle: await this.#rawHandle(), start: header.fileDataStart, size: zipEntry.compressedSize };
  }

  async close(): Promise<void> {
    if (this.#zip.isOpen) this.#zip.close();
    const handle = this.#handle;
    this.#handle = undefined;
    if (handle !== undefined)
      await handle.then(
        (h) => h.close(),
        () => {},
      );
  }
}

/** Reads `length` bytes at `position`, fewer only at the end of the file. */
async function readAt(handle: FileHandle, position: number, length: number): Promise<Buffer> {
  const buffer = Buffer.allocUnsafe(Math.max(0, length));
  let filled = 0;
  while (filled < buffer.length) {
    const { bytesRead } = await handle.read(buffer, filled, buffer.length - filled, position + filled);
    if (bytesRead === 0) break;
    filled += bytesRead;
  }
  return buffer.subarray(0, filled);
}

/** Passes a stream through, turning its errors into coded ones; destroying it stops the source. */
export function mapStreamErrors(source: Readable, map: (error: unknown) => Error): Readable {
  const out = new PassThrough();
  source.on('error', (error) => {
    if (!out.destroyed) out.destroy(map(error));
  });
  // The error may come before the consumer attaches its pipeline; the stream keeps it as its
  // `errored` state, which pipeline() and finished() report, so this listener loses nothing.
  out.on('error', () => {});
  out.on('close', () => {
    source.unpipe(out);
    if (!source.destroyed) source.destroy();
  });
  source.pipe(out);
  return out;
}
