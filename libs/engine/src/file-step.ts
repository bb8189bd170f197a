import { chmod, chown, copyFile, lstat, mkdir, rename, rmdir, unlink } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { type FileIdentity, restoreBackup, takeBackup } from './backup.ts';
import { mapLimit } from './concurrency.ts';
import { fsyncDirs, fsyncFile, linkOrCopy } from './durable.ts';
import type { StepContext, StepRecord } from './step.ts';

/** How many files are staged, backed up or renamed at once. */
export const FILE_CONCURRENCY = 32;

/** Everything needed to make, and to undo, one change of one file. Stored as StepRecord.undo. */
export interface FileUndo {
  [key: string]: unknown;
  /** The real path on this machine (already resolved under the root). */
  target: string;
  /** The path as the patch names it, for messages. */
  path: string;
  /** Where the new content is staged (in the target's folder), or null for a removal. */
  stage: string | null;
  /** The new content to stage (not needed for undo). */
  source: string | null;
  /** Whether a file was at target when the step was prepared (then it is backed up first). */
  existed: boolean;
  /** The backup's name inside the transaction folder, when existed. */
  backup: string | null;
  /** Mode and owner of the file that was there. */
  orig: FileIdentity | null;
  /** Mode and owner the new file gets. */
  next: FileIdentity | null;
  /** sha256 of the new content (null for a removal). */
  sha256: string | null;
  /** Folders the step creates for its file, top first; undo removes them when empty. */
  createdDirs: string[];
}

export function fileUndo(record: StepRecord): FileUndo {
  return record.undo as FileUndo;
}

/** What is at a path now: its identity, or null when nothing is there. */
export async function identityOf(
  path: string,
): Promise<(FileIdentity & { isFile: boolean; size: number }) | null> {
  try {
    const s = await lstat(path);
    return { mode: s.mode & 0o7777, uid: s.uid, gid: s.gid, isFile: s.isFile(), size: s.size };
  } catch (error) {
    if (
      (error as NodeJS.ErrnoException).code === 'ENOENT' ||
      (error as NodeJS.ErrnoException).code === 'ENOTDIR'
    )
      return null;
    throw error;
  }
}

/** The folders that do not exist yet between the root and dir, top first. */
export async function missingDirs(root: string, dir: string): Promise<string[]> {
  const missing: string[] = [];
  let d = dir;
  while (d.length > root.length && d !== '/') {
    if ((await identityOf(d)) !== null) break;
    missing.unshift(d);
    d = dirname(d);
  }
  return missing;
}

export function stagePathFor(target: string, tx: string, index: number): string {
  return join(dirname(target), `.clp-${tx}-${index}-${basename(target)}`.slice(0, 250));
}

/**
 * Stages the new content of each step next to its target: a hard link of the extracted file (or
 * a copy across filesystems), given its mode and owner, then fsynced. Sources used by more than
 * one step are copied for the later ones so that their modes cannot clash.
 */
export async function stageFiles(records: StepRecord[]): Promise<void> {
  const seen = new Set<string>();
  const linkable = records.map((r) => {
    const u = fileUndo(r);
    if (u.source === null) return false;
    if (seen.has(u.source)) return false;
    seen.add(u.source);
    return true;
  });
  // Many files share their new folders: each is made once, parents first.
  const created = [...new Set(records.flatMap((r) => fileUndo(r).createdDirs))].sort(
    (a, b) => a.length - b.length,
  );
  for (const d of created) await mkdir(d, { recursive: true, mode: 0o755 });
  // Stage names carry the transaction id, so none can exist yet.
  await mapLimit(records, FILE_CONCURRENCY, async (record, i) => {
    const u = fileUndo(record);
    if (u.stage === null || u.source === null || u.next === null) return;
    if (linkable[i]) {
      await linkOrCopy(u.source, u.stage, false);
    } else {
      await copyFile(u.source, u.stage);
    }
    await chown(u.stage, u.next.uid, u.next.gid);
    await chmod(u.stage, u.next.mode);
    await fsyncFile(u.stage);
  });
  // Folders the steps created must survive a crash once files are renamed into them.
  if (created.length > 0) await fsyncDirs(created.map((d) => dirname(d)));
}

/**
 * Runs a batch of file steps (the commit of their changes):
 * 1. back up every file that is there (hard link or copy), then fsync the backup folder once;
 * 2. rename each staged file over its target (or unlink it, for a removal), then fsync each
 *    target folder once.
 * Nothing is changed at a target before every backup of the batch is durable.
 */
export async function runFileBatch(records: StepRecord[], ctx: StepContext): Promise<void> {
  const backupDir = join(ctx.txDir, 'backup');
  await mkdir(backupDir, { recursive: true });
  const toBackUp = records.filter((r) => fileUndo(r).existed && fileUndo(r).backup !== null);
  await mapLimit(toBackUp, FILE_CONCURRENCY, (r) =>
    takeBackup(fileUndo(r).target, join(ctx.txDir, fileUndo(r).backup!)),
  );
  if (toBackUp.length > 0) await fsyncDirs([backupDir]);
  await mapLimit(records, FILE_CONCURRENCY, async (r) => {
    const u = fileUndo(r);
    if (u.stage !== null) await rename(u.stage, u.target);
    else await unlink(u.target);
  });
  await fsyncDirs(records.map((r) => dirname(fileUndo(r).target)));
}

/**
 * Undoes one file step from its record alone. Safe at any point of the step's life: before its
 * backup exists the target was not touched yet, so there is nothing to put back; after, the
 * backup is complete (see takeBackup). Running it twice does no harm.
 */
export async function undoFileStep(record: StepRecord, ctx: StepContext): Promise<void> {
  const u = fileUndo(record);
  if (u.stage !== null) {
    await unlinkIfThere(u.stage);
    await unlinkIfThere(`${u.stage}.part`);
  }
  if (u.existed) {
    const backup = u.backup === null ? null : join(ctx.txDir, u.backup);
    if (backup !== null && u.orig !== null && (await identityOf(backup)) !== null) {
      await restoreBackup(backup, u.target, u.orig, `${record.index}`);
    }
  } else {
    await unlinkIfThere(u.target);
    for (const d of [...u.createdDirs].reverse()) {
      await rmdir(d).catch(() => {});
    }
  }
  await fsyncDirs([dirname(u.target)]).catch((error: NodeJS.ErrnoException) => {
    if (error.code !== 'ENOENT') throw error;
  });
}

async function unlinkIfThere(path: string): Promise<void> {
  // Looked up first: on a read-only filesystem unlink() fails with EROFS even for a missing name.
  if ((await identityOf(path)) === null) return;
  try {
    await unlink(path);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
  }
}
