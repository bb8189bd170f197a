import { createHash } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { type FileHandle, mkdir, open as openFile, rm, stat } from 'node:fs/promises';
import { dirname, join, resolve, sep } from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { inflateRawSync } from 'node:zlib';
import type { ArchiveBackend, RawEntry } from './backend.ts';
import { EntryCheck, type EntryDigest, EntryGuard } from './entry-guard.ts';
import { ClpError, FormatError, isClpError } from './errors.ts';
import { type ArchiveLimits, resolveLimits } from './limits.ts';
import type { PatchMeta } from './model.ts';
import { PKGINFO_ENTRY, readPatchMeta } from './read-patch-meta.ts';
import { openTarGz } from './tar-backend.ts';
import { openZip, zipError } from './zip-backend.ts';

export interface PatchEntry {
  readonly name: string;
  readonly size: number;
  readonly compressedSize: number;
  readonly mode: number;
}

export interface ExtractOptions {
  /** Extract only the entries this returns true for (default: all). */
  only?: (name: string) => boolean;
  /** Each extracted entry must match its digest here, checked while it streams; others are refused. */
  expected?: ReadonlyMap<string, EntryDigest>;
}

/** An opened, checked .clp: every entry name and size obeys the limits and PKGINFO.meta is valid. */
export interface PatchArchive {
  readonly file: string;
  readonly kind: 'zip' | 'tar.gz';
  readonly meta: PatchMeta;
  /** sha256 (hex) of the PKGINFO.meta bytes `meta` was parsed from. */
  readonly metaSha256: string;
  /** File entries (folders are implied by the names), in archive order. */
  readonly entries: readonly PatchEntry[];
  has(name: string): boolean;
  readEntry(name: string, maxBytes: number): Promise<Buffer>;
  /** The entry's bytes, checked (size, CRC) as they stream: the stream errors with a coded error. */
  openEntryStream(name: string): Promise<Readable>;
  hashEntries(): Promise<Map<string, EntryDigest>>;
  extractTo(dir: string, options?: ExtractOptions): Promise<void>;
  /**
   * The content of small entries (at most SMALL_ENTRY_BYTES each), each checked against its
   * digest in `expected` before `visit` sees it; neighbouring entries are read together.
   */
  readVerified(
    names: readonly string[],
    expected: ReadonlyMap<string, EntryDigest>,
    visit: (name: string, data: Buffer) => Promise<void> | void,
  ): Promise<void>;
  /**
   * Streams one entry's content into `write`, in chunks of up to 1 MiB, checking it against its
   * digest in `expected` as it goes. The sha256 is known only at the end: on a mismatch this
   * throws after the last write, and the caller removes what it wrote. A chunk belongs to the
   * caller only until its write settles.
   */
  writeVerified(
    name: string,
    expected: ReadonlyMap<string, EntryDigest>,
    write: (chunk: Buffer) => Promise<void>,
  ): Promise<void>;
  close(): Promise<void>;
}

export interface OpenPatchOptions {
  limits?: Partial<ArchiveLimits>;
}

/** The largest entry readVerified holds in memory; larger ones go through writeVerified. */
export const SMALL_ENTRY_BYTES = 1024 * 1024;
const CHUNK_BYTES = 1024 * 1024;

const ZIP_MAGIC = [0x50, 0x4b];
const GZIP_MAGIC = [0x1f, 0x8b];

/** Opens a .clp (zip, or the historic tar.gz), checking every entry and PKGINFO.meta. */
export async function openPatch(file: string, options: OpenPatchOptions = {}): Promise<PatchArchive> {
  const limits = resolveLimits(options.limits);
  const backend = await openBackend(file, limits);
  try {
    const { meta, sha256 } = await readMeta(backend, file, limits);
    return new OpenedPatch(file, backend, meta, sha256);
  } catch (error) {
    await backend.close();
    throw error;
  }
}

