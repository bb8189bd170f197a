import { createReadStream } from 'node:fs';
import { link, mkdir, open, readdir, rename, rm, stat, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import type { Readable } from 'node:stream';

const SHA256 = /^[0-9a-f]{64}$/;
const READ_CHUNK = 1024 * 1024;

/** Content-addressed storage of release files. Ids are sha256 hex digests, nothing else. */
export interface BlobStore {
  readonly kind: 'folder' | 'postgres';
  /**
   * Stores a finished temporary file under its sha256 (a duplicate is dropped) and removes the
   * temporary file. When it returns, the blob survives a crash: the release row may commit.
   */
  put(sha256: string, tempFile: string): Promise<void>;
  /** Size in bytes, or undefined when absent. */
  size(sha256: string): Promise<number | undefined>;
  /** A stream of bytes [start, end] inclusive, memory bounded whatever the size. */
  read(sha256: string, range?: { start: number; end: number }): Readable;
  /** Removes a blob (one that lost a race for its release's name). */
  remove(sha256: string): Promise<void>;
  /** A local folder for uploads in progress. */
  readonly tempDir: string;
}

export function isSha256(id: string): boolean {
  return SHA256.test(id);
}

/** An upload untouched for this long is abandoned, even if another server shares the folder. */
const ABANDONED_AFTER_MS = 60 * 60_000;

/**
 * Removes abandoned uploads from `tempDir`: all of them when this process owns the folder
 * alone, else those untouched for an hour (another server may be receiving the rest).
 */
export async function cleanUploads(tempDir: string, ownsFolder: boolean, now = Date.now()): Promise<number> {
  let removed = 0;
  for (const name of await readdir(tempDir).catch(() => [] as string[])) {
    if (!name.startsWith('upload-')) continue;
    const file = join(tempDir, name);
    const info = await stat(file).catch(() => undefined);
    if (!info?.isFile()) continue;
    if (!ownsFolder && now - info.mtimeMs < ABANDONED_AFTER_MS) continue;
    await rm(file, { force: true });
    removed++;
  }
  return removed;
}

/** Flushes a file or folder to the disk (the data, or the names a folder holds). */
async function fsyncPath(path: string): Promise<void> {
  const handle = await open(path, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/** Blobs in DIR/ab/abcdef…: a shared folder lets several server instances serve the same files. */
export class FolderBlobStore implements BlobStore {
  readonly kind = 'folder' as const;
  readonly root: string;
  readonly tempDir: string;

  constructor(root: string) {
    this.root = root;
    this.tempDir = join(root, 'tmp');
  }

  async init(): Promise<void> {
    await mkdir(this.tempDir, { recursive: true });
  }

  #path(sha256: string): string {
    // Checked again here so that no caller can turn an id into a path outside the store.
    if (!isSha256(sha256)) throw new Error(`not a sha256: ${JSON.stringify(sha256.slice(0, 80))}`);
    return join(this.root, sha256.slice(0, 2), sha256);
  }

  async put(sha256: string, tempFile: string): Promise<void> {
    const target = this.#path(sha256);
    const shard = join(this.root, sha256.slice(0, 2));
    // The bytes reach the disk before the name does, and the name before the release row.
    await fsyncPath(tempFile);
    const madeShard = (await mkdir(shard, { recursive: true })) !== undefined;
    if (madeShard) await fsyncPath(this.root);
    try {
      // link() fails when the blob exists, so a finished blob is never replaced under a reader.
      await link(tempFile, target);
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (code === 'EEXIST') {
        await unlink(tempFile);
        return;
      }
      if (code !== 'EPERM' && code !== 'ENOTSUP' && code !== 'EXDEV') throw error;
      await rename(tempFile, target);
      await fsyncPath(shard);
      return;
    }
    await fsyncPath(shard);
    await unlink(tempFile);
  }

  async size(sha256: string): Promise<number | undefined> {
    try {
      const s = await stat(this.#path(sha256));
      return s.isFile() ? s.size : undefined;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw error;
    }
  }

  read(sha256: string, range?: { start: number; end: number }): Readable {
    // 1 MiB reads: less CPU per download than the 64 KiB default, bounded memory per stream.
    const highWaterMark = READ_CHUNK;
    return createReadStream(
      this.#path(sha256),
      range ? { start: range.start, end: range.end, highWaterMark } : { highWaterMark },
    );
  }

  async remove(sha256: string): Promise<void> {
    await rm(this.#path(sha256), { force: true });
  }
}
