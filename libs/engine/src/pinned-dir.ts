/**
 * The folder of a patched file, opened one component at a time from the root without following
 * any link, and then used through /proc/self/fd/N/NAME. The descriptor pins the folder itself:
 * once it is open, swapping a folder on the way for a link cannot redirect a write, a rename, an
 * unlink or a backup (this is what openat(2) gives C programs, and Node has no openat).
 *
 * Folders are pinned by the real path recorded when the patch was assessed, whose parents hold no
 * links (resolveUnderRoot followed them inside the root). So a link met on the way now means that
 * the tree changed since, and the write is refused with the path named, whatever the link points at.
 */
import { constants } from 'node:fs';
import { type FileHandle, lstat, mkdir, open, readlink } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { mapLimit } from './concurrency.ts';
import { EngineError } from './errors.ts';
import { kindOf } from './own-files.ts';

/** How many folders a batch keeps open at once. */
const PINNED_AT_ONCE = 8;
const DIR_FLAGS = constants.O_RDONLY | constants.O_DIRECTORY | constants.O_NOFOLLOW;

export class PinnedDir {
  readonly path: string;
  readonly #fh: FileHandle;

  constructor(path: string, fh: FileHandle) {
    this.path = path;
    this.#fh = fh;
  }

  /** A path naming NAME inside this very folder, wherever the folder's own path leads now. */
  at(name: string): string {
    return `/proc/self/fd/${this.#fh.fd}/${name}`;
  }

  /** Rewrites a system error's paths from /proc/self/fd/N/… to the folder's real path, for people. */
  explain(error: unknown): unknown {
    const e = error as NodeJS.ErrnoException & { dest?: string };
    if (!(error instanceof Error) || typeof e.code !== 'string') return error;
    const proc = `/proc/self/fd/${this.#fh.fd}`;
    e.message = e.message.replaceAll(proc, this.path);
    if (typeof e.path === 'string') e.path = e.path.replace(proc, this.path);
    if (typeof e.dest === 'string') e.dest = e.dest.replace(proc, this.path);
    return error;
  }

  /** The folder's descriptor, for calls that take one (fstat, handing it to a child process). */
  get fd(): number {
    return this.#fh.fd;
  }

  /** Makes the names created, renamed or removed in the folder durable. */
  sync(): Promise<void> {
    return this.#fh.sync();
  }

  close(): Promise<void> {
    return this.#fh.close();
  }
}

export interface PinOptions {
  root: string;
  /** The path as the patch names it, for messages. */
  subject: string;
  /** Folders (real paths) that may be created when missing; each is made durable in its parent at once. */
  create?: ReadonlySet<string>;
}

function leavesRoot(root: string, linkPath: string, to: string): boolean {
  if (to.startsWith('/')) return root !== '/';
  const lands = resolve(dirname(linkPath), to);
  return root !== '/' && lands !== root && !lands.startsWith(`${root}/`);
}

async function changedToLink(o: PinOptions, root: string, linkPath: string): Promise<EngineError> {
  const to = await readlink(linkPath).catch(() => '?');
  const outside = leavesRoot(root, linkPath, to);
  return new EngineError(
    'CLP_E_LINK_REFUSED',
    `${o.subject}: the folder ${linkPath} is now a symbolic link (to ${to}${outside ? ', outside the root' : ''}); it was a real folder when the patch was assessed, and clp does not follow a link that appeared since, so nothing was written there: put the folder back (or remove the link) and run the command again`,
    { details: { path: o.subject, link: linkPath, linkTarget: to, leavesRoot: outside } },
  );
}

/**
 * Opens the folder `dir` (a real path under root) through its components without following
 * links. Returns null when a component does not exist (and may not be created).
 */
export async function pinDir(dir: string, o: PinOptions): Promise<PinnedDir | null> {
  const root = resolve(o.root);
  if (dir !== root && !dir.startsWith(root === '/' ? '/' : `${root}/`)) {
    throw new EngineError('CLP_E_PATH_ESCAPE', `${o.subject}: ${dir} is not under the root ${root}`, {
      details: { path: o.subject },
    });
  }
  const parts = dir
    .slice(root.length)
    .split('/')
    .filter((p) => p !== '');
  let current = new PinnedDir(root, await open(root, DIR_FLAGS & ~constants.O_NOFOLLOW));
  try {
    for (const part of parts) {
      const path = join(current.path, part);
      let fh: FileHandle | null = null;
      for (let attempt = 0; fh === null; attempt++) {
        try {
          fh = await open(current.at(part), DIR_FLAGS);
        } catch (error) {
          const code = (error as NodeJS.ErrnoException).code;
          if (code === 'ENOENT' && o.create?.has(path) && attempt < 3) {
            await mkdir(current.at(part), { mode: 0o755 }).catch((e: NodeJS.ErrnoException) => {
              if (e.code !== 'EEXIST') throw e;
            });
            await current.sync();
            continue;
          }
          if (code === 'ENOENT') {
            await current.close();
            return null;
          }
          if (code !== 'ENOTDIR' && code !== 'ELOOP') throw error;
          const st = await lstat(current.at(part));
          if (st.isSymbolicLink()) throw await changedToLink(o, root, path);
          throw new EngineError(
            'CLP_E_TARGET_NOT_FILE',
            `${o.subject}: ${path} is a ${kindOf(st)} where a folder was; nothing was written there: move it away and run the command again`,
            { details: { path: o.subject, at: path, kind: kindOf(st) } },
          );
        }
      }
      await current.close();
      current = new PinnedDir(path, fh);
    }
    return current;
  } catch (error) {
    await current.close().catch(() => {});
    throw error;
  }
}

/**
 * Pins the folder of each group of items that share one (a few folders at a time, so that a batch
 * spread over a thousand folders holds few descriptors), runs fn on the folder and its items, and
 * closes it again. Errors name the folder's real path, not /proc/self/fd/N.
 */
export async function forEachPinnedGroup<T>(
  items: readonly T[],
  dirOf: (item: T) => string,
  options: (item: T) => PinOptions,
  fn: (dir: PinnedDir | null, group: T[]) => Promise<void>,
): Promise<void> {
  const groups = new Map<string, T[]>();
  for (const item of items) {
    const d = dirOf(item);
    const group = groups.get(d);
    if (group === undefined) groups.set(d, [item]);
    else group.push(item);
  }
  await mapLimit([...groups], PINNED_AT_ONCE, async ([d, group]) => {
    const dir = await pinDir(d, options(group[0] as T));
    try {
      await fn(dir, group);
    } catch (error) {
      throw dir?.explain(error) ?? error;
    } finally {
      await dir?.close();
    }
  });
}

/**
 * Pins the folder of each item once (items that share a folder share its descriptor), runs fn on
 * every item with at most `limit` in flight, and closes the folders again.
 */
export function forEachInPinnedDir<T>(
  items: readonly T[],
  dirOf: (item: T) => string,
  options: (item: T) => PinOptions,
  limit: number,
  fn: (dir: PinnedDir | null, item: T) => Promise<void>,
  /** Runs once per folder after all of its items, before it is closed (an fsync of the folder). */
  after?: (dir: PinnedDir | null) => Promise<void>,
): Promise<void> {
  return forEachPinnedGroup(items, dirOf, options, async (dir, group) => {
    await mapLimit(group, limit, (item) => fn(dir, item));
    await after?.(dir);
  });
}
