import { chmod, chown, lstat, rename, stat, unlink } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { fsyncDir, linkOrCopy } from './durable.ts';

export interface FileIdentity {
  mode: number;
  uid: number;
  gid: number;
}

/**
 * Backs up the file at `target` to `backupPath`: a hard link when both are on one filesystem
 * (the original inode stays untouched once the new file is renamed over it), else a copy that is
 * fsynced and renamed into place, so a backup under its final name is always complete.
 * The caller fsyncs the backup folder once for a whole batch.
 */
export async function takeBackup(target: string, backupPath: string): Promise<void> {
  try {
    await unlink(backupPath);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
  }
  await linkOrCopy(target, backupPath, false);
}

/**
 * Puts the backed-up content, mode and owner back at `target` atomically (through a hidden name
 * in the target's folder) and fsyncs the folder. Running it twice does no harm.
 */
export async function restoreBackup(
  backupPath: string,
  target: string,
  identity: FileIdentity,
  tag: string,
): Promise<void> {
  const tmp = join(dirname(target), `.clp-restore-${tag}-${basename(target)}`);
  const [b, t] = await Promise.all([stat(backupPath), lstat(target).catch(() => null)]);
  if (t !== null && t.dev === b.dev && t.ino === b.ino) {
    // The target was never replaced (the backup is a hard link of it). rename() between two links
    // of one inode does nothing and would leave the temporary name behind, so only the identity is set.
    await unlink(tmp).catch(() => {});
    await chown(target, identity.uid, identity.gid);
    await chmod(target, identity.mode);
    return;
  }
  await unlink(tmp).catch(() => {});
  await unlink(`${tmp}.part`).catch(() => {});
  await linkOrCopy(backupPath, tmp, true);
  await chown(tmp, identity.uid, identity.gid);
  await chmod(tmp, identity.mode);
  await rename(tmp, target);
  await fsyncDir(dirname(target));
}
