import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { DpkgManager } from './dpkg.ts';
import { PackageError } from './errors.ts';
import type { PackageManager } from './package-manager.ts';
import { PacmanManager } from './pacman.ts';

export type PackageManagerKind = PackageManager['kind'];
export const PACKAGE_MANAGER_KINDS: readonly PackageManagerKind[] = ['pacman', 'dpkg'];

async function isDir(path: string): Promise<boolean> {
  return (await stat(path).catch(() => null))?.isDirectory() ?? false;
}

/** The ID and ID_LIKE words of ROOT/etc/os-release (or ROOT/usr/lib/os-release). */
async function osIds(root: string): Promise<string[]> {
  for (const file of ['etc/os-release', 'usr/lib/os-release']) {
    const text = await readFile(join(root, file), 'utf8').catch(() => null);
    if (text === null) continue;
    const ids: string[] = [];
    for (const line of text.split('\n')) {
      const m = /^(ID|ID_LIKE)=(.*)$/.exec(line.trim());
      if (m?.[2]) ids.push(...m[2].replace(/^["']|["']$/g, '').split(/\s+/));
    }
    return ids;
  }
  return [];
}

/** A PackageManager of the given kind for a root. */
export function createPackageManager(kind: PackageManagerKind, root: string): PackageManager {
  switch (kind) {
    case 'pacman':
      return new PacmanManager(root);
    case 'dpkg':
      return new DpkgManager(root);
  }
}

/**
 * The package manager of a root: the preferred one when given; else the one os-release implies
 * (arch, vincent → pacman; debian, ubuntu → dpkg), since Debian can carry pacman as a tool with
 * its own /var/lib/pacman; else pacman when ROOT/var/lib/pacman exists, dpkg when ROOT/var/lib/dpkg does.
 */
export async function detectPackageManager(root: string, preferred?: string): Promise<PackageManager> {
  if (preferred !== undefined) {
    if (!(PACKAGE_MANAGER_KINDS as readonly string[]).includes(preferred)) {
      throw new PackageError(
        'CLP_E_NO_PACKAGE_MANAGER',
        `unknown package manager "${preferred}"; choose one of ${PACKAGE_MANAGER_KINDS.join(', ')}`,
        {
          details: { preferred },
        },
      );
    }
    return createPackageManager(preferred as PackageManagerKind, root);
  }
  const ids = await osIds(root);
  if (ids.some((id) => id === 'arch' || id === 'vincent')) return new PacmanManager(root);
  if (ids.some((id) => id === 'debian' || id === 'ubuntu')) return new DpkgManager(root);
  if (await isDir(join(root, 'var/lib/pacman'))) return new PacmanManager(root);
  if (await isDir(join(root, 'var/lib/dpkg'))) return new DpkgManager(root);
  throw new PackageError(
    'CLP_E_NO_PACKAGE_MANAGER',
    `no supported package manager under ${root}: neither ${join(root, 'var/lib/pacman')} nor ${join(root, 'var/lib/dpkg')} exists; pass --package-manager pacman|dpkg`,
    { details: { root } },
  );
}
