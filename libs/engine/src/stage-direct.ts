/**
 * Staging a new file straight from the patch: each is created once, beside its target in the
 * pinned target folder, with O_CREAT|O_EXCL|O_NOFOLLOW (nothing that is there is followed or
 * overwritten), filled with the entry's checked bytes, and given its owner and mode through that
 * same descriptor. There is no copy in the transaction folder to link, re-open or fsync by path.
 *
 * Small entries are read several at a time into memory and written only once their sha256 matched
 * the signed manifest, with synchronous calls: the event loop has nothing else to do meanwhile,
 * and each call saves a round trip through the thread pool. Large entries stream through the
 * check, so a mismatch is found after their last byte was written; the staged file is then removed
 * by the rollback, like any staged file (the `begin` journal entry names it).
 *
 * Durability: a batch of fewer than SYNCFS_MIN_FILES files fsyncs each file; a larger batch makes
 * them all durable with one syncfs per filesystem (durable.ts), after the last one is written and
 * before any rename. Either way every staged file is durable before runFileBatch renames the first.
 */
import {
  closeSync,
  constants,
  fchmodSync,
  fchownSync,
  fstatSync,
  fsyncSync,
  openSync,
  writeSync,
} from 'node:fs';
import { type FileHandle, open } from 'node:fs/promises';
import type { EntryDigest, PatchArchive } from '@clp/format';
import type { FileIdentity } from './backup.ts';
import type { PinnedDir } from './pinned-dir.ts';

/** From this many new files on, one syncfs per filesystem replaces an fsync of each. */
export const SYNCFS_MIN_FILES = 64;
/** Large files start their writeback every so many bytes, while the rest is still being written. */
const WRITEBACK_BYTES = 64 * 1024 * 1024;
const CREATE_FLAGS = constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW;

/** What staging needs of an opened patch. */
export type StagingArchive = Pick<PatchArchive, 'readVerified' | 'writeVerified'>;

/** Writes a checked small file to NAME in a pinned folder; fsyncs it unless the batch syncs its filesystem. */
export function writeSmallStaged(
  dir: PinnedDir,
  name: string,
  data: Buffer,
  identity: FileIdentity,
  fsyncEach: boolean,
): void {
  const fd = openSync(dir.at(name), CREATE_FLAGS, 0o600);
  try {
    for (let at = 0; at < data.length; ) at += writeSync(fd, data, at, data.length - at);
    // chown first: it clears set-id bits that the mode may ask for.
    fchownSync(fd, identity.uid, identity.gid);
    fchmodSync(fd, identity.mode);
    if (fsyncEach) fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/** Streams a large entry to NAME in a pinned folder, starting its writeback as it goes. */
export async function writeLargeStaged(
  archive: StagingArchive,
  expected: ReadonlyMap<string, EntryDigest>,
  entry: string,
  dir: PinnedDir,
  name: string,
  identity: FileIdentity,
  fsyncEach: boolean,
): Promise<void> {
  const fh = await open(dir.at(name), CREATE_FLAGS, 0o600);
  try {
    let position = 0;
    let unsynced = 0;
    let writeback: Promise<void> | null = null;
    let writebackError: unknown = null;
    await archive.writeVerified(entry, expected, async (chunk) => {
      for (let at = 0; at < chunk.length; ) {
        const { bytesWritten } = await fh.write(chunk, at, chunk.length - at, position + at);
        at += bytesWritten;
      }
      position += chunk.length;
      unsynced += chunk.length;
      // The disk writes what is done while the rest is still hashed and copied, so the final
      // fsync finds little left; one at a time, and writing never waits for it.
      if (unsynced >= WRITEBACK_BYTES && writeback === null) {
        unsynced = 0;
        writeback = fh.datasync().then(
          () => {
            writeback = null;
          },
          (error: unknown) => {
            writebackError ??= error;
            writeback = null;
          },
        );
      }
    });
    await writeback;
    if (writebackError !== null) throw writebackError;
    await fh.chown(identity.uid, identity.gid);
    await fh.chmod(identity.mode);
    if (fsyncEach) await fh.sync();
  } finally {
    await fh.close();
  }
}

/**
 * One open descriptor per filesystem that received staged files, for its syncfs; the descriptor
 * is a second one of a pinned folder, so the filesystem is the one written to, whatever paths
 * lead to now.
 */
export class StagedFilesystems {
  readonly #byDevice = new Map<number, { handle: FileHandle; where: string }>();

  async remember(dir: PinnedDir): Promise<void> {
    const dev = fstatSync(dir.fd).dev;
    if (this.#byDevice.has(dev)) return;
    const handle = await open(dir.at('.'), constants.O_RDONLY | constants.O_DIRECTORY);
    if (this.#byDevice.has(dev)) await handle.close();
    else this.#byDevice.set(dev, { handle, where: dir.path });
  }

  entries(): Array<{ fd: number; where: string }> {
    return [...this.#byDevice.values()].map((f) => ({ fd: f.handle.fd, where: f.where }));
  }

  async close(): Promise<void> {
    await Promise.all([...this.#byDevice.values()].map((f) => f.handle.close()));
    this.#byDevice.clear();
  }
}
