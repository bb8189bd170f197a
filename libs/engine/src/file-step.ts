import { closeSync, constants, fsyncSync, openSync } from 'node:fs';
import { lstat, rename, rmdir, unlink } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import type { EntryDigest } from '@clp/format';
import { type FileIdentity, placeFile, restoreBackup, takeBackup, unlinkIfThere } from './backup.ts';
import { mapLimit } from './concurrency.ts';
import { fsyncDirs, syncFilesystem } from './durable.ts';
import { EngineError } from './errors.ts';
import { kindOf, ownDir } from './own-files.ts';
import {
  forEachInPinnedDir,
  forEachPinnedGroup,
  type PinnedDir,
  type PinOptions,
  pinDir,
} from './pinned-dir.ts';
import {
  StagedFilesystems,
  type StagingArchive,
  SYNCFS_MIN_FILES,
  writeLargeStaged,
  writeSmallStaged,
} from './stage-direct.ts';
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

/** What is at a path now (never following a link there): its identity, or null when nothing is there. */
export async function identityOf(
  path: string,
): Promise<(FileIdentity & { isFile: boolean; size: number; kind: string }) | null> {
  try {
    const s = await lstat(path);
    return {
      mode: s.mode & 0o7777,
      uid: s.uid,
      gid: s.gid,
      isFile: s.isFile(),
      size: s.size,
      kind: kindOf(s),
    };
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

function pinOptions(root: string, create?: ReadonlySet<string>): (r: StepRecord) => PinOptions {
  return (r) => ({ root, subject: fileUndo(r).path, ...(create ? { create } : {}) });
}

const targetDirOf = (r: StepRecord): string => dirname(fileUndo(r).target);

/** The pinned folder of a step that must write there; a folder that is gone is an error naming it. */
function needDir(dir: PinnedDir | null, r: StepRecord): PinnedDir {
  if (dir !== null) return dir;
  const u = fileUndo(r);
  throw new EngineError(
    'CLP_E_APPLY_FAILED',
    `${u.path}: its folder ${dirname(u.target)} is gone; nothing was written there`,
    { details: { path: u.path } },
  );
}

/** Where files staged straight from the patch take their content (stage-direct.ts). */
export interface DirectSource {
  archive: StagingArchive;
  expected: ReadonlyMap<string, EntryDigest>;
  /** The entry each such step's content is, with its size; steps not listed are placed from `source`. */
  entryOf: ReadonlyMap<StepRecord, { name: string; size: number }>;
  /** Entries up to this size are read into memory and written once checked. */
  smallBytes: number;
}

/**
 * Stages the new content of each step next to its target, in the pinned target folder (missing
 * folders are created, each made durable in its parent). A step of `direct` is written straight
 * from the patch (stage-direct.ts). Any other is placed from its `source` file: a hard link whose
 * mode and owner were set (and fsynced) through its descriptor, or an O_EXCL copy set up the same
 * way when the source is used by more than one step (so that their modes cannot clash) or lies on
 * another filesystem. Every staged file is durable when this returns.
 */
export async function stageFiles(records: StepRecord[], root: string, direct?: DirectSource): Promise<void> {
  const seen = new Set<string>();
  const linkable = new Map<StepRecord, boolean>();
  for (const r of records) {
    const u = fileUndo(r);
    linkable.set(r, u.source !== null && !seen.has(u.source));
    if (u.source !== null) seen.add(u.source);
  }
  const created = new Set(records.flatMap((r) => fileUndo(r).createdDirs));
  const staged = records.filter((r) => {
    const u = fileUndo(r);
    return u.stage !== null && u.source !== null && u.next !== null;
  });
  const directCount = direct === undefined ? 0 : staged.filter((r) => direct.entryOf.has(r)).length;
  const oneSyncfs = directCount >= SYNCFS_MIN_FILES;
  const filesystems = new StagedFilesystems();
  try {
    // Stage names carry the transaction id, so none can exist yet (and one planted there is refused).
    await forEachPinnedGroup(staged, targetDirOf, pinOptions(root, created), async (pinned, group) => {
      const dir = needDir(pinned, group[0] as StepRecord);
      const small = new Map<string, StepRecord>();
      const large: StepRecord[] = [];
      const placed: StepRecord[] = [];
      for (const r of group) {
        const entry = direct?.entryOf.get(r);
        if (entry === undefined) placed.push(r);
        else if (entry.size <= (direct as DirectSource).smallBytes) small.set(entry.name, r);
        else large.push(r);
      }
      if (oneSyncfs && small.size + large.length > 0) await filesystems.remember(dir);
      if (direct !== undefined && small.size > 0) {
        await direct.archive.readVerified([...small.keys()], direct.expected, (name, data) => {
          const u = fileUndo(small.get(name) as StepRecord);
          writeSmallStaged(dir, basename(u.stage as string), data, u.next as FileIdentity, !oneSyncfs);
        });
      }
      for (const r of large) {
        const u = fileUndo(r);
        const d = direct as DirectSource;
        await writeLargeStaged(
          d.archive,
          d.expected,
          (d.entryOf.get(r) as { name: string }).name,
          dir,
          basename(u.stage as string),
          u.next as FileIdentity,
          !oneSyncfs,
        );
      }
      await mapLimit(placed, FILE_CONCURRENCY, (r) => {
        const u = fileUndo(r);
        return placeFile(
          u.source as string,
          dir,
          basename(u.stage as string),
          u.next as FileIdentity,
          linkable.get(r) ?? false,
        );
      });
    });
    if (oneSyncfs)
      await syncStaged(
        filesystems,
        staged.filter((r) => direct?.entryOf.has(r)),
        root,
      );
  } finally {
    await filesystems.close();
  }
}

/** One syncfs per filesystem; where no `sync -f` can do it, an fsync of each staged file instead. */
async function syncStaged(
  filesystems: StagedFilesystems,
  records: StepRecord[],
  root: string,
): Promise<void> {
  const all = filesystems.entries();
  if (all.every((f) => syncFilesystem(f.fd, f.where))) return;
  await forEachInPinnedDir(records, targetDirOf, pinOptions(root), FILE_CONCURRENCY, async (dir, r) => {
    const fd = openSync(
      needDir(dir, r).at(basename(fileUndo(r).stage as string)),
      constants.O_RDONLY | constants.O_NOFOLLOW,
    );
    try {
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
  });
}

/**
 * Runs a batch of file steps (the commit of their changes), each in its pinned target folder:
 * 1. pin every folder (a folder that became a link is refused before anything changes);
 * 2. back up every file that is there (hard link or copy, never of a link), then fsync the backup
 *    folder once;
 * 3. rename each staged file over its target (or unlink it, for a removal), then fsync each
 *    target folder once.
 * Nothing is changed at a target before every backup of the batch is durable.
 */
export async function runFileBatch(records: StepRecord[], ctx: StepContext): Promise<void> {
  const options = pinOptions(ctx.root);
  await forEachInPinnedDir(records, targetDirOf, options, FILE_CONCURRENCY, async (dir, r) => {
    needDir(dir, r);
  });
  const backupDir = join(ctx.txDir, 'backup');
  await ownDir(backupDir);
  const toBackUp = records.filter((r) => fileUndo(r).existed && fileUndo(r).backup !== null);
  await forEachInPinnedDir(toBackUp, targetDirOf, options, FILE_CONCURRENCY, (dir, r) => {
    const u = fileUndo(r);
    return takeBackup(needDir(dir, r), basename(u.target), join(ctx.txDir, u.backup as string), u.path);
  });
  if (toBackUp.length > 0) await fsyncDirs([backupDir]);
  await forEachInPinnedDir(
    records,
    targetDirOf,
    options,
    FILE_CONCURRENCY,
    async (dir, r) => {
      const u = fileUndo(r);
      const d = needDir(dir, r);
      if (u.stage !== null) await rename(d.at(basename(u.stage)), d.at(basename(u.target)));
      else await unlink(d.at(basename(u.target)));
    },
    (dir) => dir?.sync() ?? Promise.resolve(),
  );
}

/**
 * Undoes one file step from its record alone, in its pinned target folder. Safe at any point of
 * the step's life: before its backup exists the target was not touched yet, so there is nothing
 * to put back; after, the backup is complete (see takeBackup). Running it twice does no harm.
 * A folder on the way that became a link is refused (the journal stays for a person to look at).
 */
export async function undoFileStep(record: StepRecord, ctx: StepContext): Promise<void> {
  const u = fileUndo(record);
  const name = basename(u.target);
  const backup = u.existed && u.backup !== null ? join(ctx.txDir, u.backup) : null;
  const hasBackup = backup !== null && u.orig !== null && (await identityOf(backup)) !== null;
  const dir = await pinDir(dirname(u.target), { root: ctx.root, subject: u.path });
  if (dir === null) {
    // The folder never came to be (a crash before staging), so nothing of this step is in it.
    if (hasBackup) needDir(dir, record);
    if (!u.existed) await removeEmptyDirs(u.createdDirs, ctx.root);
    return;
  }
  try {
    if (u.stage !== null) {
      await unlinkIfThere(dir.at(basename(u.stage)));
      await unlinkIfThere(dir.at(`${basename(u.stage)}.part`));
    }
    if (u.existed) {
      if (hasBackup)
        await restoreBackup(backup as string, dir, name, u.orig as FileIdentity, `${record.index}`);
    } else {
      await unlinkIfThere(dir.at(name));
    }
    await dir.sync();
  } catch (error) {
    throw dir.explain(error);
  } finally {
    await dir.close();
  }
  if (!u.existed) await removeEmptyDirs(u.createdDirs, ctx.root);
}

/** Removes the folders a step created, deepest first, when they are empty; never through a link. */
export async function removeEmptyDirs(dirs: readonly string[], root: string): Promise<void> {
  for (const d of [...dirs].reverse()) {
    const parent = await pinDir(dirname(d), { root, subject: d }).catch(() => null);
    if (parent === null) continue;
    try {
      await rmdir(parent.at(basename(d))).catch(() => {});
      await parent.sync();
    } finally {
      await parent.close();
    }
  }
}
