import { spawnSync } from 'node:child_process';
import { constants } from 'node:fs';
import { open, rename, unlink } from 'node:fs/promises';
import { dirname } from 'node:path';
import { EngineError } from './errors.ts';
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

/**
 * syncfs(2) of the filesystem holding the open descriptor `fd`: every dirty page and inode of that
 * filesystem is written out and the disk's cache flushed, so a batch of many new files costs one
 * flush instead of one fsync each. Node has no syncfs, so `sync -f` (coreutils, busybox) makes the
 * call on our very descriptor, handed to it as its stdin: no path is looked up again. Returns false
 * when no `sync` here can do it (missing, or one without -f); the caller then fsyncs each file.
 * A failing syncfs is an error: Linux (since 5.8) reports the filesystem's writeback errors there.
 */
export function syncFilesystem(fd: number, where: string): boolean {
  const r = spawnSync('sync', ['-f', '/dev/stdin'], { stdio: [fd, 'ignore', 'pipe'], encoding: 'utf8' });
  if (r.error !== undefined) {
    if ((r.error as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw r.error;
  }
  if (r.status === 0) return true;
  const said = (r.stderr ?? '').trim();
  if (/option|usage/i.test(said)) return false;
  throw new EngineError(
    'CLP_E_APPLY_FAILED',
    `could not make the new files in ${where} durable: sync -f failed (${said || `exit status ${r.status}`}); nothing was changed at their targets: check the disk and run the command again`,
    { details: { path: where } },
  );
}
