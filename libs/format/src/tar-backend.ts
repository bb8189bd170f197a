import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { PassThrough, pipeline, Readable, Transform, type TransformCallback } from 'node:stream';
import { createGunzip } from 'node:zlib';
import tar from 'tar-stream';
import type { ArchiveBackend, RawEntry } from './backend.ts';
import { checkEntryName, EntryNameSet } from './entry-name.ts';
import { FormatError, isClpError } from './errors.ts';
import { checkEntrySize, LimitTally } from './limit-checks.ts';
import type { ArchiveLimits } from './limits.ts';

/** Room for tar headers and padding on top of the entries' own bytes. */
const TAR_OVERHEAD = 1024 * 1024;

function tarError(error: unknown, archive: string, entry?: string, sawHeader = true): FormatError {
  if (isClpError(error)) return error as FormatError;
  const message = error instanceof Error ? error.message : String(error);
  const where = entry === undefined ? archive : `${archive}: entry ${entry}`;
  const details = { archive, ...(entry === undefined ? {} : { entry }) };
  if (/unexpected end|end of file|premature|truncat|EOF/i.test(message)) {
    return new FormatError('CLP_E_TRUNCATED', `${where} is cut short (${message}); download it again`, {
      cause: error,
      details,
    });
  }
  if (
    /header check|not in gzip format|unknown compression/i.test(message) ||
    (!sawHeader && /invalid tar header/i.test(message))
  ) {
    return new FormatError(
      'CLP_E_NOT_AN_ARCHIVE',
      `${where} is not a gzip-compressed tar archive (${message})`,
      {
        cause: error,
        details,
      },
    );
  }
  return new FormatError('CLP_E_CORRUPT_ENTRY', `${where} is damaged (${message}); download it again`, {
    cause: error,
    details,
  });
}

/**
 * Counts the bytes gunzip produces: tar declares each entry's size, but the gzip stream around
 * it could inflate without end, so the whole archive is held to the size and ratio limits too.
 */
class InflationGuard extends Transform {
  #total = 0;
  readonly #max: number;
  readonly #archive: string;
  readonly #limits: ArchiveLimits;
  readonly #compressedSize: number;

