import { lstat, readdir, readlink } from 'node:fs/promises';
import { join } from 'node:path';
import { ClpError } from '@clp/format';
import { hashFile } from '@clp/trust';

/** A regular file of a tree, as a patch would install it. */
export interface TreeFile {
  /** The path relative to the tree's top, '/'-separated. */
  rel: string;
  file: string;
  sha256: string;
  mode: number;
  uid: number;
  gid: number;
}

/** What must happen to one path for BEFORE to become AFTER. */
export type TreeChange =
  | { kind: 'add'; after: TreeFile }
  | { kind: 'replace'; before: TreeFile; after: TreeFile }
  | { kind: 'remove'; before: TreeFile };

type Entry =
  | { kind: 'file'; file: TreeFile }
  | { kind: 'folder' }
  | { kind: 'other'; what: string; link?: string };

async function walk(top: string): Promise<Map<string, Entry>> {
  const out = new Map<string, Entry>();
  const visit = async (rel: string): Promise<void> => {
    const dir = rel === '' ? top : join(top, rel);
    for (const name of (await readdir(dir)).sort()) {
      const childRel = rel === '' ? name : `${rel}/${name}`;
      const file = join(top, childRel);
      const info = await lstat(file);
      if (info.isDirectory()) {
        out.set(childRel, { kind: 'folder' });
        await visit(childRel);
      } else if (info.isFile()) {
        const { sha256 } = await hashFile(file);
        out.set(childRel, {
          kind: 'file',
          file: { rel: childRel, file, sha256, mode: info.mode & 0o7777, uid: info.uid, gid: info.gid },
        });
      } else if (info.isSymbolicLink()) {
        out.set(childRel, { kind: 'other', what: 'a symbolic link', link: await readlink(file) });
      } else {
        out.set(childRel, { kind: 'other', what: 'a device, socket or FIFO' });
      }
    }
  };
  await visit('');
  return out;
}

async function requireFolder(dir: string, what: string): Promise<void> {
  const info = await lstat(dir).catch(() => null);
  if (info === null)
    throw new ClpError('CLP_E_NOT_FOUND', `${what} ${dir} does not exist`, { details: { dir } });
  if (!info.isDirectory()) {
    throw new ClpError('CLP_E_USAGE', `${what} ${dir} is not a folder; --from-diff compares two folders`, {
      details: { dir },
    });
  }
}

/**
 * The changes that turn the tree BEFORE into the tree AFTER, by path: files only in AFTER are
 * added, files in both that differ in content, mode, owner or group are replaced, files only in
 * BEFORE are removed. A patch changes regular files only: a link or device that is the same in
 * both trees is left alone, any other is refused, naming it.
 */
export async function diffTrees(before: string, after: string): Promise<TreeChange[]> {
  await requireFolder(before, 'BEFORE');
  await requireFolder(after, 'AFTER');
  const [b, a] = await Promise.all([walk(before), walk(after)]);
  const changes: TreeChange[] = [];
  for (const rel of [...new Set([...b.keys(), ...a.keys()])].sort()) {
    const x = b.get(rel);
    const y = a.get(rel);
    for (const [entry, top, other] of [
      [x, before, y],
      [y, after, x],
    ] as const) {
      if (entry?.kind !== 'other') continue;
      const same = other?.kind === 'other' && other.what === entry.what && other.link === entry.link;
      if (!same) {
        throw new ClpError(
          'CLP_E_SOURCE_DIR',
          `${join(top, rel)} is ${entry.what}${entry.link ? ` (to ${entry.link})` : ''}, and the other tree does not have the same one; a patch changes regular files only: make it a regular file in both trees, or the same in both`,
          { details: { path: rel } },
        );
      }
    }
    if (x?.kind === 'other' || y?.kind === 'other') continue;
    if ((x?.kind === 'folder' && y?.kind === 'file') || (x?.kind === 'file' && y?.kind === 'folder')) {
      throw new ClpError(
        'CLP_E_SOURCE_DIR',
        `${rel} is a ${x.kind} in BEFORE and a ${y.kind} in AFTER; a patch cannot turn one into the other`,
        { details: { path: rel } },
      );
    }
    if (x?.kind === 'file' && y?.kind === 'file') {
      const p = x.file;
      const q = y.file;
      if (p.sha256 !== q.sha256 || p.mode !== q.mode || p.uid !== q.uid || p.gid !== q.gid) {
        changes.push({ kind: 'replace', before: p, after: q });
      }
    } else if (y?.kind === 'file') {
      changes.push({ kind: 'add', after: y.file });
    } else if (x?.kind === 'file') {
      changes.push({ kind: 'remove', before: x.file });
    }
  }
  return changes;
}
