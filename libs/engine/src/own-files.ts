/**
 * The engine's own files and folders (ROOT/var/lib/clp/**, ROOT/var/log/CLP.log, ROOT/etc/clp/keys.d)
 * are never reached through a symbolic link: a link there, planted in a crafted root, would make
 * a command running as root read, append to or delete something outside the root. Each is opened
 * with O_NOFOLLOW (and O_NONBLOCK, so that a FIFO put there cannot hang a command), checked to be
 * what it should be, and refused with a coded error naming it otherwise.
 */
import { constants, type Stats } from 'node:fs';
import { type FileHandle, lstat, mkdir, open, readdir, readlink, realpath } from 'node:fs/promises';
import { basename, dirname, join, relative, resolve } from 'node:path';
import { EngineError } from './errors.ts';
import { keysDirOf, resolveUnderRoot } from './paths.ts';

/** What lstat says a thing is, in words for messages. */
export function kindOf(st: Stats): string {
  if (st.isFile()) return 'regular file';
  if (st.isDirectory()) return 'folder';
  if (st.isSymbolicLink()) return 'symbolic link';
  if (st.isFIFO()) return 'FIFO';
  if (st.isSocket()) return 'socket';
  if (st.isCharacterDevice()) return 'character device';
  if (st.isBlockDevice()) return 'block device';
  return 'special file';
}

function isMissing(error: unknown): boolean {
  const code = (error as NodeJS.ErrnoException).code;
  return code === 'ENOENT' || code === 'ENOTDIR';
}

/** The refusal for a link where the engine follows none; names the link and where it points. */
export async function linkRefused(path: string, what: string): Promise<EngineError> {
  const to = await readlink(path).catch(() => null);
  return new EngineError(
    'CLP_E_LINK_REFUSED',
    `${what} ${path} is a symbolic link${to === null ? '' : ` (to ${to})`}; clp follows no link in its own state, log or trust store, so that nothing outside the root is touched: replace the link with a real ${what.includes('folder') ? 'folder' : 'file'} (a bind mount works where the data must live elsewhere) and run the command again`,
    { details: { path, ...(to === null ? {} : { linkTarget: to }) } },
  );
}

function notWhatItShouldBe(path: string, what: string, st: Stats, wanted: string): EngineError {
  return new EngineError(
    'CLP_E_TARGET_NOT_FILE',
    `${what} ${path} is a ${kindOf(st)}, not a ${wanted}; move it away and run the command again`,
    { details: { path, kind: kindOf(st) } },
  );
}

/** lstat of one of the engine's own paths; refuses a link there; null when nothing is there. */
export async function lstatOwn(path: string, what: string): Promise<Stats | null> {
  let st: Stats;
  try {
    st = await lstat(path);
  } catch (error) {
    if (isMissing(error)) return null;
    throw error;
  }
  if (st.isSymbolicLink()) throw await linkRefused(path, what);
  return st;
}

/** Makes one of the engine's own folders when missing (its parent must exist); refuses a link or a non-folder there. */
export async function ownDir(path: string, what = "clp's state folder"): Promise<void> {
  const st = await lstatOwn(path, what);
  if (st?.isDirectory()) return;
  if (st !== null) throw notWhatItShouldBe(path, what, st, 'folder');
  try {
    // mkdir never follows a link at its own name: one planted meanwhile is EEXIST, checked below.
    await mkdir(path, { mode: 0o755 });
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
  }
  const made = await lstatOwn(path, what);
  if (made === null || !made.isDirectory())
    throw made === null ? new Error(`${path} vanished`) : notWhatItShouldBe(path, what, made, 'folder');
}

/**
 * Opens one of the engine's own files without following a link at its name, and checks that it
 * is a regular file. ENOENT passes through (the caller decides what a missing file means).
 */