  constructor(archive: string, compressedSize: number, limits: ArchiveLimits) {
    super();
    this.#archive = archive;
    this.#limits = limits;
    this.#compressedSize = compressedSize;
    this.#max = limits.maxTotalSize + TAR_OVERHEAD;
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, done: TransformCallback): void {
    this.#total += chunk.length;
    const ratio = this.#total / Math.max(this.#compressedSize, 1);
    if (
      this.#total > this.#max ||
      (this.#total > this.#limits.ratioThreshold && ratio > this.#limits.maxRatio)
    ) {
      done(
        new FormatError(
          'CLP_E_ZIP_BOMB',
          `${this.#archive} inflates ${this.#compressedSize} bytes to more than ${this.#total}; refused as a compression bomb`,
          {
            details: { archive: this.#archive, compressedSize: this.#compressedSize, inflated: this.#total },
          },
        ),
      );
      return;
    }
    done(null, chunk);
  }
}

interface TarEntryHeader {
  name: string;
  size?: number;
  mode?: number;
  type?: string | null;
}

type TarVisit = (header: TarEntryHeader, data: Readable) => Promise<'stop' | undefined>;

/** One pass over the archive; `visit` must consume or resume `data`. */
async function scanTar(file: string, limits: ArchiveLimits, visit: TarVisit): Promise<void> {
  const compressedSize = (await stat(file)).size;
  const source = createReadStream(file);
  const extract = tar.extract();
  let failure: unknown;
  let sawHeader = false;
  pipeline(source, createGunzip(), new InflationGuard(file, compressedSize, limits), extract, (error) => {
    if (error && !failure) failure = error;
  });
  try {
    for await (const entry of extract) {
      sawHeader = true;
      const verdict = await visit(entry.header as TarEntryHeader, entry as unknown as Readable);
      if (verdict === 'stop') break;
    }
  } catch (error) {
    throw tarError(failure ?? error, file, undefined, sawHeader);
  } finally {
    source.destroy();
    extract.destroy();
  }
  if (failure && !(failure instanceof Error && /premature close/i.test(failure.message)))
    throw tarError(failure, file);
}

function normalTarName(name: string): string {
  return name.startsWith('./') ? name.slice(2) : name;
}

/**
 * Small top-level entries (PKGINFO.meta, SIGNATURE, scripts) are kept from the listing pass: every
 * open reads PKGINFO.meta and a verify reads SIGNATURE, and tar has no index to jump to them.
 */
const KEEP_TOTAL_BYTES = 4 * 1024 * 1024;

export async function openTarGz(file: string, limits: ArchiveLimits): Promise<ArchiveBackend> {
  const entries: RawEntry[] = [];
  const kept = new Map<string, Buffer>();
  let keptBytes = 0;
  const names = new EntryNameSet(file);
  const tally = new LimitTally(file, limits);
  let count = 0;
  const listEntry = (header: TarEntryHeader): RawEntry | undefined => {
    const rawName = normalTarName(header.name);
    if (rawName === '' || rawName === '.' || rawName === './') return undefined;
    if (++count > limits.maxEntries) {
      throw new FormatError(
        'CLP_E_TOO_MANY_ENTRIES',
        `${file} holds more than ${limits.maxEntries} entries`,
        {
          details: { archive: file, limit: limits.maxEntries },
        },
      );
    }
    const name = checkEntryName(rawName, file);
    const details = { archive: file, entry: name };
    switch (header.type ?? 'file') {
      case 'directory':
        names.addFolder(name);
        return undefined;
      case 'file':
      case 'contiguous-file':
        break;
      case 'symlink':
      case 'link':
        throw new FormatError(
          'CLP_E_LINK_ENTRY',
          `${file}: entry ${name} is a link; patches carry regular files only`,
          {
            details,
          },
        );
      default:
        throw new FormatError(
          'CLP_E_SPECIAL_ENTRY',
          `${file}: entry ${name} is a ${header.type}; patches carry regular files only`,
          { details },
        );
    }
    const size = header.size ?? 0;
    names.addFile(name);
    checkEntrySize(file, name, size, size, limits);
    tally.add(name, size);
    return { name, size, compressedSize: size, mode: (header.mode ?? 0o644) & 0o7777 || 0o644 };
  };
  await scanTar(file, limits, async (header, data) => {
    const entry = listEntry(header);
    if (entry) entries.push(entry);
    const keep =
      entry !== undefined &&
      !entry.name.includes('/') &&
      entry.size <= limits.maxMetaSize &&
      keptBytes + entry.size <= KEEP_TOTAL_BYTES;
    if (!keep) {
      data.resume();
      return undefined;
    }
    const chunks: Buffer[] = [];
    for await (const chunk of data) chunks.push(chunk as Buffer);
    const bytes = Buffer.concat(chunks);
    keptBytes += bytes.length;
    kept.set(entry.name, bytes);
    return undefined;
  });
  names.finish();
  return new TarBackend(file, limits, entries, kept);
}

class TarBackend implements ArchiveBackend {
  readonly kind = 'tar.gz' as const;
  readonly entries: readonly RawEntry[];
  readonly #file: string;
  readonly #limits: ArchiveLimits;
  readonly #kept: ReadonlyMap<string, Buffer>;

  constructor(file: string, limits: ArchiveLimits, entries: RawEntry[], kept: ReadonlyMap<string, Buffer>) {
    this.#file = file;
    this.#limits = limits;
    this.entries = entries;
    this.#kept = kept;
  }

  async open(entry: RawEntry): Promise<Readable> {
    const kept = this.#kept.get(entry.name);
    if (kept) return Readable.from(kept.length > 0 ? [kept] : [], { objectMode: false });
    const out = new PassThrough();
    let found = false;
    const scanned = scanTar(this.#file, this.#limits, async (header, data) => {
      if (normalTarName(header.name) !== entry.name || found) {
        data.resume();
        return undefined;
      }
      found = true;
      await new Promise<void>((resolve, reject) => {
        data.on('error', reject);
        data.on('end', resolve);
        out.on('close', resolve);
        data.pipe(out);
      });
      return 'stop';
    });
    scanned.then(
      () => {
        if (!found) out.destroy(this.#missing(entry.name));
      },
      (error: unknown) => out.destroy(tarError(error, this.#file, entry.name)),
    );
    return out;
  }

  async visitEntries(
    choose: (entry: RawEntry) => boolean,
    visit: (entry: RawEntry, data: Readable) => Promise<void>,
  ) {
    const byName = new Map(this.entries.map((e) => [e.name, e]));
    await scanTar(this.#file, this.#limits, async (header, data) => {
      const entry = byName.get(normalTarName(header.name));
      if (!entry || !choose(entry)) {
        data.resume();
        return undefined;
      }
      await visit(entry, data);
      return undefined;
    });
  }

  async close(): Promise<void> {}

  #missing(name: string): FormatError {
    return new FormatError(
      'CLP_E_CORRUPT_ENTRY',
      `${this.#file}: entry ${name} vanished on a second read; the file changed`,
      {
        details: { archive: this.#file, entry: name },
      },
    );
  }
}
