import { lstat, readlink } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { EngineError } from './errors.ts';

const MAX_LINKS = 40;

/**
 * Resolves an absolute target path under `root` the way a chroot would: every symlink in the
 * parent directories is followed, absolute link targets start again at root, and `..` never
 * climbs above root. The last component is not followed (the engine replaces it, whatever it is).
 * Returns the real path on this machine. With `folders`, the resolution of each parent folder is
 * kept there and reused (the files of one folder cost one walk, not one each); it is only valid
 * while the tree does not change, e.g. within one assessment.
 */
export async function resolveUnderRoot(
  root: string,
  target: string,
  folders?: Map<string, Promise<string[]>>,
): Promise<string> {
  const base = resolve(root);
  if (!target.startsWith('/')) {
    throw new EngineError('CLP_E_PATH_ESCAPE', `target path "${target}" is not absolute`, {
      details: { path: target },
    });
  }
  const parts = target.split('/').filter((p) => p !== '');
  const last = parts.pop();
  if (last === undefined || last === '.' || last === '..') {
    throw new EngineError('CLP_E_PATH_ESCAPE', `target path "${target}" does not name a file`, {
      details: { path: target },
    });
  }
  let resolved: string[];
  if (folders === undefined) resolved = await resolveFolder(base, target, parts);
  else {
    const key = parts.join('/');
    let folder = folders.get(key);
    if (folder === undefined) {
      folder = resolveFolder(base, target, parts);
      folders.set(key, folder);
    }
    // A refusal is worked out again for this very target, so that its message names it.
    resolved = await folder.catch(() => resolveFolder(base, target, parts));
  }
  const real = join(base, ...resolved, last);
  if (real !== base && !real.startsWith(`${base}/`) && base !== '/') {
    throw new EngineError('CLP_E_PATH_ESCAPE', `target path "${target}" resolves outside ${root}`, {
      details: { path: target },
    });
  }
  return real;
}

/** The parent folders of `target` (its `parts`) resolved under base, as path components. */
async function resolveFolder(base: string, target: string, parts: string[]): Promise<string[]> {
  const resolved: string[] = [];
  let pending = parts;
  let hops = 0;
  while (pending.length > 0) {
    const part = pending[0] as string;
    pending = pending.slice(1);
    if (part === '.' || part === '') continue;
    if (part === '..') {
      resolved.pop();
      continue;
    }
    const here = join(base, ...resolved, part);
    let isLink = false;
    try {
      isLink = (await lstat(here)).isSymbolicLink();
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
    }
    if (!isLink) {
      resolved.push(part);
      continue;
    }
    if (++hops > MAX_LINKS) {
      throw new EngineError(
        'CLP_E_PATH_ESCAPE',
        `target path "${target}" has too many symbolic links in it`,
        {
          details: { path: target },
        },
      );
    }
    const to = await readlink(here);
    const toParts = to.split('/').filter((p) => p !== '');
    if (to.startsWith('/')) resolved.length = 0;
    pending = [...toParts, ...pending];
  }
  return resolved;
}

/** ROOT-relative locations of the engine's own state. */
export function stateDirOf(root: string): string {
  return join(resolve(root), 'var/lib/clp');
}

export function logFileOf(root: string): string {
  return join(resolve(root), 'var/log/CLP.log');
}

export function keysDirOf(root: string): string {
  return join(resolve(root), 'etc/clp/keys.d');
}