export async function openOwn(path: string, flags: number, what: string, mode = 0o600): Promise<FileHandle> {
  let fh: FileHandle;
  try {
    fh = await open(path, flags | constants.O_NOFOLLOW | constants.O_NONBLOCK, mode);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ELOOP') throw await linkRefused(path, what);
    if (code === 'ENXIO' || code === 'EISDIR') {
      const st = await lstat(path).catch(() => null);
      if (st !== null) throw notWhatItShouldBe(path, what, st, 'regular file');
    }
    throw error;
  }
  const st = await fh.stat();
  if (!st.isFile()) {
    await fh.close();
    throw notWhatItShouldBe(path, what, st, 'regular file');
  }
  return fh;
}

/** The content of one of the engine's own files (ENOENT passes through). */
export async function readOwnFile(path: string, what: string): Promise<string> {
  const fh = await openOwn(path, constants.O_RDONLY, what);
  try {
    return await fh.readFile('utf8');
  } finally {
    await fh.close();
  }
}

/** Appends to one of the engine's own files, creating it; with sync, fdatasyncs before returning. */
export async function appendOwnFile(path: string, text: string, what: string, sync = false): Promise<void> {
  const fh = await openOwn(path, constants.O_WRONLY | constants.O_APPEND | constants.O_CREAT, what, 0o644);
  try {
    await fh.write(text);
    if (sync) await fh.datasync();
  } finally {
    await fh.close();
  }
}

/**
 * Checks where one of the engine's own paths really is. Its parent folders may be links (a
 * machine with /var on another disk), but only when they lead to the same place on this machine
 * as they do inside the root: a link that leaves the root (`ROOT/var -> /elsewhere`) is refused,
 * and so is a link at the path itself. Nothing is created.
 */
export async function checkOwnPath(root: string, path: string, what: string): Promise<void> {
  const base = resolve(root);
  const rel = relative(base, path);
  const inRoot = await resolveUnderRoot(base, `/${rel}`);
  const onHost = await hostPath(path);
  const rootReal = await realpath(base);
  const expected = join(rootReal, relative(base, inRoot));
  if (onHost !== expected) {
    const link = await firstLink(base, rel);
    const to = link === null ? null : await readlink(link).catch(() => null);
    throw new EngineError(
      'CLP_E_LINK_REFUSED',
      `${what} ${path} is reached through the symbolic link ${link ?? '(a parent folder)'}${to === null ? '' : ` (to ${to})`}, which leads outside the root ${root}; make it a real folder or a link that stays inside the root, and run the command again`,
      { details: { path, ...(link === null ? {} : { link }), ...(to === null ? {} : { linkTarget: to }) } },
    );
  }
  await lstatOwn(path, what);
}

/** The real path of `path` on this machine, for a path whose tail may not exist yet. */
async function hostPath(path: string): Promise<string> {
  const tail: string[] = [basename(path)];
  let dir = dirname(path);
  for (;;) {
    try {
      return join(await realpath(dir), ...tail.reverse());
    } catch (error) {
      if (!isMissing(error) || dir === dirname(dir)) throw error;
      tail.push(basename(dir));
      dir = dirname(dir);
    }
  }
}

async function firstLink(base: string, rel: string): Promise<string | null> {
  let here = base;
  for (const part of rel.split('/')) {
    here = join(here, part);
    const st = await lstat(here).catch(() => null);
    if (st === null) return null;
    if (st.isSymbolicLink()) return here;
  }
  return null;
}

/**
 * ROOT/etc/clp/keys.d decides what this machine trusts, so it is read only when it is clp's own:
 * no link on the way that leaves the root, and no link at the folder or at any file in it.
 */
export async function checkTrustStore(root: string): Promise<void> {
  const dir = keysDirOf(root);
  const what = "clp's trust store";
  await checkOwnPath(root, dir, what);
  const st = await lstatOwn(dir, what);
  if (st === null || !st.isDirectory()) return;
  for (const name of await readdir(dir)) await lstatOwn(join(dir, name), `the trusted key file`);
}
