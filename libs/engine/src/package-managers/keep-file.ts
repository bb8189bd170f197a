import { constants } from 'node:fs';
import { copyFile, lstat, mkdir, open, readlink, realpath, unlink } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import { fsyncDir, fsyncFile } from '../durable.ts';
import { EngineError } from '../errors.ts';

/** Makes a new file durable, content and name, before the journal may point at it. */
export async function fsyncFileAndDir(file: string): Promise<void> {
  await fsyncFile(file);
  await fsyncDir(dirname(file));
}

/**
 * Whether `file` (a package file in the root's package cache, or one clp kept) is there as a
 * regular file; false when missing. A link at it, or a folder on the way that leads out of the
 * root, is refused with CLP_E_LINK_REFUSED: the package manager would install what the link
 * points at, as root, from outside the root.
 */
export async function packageFileAt(root: string, file: string, what: string): Promise<boolean> {
  const st = await lstat(file).catch(() => null);
  if (st === null) return false;
  if (st.isSymbolicLink()) {
    const to = await readlink(file).catch(() => '?');
    throw new EngineError(
      'CLP_E_LINK_REFUSED',
      `${what} ${file} is a symbolic link (to ${to}); clp installs no package file through a link, so that nothing from outside the root is installed: put the file itself there and run the command again`,
      { details: { path: file, linkTarget: to } },
    );
  }
  if (!st.isFile()) return false;
  const base = await realpath(resolve(root));
  const folder = await realpath(dirname(file));
  if (base !== '/' && folder !== base && !folder.startsWith(`${base}/`)) {
    throw new EngineError(
      'CLP_E_LINK_REFUSED',
      `${what} ${file} is reached through a link that leads outside the root ${root} (its folder is really ${folder}); make the folder a real one inside the root and run the command again`,
      { details: { path: file, realFolder: folder } },
    );
  }
  return true;
}

/**
 * Copies a package file to `dest` (a reflink where the filesystem has them) without following a
 * link at `dest`: whatever is at that name is removed first and the copy is made with O_EXCL.
 * With noFollow, a link at `file` itself is refused (ELOOP) and the copy reads the file opened.
 */
export async function copyPackageFile(file: string, dest: string, noFollow: boolean): Promise<void> {
  await unlink(dest).catch((error: NodeJS.ErrnoException) => {
    if (error.code !== 'ENOENT') throw error;
  });
  const flags = constants.COPYFILE_EXCL | constants.COPYFILE_FICLONE;
  if (!noFollow) return copyFile(file, dest, flags);
  const fh = await open(file, constants.O_RDONLY | constants.O_NOFOLLOW);
  try {
    if (!(await fh.stat()).isFile()) throw new Error(`${file} is not a regular file`);
    await copyFile(`/proc/self/fd/${fh.fd}`, dest, flags);
  } finally {
    await fh.close();
  }
}

/**
 * A durable copy of a package file in a folder of clp's own (a reflink where the filesystem has
 * them): what an undo or an uninstall installs must not live in a cache another tool cleans.
 * A file from the root's cache is copied without following a link; one the operator named
 * (pkg revert --file) is taken where the operator's path leads.
 */
export async function keepCopy(file: string, destDir: string, fromCache = false): Promise<string> {
  await mkdir(destDir, { recursive: true });
  const kept = join(destDir, basename(file));
  await copyPackageFile(file, kept, fromCache);
  await fsyncFileAndDir(kept);
  return kept;
}
