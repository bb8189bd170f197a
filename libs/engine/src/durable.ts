import { constants } from 'node:fs';
import { copyFile, link, open, rename, unlink } from 'node:fs/promises';
import { dirname } from 'node:path';

/** fsync of a file's data and metadata. */
export async function fsyncFile(path: string): Promise<void> {
  const fh = await open(path, constants.O_RDONLY);
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/** fsync of a directory, which makes the names created, renamed or removed in it durable. */
export async function fsyncDir(path: string): Promise<void> {
  const fh = await open(path, constants.O_RDONLY | constants.O_DIRECTORY);
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/** fsyncs each distinct directory once. */
export async function fsyncDirs(dirs: Iterable<string>): Promise<void> {
  await Promise.all([...new Set(dirs)].map((d) => fsyncDir(d)));
}

/** Writes a file through a temporary name: the final name always holds complete, fsynced content. */
export async function writeFileDurable(
  path: string,
  data: string | Uint8Array,
  syncDir = true,
): Promise<void> {
  const tmp = `${path}.tmp-${process.pid}`;
  const fh = await open(tmp, 'w', 0o600);
  try {
    await fh.writeFile(data);
    await fh.sync();
  } finally {
    await fh.close();
  }
  await rename(tmp, path);
  if (syncDir) await fsyncDir(dirname(path));
}

/**
 * Makes `dest` a complete, fsynced copy of `src`: a hard link when both are on one filesystem
 * (the data is already durable), else a copy through a temporary name. Returns how it was done.
 */
export async function linkOrCopy(src: string, dest: string, syncData: boolean): Promise<'link' | 'copy'> {
  try {
    await link(src, dest);
    if (syncData) await fsyncFile(dest);
    return 'link';
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EXDEV') throw error;
  }
  const tmp = `${dest}.part`;
  try {
    await copyFile(src, tmp);
    await fsyncFile(tmp);
    await rename(tmp, dest);
  } catch (error) {
    await unlink(tmp).catch(() => {});
    throw error;
  }
  return 'copy';
}