async function openBackend(file: string, limits: ArchiveLimits): Promise<ArchiveBackend> {
  let head: Buffer;
  try {
    const info = await stat(file);
    if (!info.isFile()) {
      throw new FormatError(
        'CLP_E_NOT_AN_ARCHIVE',
        `${file} is not a regular file; give the path of a .clp file`,
        {
          details: { archive: file },
        },
      );
    }
    const handle = await openFile(file, 'r');
    try {
      head = Buffer.alloc(4);
      await handle.read(head, 0, 4, 0);
    } finally {
      await handle.close();
    }
  } catch (error) {
    if (isClpError(error)) throw error;
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') {
      throw new ClpError('CLP_E_NOT_FOUND', `${file} does not exist`, { details: { file } });
    }
    throw new FormatError('CLP_E_NOT_AN_ARCHIVE', `${file} cannot be read: ${(error as Error).message}`, {
      cause: error,
      details: { archive: file },
    });
  }
  if (head[0] === ZIP_MAGIC[0] && head[1] === ZIP_MAGIC[1]) return openZip(file, limits);
  if (head[0] === GZIP_MAGIC[0] && head[1] === GZIP_MAGIC[1]) return openTarGz(file, limits);
  throw new FormatError(
    'CLP_E_NOT_AN_ARCHIVE',
    `${file} is neither a zip nor a gzip-compressed tar archive; a .clp is a zip made by 'clpctl create'`,
    { details: { archive: file } },
  );
}

async function readMeta(
  backend: ArchiveBackend,
  file: string,
  limits: ArchiveLimits,
): Promise<{ meta: PatchMeta; sha256: string }> {
  const entry = backend.entries.find((e) => e.name === PKGINFO_ENTRY);
  if (!entry) {
    throw new FormatError(
      'CLP_E_MISSING_PKGINFO',
      `${file} has no ${PKGINFO_ENTRY}; every patch needs one at its top level`,
      {
        details: { archive: file, entry: PKGINFO_ENTRY },
      },
    );
  }
  if (entry.size > limits.maxMetaSize) {
    throw new FormatError(
      'CLP_E_PKGINFO_TOO_LARGE',
      `${file}: ${PKGINFO_ENTRY} is ${entry.size} bytes; the limit is ${limits.maxMetaSize}`,
      { details: { archive: file, entry: PKGINFO_ENTRY, size: entry.size, limit: limits.maxMetaSize } },
    );
  }
  const bytes = await readAll(backend, file, entry);
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    throw new FormatError('CLP_E_XML_MALFORMED', `${file}: ${PKGINFO_ENTRY} is not valid UTF-8 text`, {
      details: { archive: file, entry: PKGINFO_ENTRY },
    });
  }
  const meta = readPatchMeta(
    text,
    backend.entries.map((e) => e.name),
  );
  return { meta, sha256: createHash('sha256').update(bytes).digest('hex') };
}

function guardFor(file: string, entry: RawEntry, expected?: EntryDigest): EntryGuard {
  return new EntryGuard({
    archive: file,
    entry: entry.name,
    declaredSize: entry.size,
    // The CRC-32 guards unsigned reads; with a signed sha256 to match it adds nothing.
    ...(entry.crc32 === undefined || expected !== undefined ? {} : { declaredCrc32: entry.crc32 }),
    ...(expected === undefined ? {} : { expected }),
  });
}

async function readAll(
  backend: ArchiveBackend,
  file: string,
  entry: RawEntry,
  expected?: EntryDigest,
): Promise<Buffer> {
  const guard = guardFor(file, entry, expected);
  const chunks: Buffer[] = [];
  guard.on('data', (c: Buffer) => chunks.push(c));
  await pipeline(await backend.open(entry), guard);
  return Buffer.concat(chunks);
}

class OpenedPatch implements PatchArchive {
  readonly file: string;
  readonly kind: 'zip' | 'tar.gz';
  readonly meta: PatchMeta;
  readonly metaSha256: string;
  readonly entries: readonly PatchEntry[];
  readonly #backend: ArchiveBackend;
  readonly #byName: ReadonlyMap<string, RawEntry>;

  constructor(file: string, backend: ArchiveBackend, meta: PatchMeta, metaSha256: string) {
    this.file = file;
    this.kind = backend.kind;
    this.meta = meta;
    this.metaSha256 = metaSha256;
    this.#backend = backend;
    this.entries = backend.entries.map(({ name, size, compressedSize, mode }) => ({
      name,
      size,
      compressedSize,
      mode,
    }));
    this.#byName = new Map(backend.entries.map((e) => [e.name, e]));
  }

