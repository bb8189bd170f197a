import { constants } from 'node:fs';
import { open, rename, unlink } from 'node:fs/promises';
import { dirname } from 'node:path';
import { openOwn } from './own-files.ts';

/** fsync of a file's data and metadata (one of the engine's own files: never through a link). */
export async function fsyncFile(path: string): Promise<void> {
  const fh = await openOwn(path, constants.O_RDONLY, 'the file');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/** fsync of a directory (never through a link at its name), which makes the names created, renamed or removed in it durable. */
export async function fsyncDir(path: string): Promise<void> {
  const fh = await open(path, constants.O_RDONLY | constants.O_DIRECTORY | constants.O_NOFOLLOW);
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

/**
 * Writes a file through a temporary name: the final name always holds complete, fsynced content.
 * The temporary name is created with O_EXCL (a link or file left there is removed first, never
 * followed), and the rename replaces whatever is at the final name without following it.
 */
export async function writeFileDurable(
  path: string,
  data: string | Uint8Array,
  syncDir = true,
): Promise<void> {
  const tmp = `${path}.tmp-${process.pid}`;
  await unlink(tmp).catch((error: NodeJS.ErrnoException) => {
    if (error.code !== 'ENOENT') throw error;
  });
  const fh = await open(
    tmp,
    constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW,
    0o600,
  );
  try {
    await fh.writeFile(data);
    await fh.sync();
  } finally {
    await fh.close();
  }
  await rename(tmp, path);
  if (syncDir) await fsyncDir(dirname(path));
}
