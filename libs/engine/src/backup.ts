import { constants, type Stats } from 'node:fs';
import {
  copyFile,
  type FileHandle,
  link,
  lstat,
  open,
  readlink,
  rename,
  symlink,
  unlink,
} from 'node:fs/promises';
import { join } from 'node:path';
import { EngineError } from './errors.ts';
import { kindOf } from './own-files.ts';
import type { PinnedDir } from './pinned-dir.ts';

export interface FileIdentity {
  mode: number;
  uid: number;
  gid: number;
}

const READ_NOFOLLOW = constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK;

/** The path of an open file as the kernel knows it: opening it again reaches this very inode. */
export function procPathOf(fh: FileHandle): string {
  return `/proc/self/fd/${fh.fd}`;
}

async function lstatOrNull(path: string): Promise<Stats | null> {
  try {
    return await lstat(path);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return null;
    throw error;
  }
}

export async function unlinkIfThere(path: string): Promise<void> {
  // Looked up first: on a read-only filesystem unlink() fails with EROFS even for a missing name.
  if ((await lstatOrNull(path)) === null) return;
  try {
    await unlink(path);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
  }
}

function notRegular(path: string, st: Stats, what: string): EngineError {
  return new EngineError(
    'CLP_E_TARGET_NOT_FILE',
    `${path} is a ${kindOf(st)} now, not a regular file; ${what}; move it away and run the command again`,
    { details: { path, kind: kindOf(st) } },
  );
}

/**
 * Backs up the regular file NAME of a pinned folder to `backupPath`: a hard link when both are on
 * one filesystem (the original inode stays untouched once the new file is renamed over it), else
 * a copy read through a descriptor opened without following links, fsynced and renamed into
 * place, so a backup under its final name is always complete. A backup is never a link: what was
 * linked is checked after linking, and removed again when it is not a regular file.
 * The caller fsyncs the backup folder once for a whole batch.
 */
export async function takeBackup(
  dir: PinnedDir,
  name: string,
  backupPath: string,
  subject: string,
): Promise<void> {
  await unlinkIfThere(backupPath);
  try {
    await link(dir.at(name), backupPath);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EXDEV') throw error;
    await copyRegular(dir.at(name), backupPath, subject);
    return;
  }
  const st = await lstat(backupPath);
  if (!st.isFile()) {
    await unlink(backupPath);
    throw notRegular(subject, st, 'it was not backed up and nothing was changed');
  }
}

/** Copies a regular file (never following a link at `from`) to `to` through `to.part`, fsynced. */
async function copyRegular(from: string, to: string, subject: string): Promise<void> {
  const src = await open(from, READ_NOFOLLOW).catch(async (error: NodeJS.ErrnoException) => {
    const st = await lstatOrNull(from);
    throw st !== null && !st.isFile() ? notRegular(subject, st, 'nothing was changed') : error;
  });
  const part = `${to}.part`;
  try {
    const st = await src.stat();
    if (!st.isFile()) throw notRegular(subject, st, 'nothing was changed');
    await unlinkIfThere(part);
    await copyFile(procPathOf(src), part, constants.COPYFILE_EXCL);
    const copy = await open(part, constants.O_RDONLY | constants.O_NOFOLLOW);
    try {
      await copy.sync();
    } finally {
      await copy.close();
    }
    await rename(part, to);
  } catch (error) {
    await unlinkIfThere(part).catch(() => {});
    throw error;
  } finally {
    await src.close();
  }
}

/**
 * Sets mode and owner through a descriptor and makes them durable: never by path, which would
 * follow whatever link was put at the path meanwhile. chown first, since it clears set-id bits.
 */
export async function setIdentity(fh: FileHandle, identity: FileIdentity): Promise<void> {
  await fh.chown(identity.uid, identity.gid);
  await fh.chmod(identity.mode);
  await fh.sync();
}

/**
 * Places a new file at NAME in a pinned folder, made from `source` (one of the engine's own files)
 * with the given identity: a hard link of the source (whose mode and owner are set through its
 * own descriptor first), or, when the source is needed again or lies on another filesystem, a copy
 * created with O_EXCL and set up through its own descriptor. An existing NAME is never followed
 * or overwritten (link and O_EXCL fail on it).
 */
export async function placeFile(
  source: string,
  dir: PinnedDir,
  name: string,
  identity: FileIdentity,
  mayLink: boolean,
): Promise<void> {
  let src: FileHandle;
  try {
    src = await open(source, READ_NOFOLLOW);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ELOOP') throw error;
    // Only a backup taken by an older engine can be a link: it is put back as the same link,
    // which is not followed, instead of leaving the file it stood for unrecoverable.
    await symlink(await readlink(source), dir.at(name));
    return;
  }
  try {
    const sst = await src.stat();
    if (!sst.isFile()) throw notRegular(source, sst, 'clp only restores regular files');
    if (mayLink) {
      await setIdentity(src, identity);
      let linked = true;
      await link(source, dir.at(name)).catch((error: NodeJS.ErrnoException) => {
        if (error.code !== 'EXDEV') throw error;
        linked = false;
      });
      if (linked) {
        // The source lives in clp's own folder, which only root writes; checked all the same.
        const placed = await lstat(dir.at(name));
        if (placed.ino === sst.ino && placed.dev === sst.dev) return;
        await unlink(dir.at(name));
        throw new EngineError(
          'CLP_E_APPLY_FAILED',
          `${source} changed while it was being placed; run the command again`,
          {
            details: { path: source },
          },
        );
      }
    }
    await copyFile(procPathOf(src), dir.at(name), constants.COPYFILE_EXCL);
    const copy = await open(dir.at(name), constants.O_RDONLY | constants.O_NOFOLLOW);
    try {
      await setIdentity(copy, identity);
    } finally {
      await copy.close();
    }
  } finally {
    await src.close();
  }
}

/**
 * Puts the backed-up content, mode and owner back at NAME in a pinned folder atomically: the
 * backup's identity is set through its own descriptor, it is linked (or copied) to a hidden name
 * beside the target, and renamed over whatever is at NAME, which is never followed. Running it
 * twice does no harm.
 */
export async function restoreBackup(
  backupPath: string,
  dir: PinnedDir,
  name: string,
  identity: FileIdentity,
  tag: string,
): Promise<void> {
  const tmp = `.clp-restore-${tag}-${name}`.slice(0, 250);
  const b = await lstat(backupPath);
  const t = await lstatOrNull(dir.at(name));
  if (b.isFile() && t !== null && t.dev === b.dev && t.ino === b.ino) {
    // The target was never replaced (the backup is a hard link of it). rename() between two links
    // of one inode does nothing and would leave the temporary name behind, so only the identity is set.
    await unlinkIfThere(dir.at(tmp));
    const fh = await open(backupPath, READ_NOFOLLOW);
    try {
      await setIdentity(fh, identity);
    } finally {
      await fh.close();
    }
    return;
  }
  // rename() puts a file over a FIFO, socket or device without opening it, but not over a folder.
  if (t?.isDirectory())
    throw notRegular(join(dir.path, name), t, 'clp puts a file back only where a file (or nothing) is');
  await unlinkIfThere(dir.at(tmp));
  await placeFile(backupPath, dir, tmp, identity, true);
  await rename(dir.at(tmp), dir.at(name));
  await dir.sync();
}