  has(name: string): boolean {
    return this.#byName.has(name);
  }

  #entry(name: string): RawEntry {
    const entry = this.#byName.get(name);
    if (!entry) {
      throw new ClpError('CLP_E_NOT_FOUND', `${this.file} has no entry ${name}`, {
        details: { archive: this.file, entry: name },
      });
    }
    return entry;
  }

  async readEntry(name: string, maxBytes: number): Promise<Buffer> {
    const entry = this.#entry(name);
    if (entry.size > maxBytes) {
      throw new FormatError(
        'CLP_E_TOO_LARGE',
        `${this.file}: entry ${name} is ${entry.size} bytes; at most ${maxBytes} expected`,
        {
          details: { archive: this.file, entry: name, size: entry.size, limit: maxBytes },
        },
      );
    }
    return readAll(this.#backend, this.file, entry);
  }

  async openEntryStream(name: string): Promise<Readable> {
    const entry = this.#entry(name);
    const guard = guardFor(this.file, entry);
    const source = await this.#backend.open(entry);
    source.on('error', (error) => guard.destroy(error));
    guard.on('close', () => {
      if (!source.destroyed) source.destroy();
    });
    return source.pipe(guard);
  }

  async hashEntries(): Promise<Map<string, EntryDigest>> {
    const digests = new Map<string, EntryDigest>();
    await this.#backend.visitEntries(
      () => true,
      async (entry, data) => {
        const guard = guardFor(this.file, entry);
        guard.resume();
        await pipeline(data, guard);
        digests.set(entry.name, guard.digest);
      },
    );
    return digests;
  }

  async extractTo(dir: string, options: ExtractOptions = {}): Promise<void> {
    const root = resolve(dir);
    const only = options.only ?? (() => true);
    const expected = options.expected;
    if (expected) {
      for (const entry of this.#backend.entries) {
        if (only(entry.name) && !expected.has(entry.name)) {
          throw new FormatError(
            'CLP_E_HASH_MISMATCH',
            `${this.file}: entry ${entry.name} is not in the signed manifest; refusing to extract it`,
            { details: { archive: this.file, entry: entry.name } },
          );
        }
      }
    }
    await mkdir(root, { recursive: true });
    const made = new Map<string, Promise<unknown>>();
    const makeFolder = (folder: string): Promise<unknown> => {
      let done = made.get(folder);
      if (!done) {
        done = mkdir(folder, { recursive: true });
        made.set(folder, done);
      }
      return done;
    };
    await this.#backend.visitEntries(
      (entry) => only(entry.name),
      async (entry, data) => {
        const target = join(root, ...entry.name.split('/'));
        if (!target.startsWith(root + sep)) {
          throw new FormatError(
            'CLP_E_PATH_TRAVERSAL',
            `${this.file}: entry ${entry.name} would land outside ${root}`,
            {
              details: { archive: this.file, entry: entry.name },
            },
          );
        }
        await makeFolder(dirname(target));
        const guard = guardFor(this.file, entry, expected?.get(entry.name));
        const out = createWriteStream(target, { flags: 'wx', mode: entry.mode & 0o755 });
        let created = false;
        out.on('open', () => {
          created = true;
        });
        try {
          await pipeline(data, guard, out);
        } catch (error) {
          // Only what this call created is removed: 'wx' refuses to touch a file that was there.
          if (created) await rm(target, { force: true });
          // Filesystem errors (ENOSPC, EACCES, …) keep their errno code: the caller knows the context.
          throw error;
        }
      },
    );
  }

  #signed(
    name: string,
    expected: ReadonlyMap<string, EntryDigest>,
  ): { entry: RawEntry; digest: EntryDigest } {
    const entry = this.#entry(name);
    const digest = expected.get(name);
    if (digest === undefined) {
      throw new FormatError(
        'CLP_E_HASH_MISMATCH',
        `${this.file}: entry ${name} is not in the signed manifest; refusing to extract it`,
        { details: { archive: this.file, entry: name } },
      );
    }
    return { entry, digest };
  }

  async readVerified(
    names: readonly string[],
    expected: ReadonlyMap<string, EntryDigest>,
    visit: (name: string, data: Buffer) => Promise<void> | void,
  ): Promise<void> {
    const entries = names.map((name) => {
      const { entry } = this.#signed(name, expected);
      if (entry.size > SMALL_ENTRY_BYTES)
        throw new RangeError(`readVerified: entry ${name} is larger than ${SMALL_ENTRY_BYTES} bytes`);
      return entry;
    });
    const checked = (entry: RawEntry, data: Buffer): Buffer => {
      const check = new EntryCheck({
        archive: this.file,
        entry: entry.name,
        declaredSize: entry.size,
        expected: expected.get(entry.name) as EntryDigest,
      });
      check.update(data);
      check.finish();
      return data;
    };
    if (this.#backend.readRaw === undefined) {
      for (const entry of entries)
        await visit(
          entry.name,
          checked(entry, await readAll(this.#backend, this.file, entry, expected.get(entry.name))),
        );
      return;
    }
    await this.#backend.readRaw(entries, (entry, raw, deflated) =>
      visit(entry.name, checked(entry, deflated ? this.#inflate(entry, raw) : raw)),
    );
  }

  /** Inflates a small entry at once, never to more than it declares (the bomb guard). */
  #inflate(entry: RawEntry, raw: Buffer): Buffer {
    try {
      return inflateRawSync(raw, { maxOutputLength: Math.max(1, entry.size) });
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ERR_BUFFER_TOO_LARGE') {
        throw new FormatError(
          'CLP_E_ZIP_BOMB',
          `${this.file}: entry ${entry.name} inflates beyond its declared size of ${entry.size} bytes`,
          { cause: error, details: { archive: this.file, entry: entry.name } },
        );
      }
      throw zipError(error, this.file, entry.name);
    }
  }

  async writeVerified(
    name: string,
    expected: ReadonlyMap<string, EntryDigest>,
    write: (chunk: Buffer) => Promise<void>,
  ): Promise<void> {
    const { entry, digest } = this.#signed(name, expected);
    const check = new EntryCheck({
      archive: this.file,
      entry: name,
      declaredSize: entry.size,
      expected: digest,
    });
    const range = await this.#backend.storedRange?.(entry);
    if (range) {
      await copyRange(range, check, write);
    } else {
      const source = await this.#backend.open(entry);
      for await (const chunk of source) {
        check.update(chunk as Buffer);
        await write(chunk as Buffer);
      }
    }
    check.finish();
  }

  close(): Promise<void> {
    return this.#backend.close();
  }
}

