/**
 * What a package manager killed half-way leaves on disk: files of the package, between two
 * versions, that its database no longer (or not yet) lists. Paths here are relative to the root,
 * folders end with '/', as package files and pacman's database write them.
 */
import { lstat, rmdir, unlink } from 'node:fs/promises';
import { resolveUnderRoot } from '../paths.ts';

/** A path without its trailing '/', the form in which files and folders are compared. */
export function pathKey(path: string): string {
  return path.replace(/^\/+/, '').replace(/\/+$/, '');
}

async function present(root: string, path: string): Promise<string | null> {
  // Resolved as a chroot would: a link on the way never leads out of the root.
  const real = await resolveUnderRoot(root, `/${pathKey(path)}`).catch(() => null);
  if (real === null) return null;
  return (await lstat(real).catch(() => null)) === null ? null : real;
}

/**
 * The paths that are on disk now without being the package's own (`ownedBefore`): they were
 * there before the step, so an undo never removes them. A path that cannot be resolved inside
 * the root counts as present: it is never touched.
 */
export async function pathsPresentOutside(
  root: string,
  paths: Iterable<string>,
  ownedBefore: ReadonlySet<string>,
): Promise<string[]> {
  const keep: string[] = [];
  for (const p of new Set(paths)) {
    if (ownedBefore.has(pathKey(p))) continue;
    const real = await resolveUnderRoot(root, `/${pathKey(p)}`).catch(() => null);
    if (real === null || (await lstat(real).catch(() => null)) !== null) keep.push(p);
  }
  return keep.sort();
}

/**
 * Removes the `candidates` that are on disk and that no package owns (`owned`, by pathKey):
 * files and links first, then folders deepest first, only when empty. Returns how many files.
 */
export async function removeUnowned(
  root: string,
  candidates: Iterable<string>,
  owned: ReadonlySet<string>,
): Promise<number> {
  const mine = [...new Set(candidates)].filter((p) => pathKey(p) !== '' && !owned.has(pathKey(p)));
  let removed = 0;
  for (const p of mine.filter((x) => !x.endsWith('/'))) {
    const real = await present(root, p);
    if (real === null || (await lstat(real)).isDirectory()) continue;
    await unlink(real);
    removed++;
  }
  for (const p of mine.filter((x) => x.endsWith('/')).sort((a, b) => b.length - a.length)) {
    const real = await present(root, p);
    if (real !== null) await rmdir(real).catch(() => {});
  }
  return removed;
}
