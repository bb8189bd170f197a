import { constants } from 'node:fs';
import { copyFile, mkdir } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { fsyncDir, fsyncFile } from '../durable.ts';

/** Makes a new file durable, content and name, before the journal may point at it. */
export async function fsyncFileAndDir(file: string): Promise<void> {
  await fsyncFile(file);
  await fsyncDir(dirname(file));
}

/**
 * A durable copy of a package file in a folder of clp's own (a reflink where the filesystem has
 * them): what an undo or an uninstall installs must not live in a cache another tool cleans.
 */
export async function keepCopy(file: string, destDir: string): Promise<string> {
  await mkdir(destDir, { recursive: true });
  const kept = join(destDir, basename(file));
  await copyFile(file, kept, constants.COPYFILE_FICLONE);
  await fsyncFileAndDir(kept);
  return kept;
}