/**
 * Reads a stored entry straight from the archive into `write`, three chunks in turn: while one
 * chunk is hashed here, the next is read and the previous written in the thread pool, so the
 * slower of hashing and copying bounds the time, not their sum. A buffer is read into again only
 * once its write has settled.
 */
async function copyRange(
  range: { handle: FileHandle; start: number; size: number },
  check: EntryCheck,
  write: (chunk: Buffer) => Promise<void>,
): Promise<void> {
  const buffers = [0, 1, 2].map(() => Buffer.allocUnsafeSlow(Math.min(CHUNK_BYTES, Math.max(1, range.size))));
  const readInto = (i: number, offset: number): Promise<number> => {
    const buffer = buffers[i % 3] as Buffer;
    const length = Math.min(buffer.length, range.size - offset);
    return range.handle.read(buffer, 0, length, range.start + offset).then((r) => r.bytesRead);
  };
  let offset = 0;
  let writing: Promise<void> = Promise.resolve();
  let reading: Promise<number> | null = range.size > 0 ? readInto(0, 0) : null;
  try {
    for (let i = 0; reading !== null; i++) {
      const bytes = await reading;
      reading = null;
      if (bytes === 0) break; // the check reports the missing bytes
      const chunk = (buffers[i % 3] as Buffer).subarray(0, bytes);
      offset += bytes;
      if (offset < range.size) reading = readInto(i + 1, offset);
      check.update(chunk);
      await writing;
      writing = write(chunk);
    }
    await writing;
  } catch (error) {
    // Nothing may still use a buffer, or reject unheard, once this returns.
    await Promise.allSettled([writing, reading ?? Promise.resolve(0)]);
    throw error;
  }
}
