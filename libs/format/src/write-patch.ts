import { randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { open, rename, rm, stat } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { deflateRawSync } from 'node:zlib';
import yazl from 'yazl';
import { checkEntryName, EntryNameSet } from './entry-name.ts';
import { ClpError, FormatError } from './errors.ts';

export interface EntrySource {
  /** The entry name inside the archive ('/'-separated, relative). */
  name: string;
  /** Read the bytes from this file (streamed)… */
  file?: string;
  /** …or take them from memory. */
  data?: Buffer;
  /** Permission bits; default 0644. */
  mode?: number;
}

/** A fixed timestamp keeps archives reproducible: the same folder gives the same bytes. */
const FIXED_MTIME = new Date(Date.UTC(2020, 0, 1));
const ALREADY_COMPRESSED = /\.(?:zst|gz|xz|bz2|lz4|zip|clp|deb|rpm|jpe?g|png|gif|webp|mp[34]|7z)$/i;

/**
 * Writes a .clp (zip) from files and buffers, streamed, into a temporary file beside `file` that is
 * fsynced and renamed over it: a reader never sees half an archive, and `file` may be an input.
 */
export async function writePatch(file: string, entries: readonly EntrySource[]): Promise<void> {
  const names = new EntryNameSet(file);
  for (const entry of entries) {
    if (checkEntryName(entry.name, file) !== entry.name) {
      throw new FormatError(
        'CLP_E_BAD_PATH',
        `${file}: entry name ${JSON.stringify(entry.name)} must not end with '/'`,
        {
          details: { archive: file, entry: entry.name },
        },
      );
    }
    names.addFile(entry.name);
    if ((entry.file === undefined) === (entry.data === undefined)) {
      throw new TypeError(`writePatch: entry ${entry.name} needs exactly one of file or data`);
    }
  }
  names.finish();
  for (const entry of entries) {
    if (entry.file !== undefined) await requireRegularFile(entry.file, entry.name);
  }
  const zip = new yazl.ZipFile();
  for (const entry of entries) {
    const options = {
      mtime: FIXED_MTIME,
      mode: 0o100000 | ((entry.mode ?? 0o644) & 0o7777),
      compress: await worthCompressing(entry),
    };
    if (entry.data !== undefined) zip.addBuffer(entry.data, entry.name, options);
    else zip.addReadStreamLazy(entry.name, options, (done) => done(null, createReadStream(entry.file!)));
  }
  zip.end();
  const temp = join(dirname(file), `.${basename(file)}.${randomBytes(6).toString('hex')}.part`);
  try {
    await pipeline(zip.outputStream, createWriteStream(temp, { flags: 'wx', mode: 0o644 }));
    const handle = await open(temp, 'r');
    try {
      await handle.sync();
    } finally {
      await handle.close();
    }
    await rename(temp, file);
  } catch (error) {
    await rm(temp, { force: true });
    throw error;
  }
}

async function requireRegularFile(file: string, name: string): Promise<void> {
  let regular = false;
  try {
    regular = (await stat(file)).isFile();
  } catch (error) {
    throw new ClpError(
      'CLP_E_NOT_FOUND',
      `${file} (for entry ${name}) cannot be read: ${(error as Error).message}`,
      {
        cause: error,
        details: { file, entry: name },
      },
    );
  }
  if (!regular) {
    throw new ClpError('CLP_E_NOT_FOUND', `${file} (for entry ${name}) is not a regular file`, {
      details: { file, entry: name },
    });
  }
}

const SAMPLE_BYTES = 64 * 1024;

/**
 * Deflate only pays when it shrinks the data: a large entry whose first 64 KiB do not shrink by
 * 5 % is stored, so that installing it does not spend time inflating what was never smaller.
 */
async function worthCompressing(entry: EntrySource): Promise<boolean> {
  if (ALREADY_COMPRESSED.test(entry.name)) return false;
  let sample: Buffer;
  if (entry.data !== undefined) sample = entry.data.subarray(0, SAMPLE_BYTES);
  else {
    const handle = await open(entry.file!, 'r');
    try {
      const buffer = Buffer.alloc(SAMPLE_BYTES);
      const { bytesRead } = await handle.read(buffer, 0, SAMPLE_BYTES, 0);
      sample = buffer.subarray(0, bytesRead);
    } finally {
      await handle.close();
    }
  }
  if (sample.length < 4096) return true;
  return deflateRawSync(sample, { level: 1 }).length < sample.length * 0.95;
}
