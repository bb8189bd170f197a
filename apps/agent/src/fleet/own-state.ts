/**
 * The agent's own files under a root (agent.json, the report spool, its downloads, the release
 * ledger, the update lock) follow the engine's rule for its own state: never reached through a
 * link that leaves the root, and never through a link at the file or folder itself. clpctl runs
 * as root, so a link planted there in a crafted root would make it write, read (and send to the
 * server) or delete files outside the root. A link is refused with CLP_E_LINK_REFUSED naming it.
 */
import { randomBytes } from 'node:crypto';
import { constants } from 'node:fs';
import { type FileHandle, lstat, mkdir, open, readdir, rename, rm } from 'node:fs/promises';
import { basename, dirname, join, relative, resolve } from 'node:path';
import { checkOwnPath, lstatOwn, openOwn, readOwnFile } from '@clp/engine';

/**
 * Makes the folder `dir` under `root` (and its missing parents) without going through a link
 * that leaves the root; the folder itself may not be a link. New parents get 0755, `dir` `mode`.
 */
export async function ensureStateDir(root: string, dir: string, what: string, mode = 0o700): Promise<void> {
  await checkOwnPath(root, dir, what);
  const base = resolve(root);
  let here = base;
  for (const part of relative(base, dir)
    .split('/')
    .filter((p) => p !== '')) {
    here = join(here, part);
    if ((await lstat(here).catch(() => null)) !== null) continue;
    // mkdir never follows a link at its own name: one planted meanwhile is EEXIST, checked below.
    await mkdir(here, { mode: here === dir ? mode : 0o755 }).catch((error: NodeJS.ErrnoException) => {
      if (error.code !== 'EEXIST') throw error;
    });
  }
  await checkOwnPath(root, dir, what);
}

/** The content of one of the agent's files under root; ENOENT passes through. */
export async function readStateFile(root: string, file: string, what: string): Promise<string> {
  await checkOwnPath(root, file, what);
  return readOwnFile(file, what);
}

/** Opens one of the agent's files under root without following a link; ENOENT passes through. */
export async function openStateFile(
  root: string,
  file: string,
  flags: number,
  what: string,
  mode = 0o600,
): Promise<FileHandle> {
  await checkOwnPath(root, file, what);
  return openOwn(file, flags, what, mode);
}

/** The size of one of the agent's files under root, 0 when there is none; a link is refused. */
export async function stateFileSize(root: string, file: string, what: string): Promise<number> {
  await checkOwnPath(root, file, what);
  return (await lstatOwn(file, what))?.size ?? 0;
}

/** The names in one of the agent's folders under root; none when it does not exist. */
export async function listStateDir(root: string, dir: string, what: string): Promise<string[]> {
  await checkOwnPath(root, dir, what);
  if ((await lstatOwn(dir, what)) === null) return [];
  return readdir(dir);
}

/**
 * Writes one of the agent's files so that readers see the old or the new content, never a part,
 * even after a power loss: a new file (O_EXCL, no link followed) in the same folder, fsync,
 * rename over the name (which replaces a name, never follows one), fsync the folder.
 */
export async function writeStateFile(
  root: string,
  file: string,
  data: string | Uint8Array,
  what: string,
  mode = 0o600,
): Promise<void> {
  const dir = dirname(file);
  await ensureStateDir(root, dir, `the folder of ${what}`, 0o755);
  await lstatOwn(file, what);
  // The temporary name starts with a dot so that folder scans skip it.
  const tmp = join(dir, `.${basename(file)}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`);
  const handle = await openOwn(tmp, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, what, mode);
  try {
    await handle.writeFile(data);
    // open() applies the umask; fchmod makes the mode exact.
    await handle.chmod(mode);
    await handle.sync();
  } catch (error) {
    await handle.close();
    await rm(tmp, { force: true });
    throw error;
  }
  await handle.close();
  try {
    await rename(tmp, file);
  } catch (error) {
    await rm(tmp, { force: true });
    throw error;
  }
  await fsyncDir(dir);
}

/** Makes a rename or unlink in `dir` (already checked) durable. */
async function fsyncDir(dir: string): Promise<void> {
  const handle = await open(dir, constants.O_RDONLY | constants.O_DIRECTORY | constants.O_NOFOLLOW);
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}
