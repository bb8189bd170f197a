import { mkdir, readdir } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { copyPackageFile, packageFileAt } from './keep-file.ts';
import type { PackageManager } from './package-manager.ts';

const CACHED = 'the cached package file';

/**
 * The file for name@version in `pm`'s cache, or null. File names only shortlist candidates (they
 * are ambiguous when names contain '-'); each candidate's own metadata decides. A candidate that
 * is a link, or reached through one that leaves the root, is refused (CLP_E_LINK_REFUSED).
 */
export async function findCachedPackage(
  pm: Pick<PackageManager, 'root' | 'cacheDir' | 'inspectFile'>,
  name: string,
  version: string,
  isCandidate: (fileName: string) => boolean,
): Promise<string | null> {
  let entries: string[];
  try {
    entries = await readdir(pm.cacheDir);
  } catch {
    return null;
  }
  for (const entry of entries.filter(isCandidate).sort()) {
    const file = join(pm.cacheDir, entry);
    if (!(await packageFileAt(pm.root, file, CACHED))) continue;
    const info = await pm.inspectFile(file).catch(() => null);
    if (info && info.name === name && info.version === version) return file;
  }
  return null;
}

/** The versions of `name` that package files in `pm`'s cache have (each file's own metadata decides). */
export async function cachedVersionsOf(
  pm: Pick<PackageManager, 'root' | 'cacheDir' | 'inspectFile'>,
  name: string,
  isCandidate: (fileName: string) => boolean,
): Promise<string[]> {
  const entries = await readdir(pm.cacheDir).catch(() => [] as string[]);
  const versions = new Set<string>();
  for (const entry of entries.filter(isCandidate)) {
    const file = join(pm.cacheDir, entry);
    if (!(await packageFileAt(pm.root, file, CACHED))) continue;
    const info = await pm.inspectFile(file).catch(() => null);
    if (info?.name === name) versions.add(info.version);
  }
  return [...versions].sort();
}

/**
 * Puts a package file of the installed version of `name` into destDir: the cached one when there is
 * one, else one rebuilt from the package database by `repack`. Null when neither can be had.
 */
export async function keepInstalledPackage(
  pm: Pick<PackageManager, 'installedVersion' | 'findInCache'>,
  name: string,
  destDir: string,
  repack: (name: string, version: string, destDir: string) => Promise<string | null>,
): Promise<string | null> {
  const version = await pm.installedVersion(name);
  if (version === null) return null;
  await mkdir(destDir, { recursive: true });
  const cached = await pm.findInCache(name, version);
  if (cached === null) return repack(name, version, destDir);
  const kept = join(destDir, basename(cached));
  await copyPackageFile(cached, kept, true);
  return kept;
}
