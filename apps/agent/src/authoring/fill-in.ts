import { lstat } from 'node:fs/promises';
import { join } from 'node:path';
import { type Action, ClpError, FormatError, type PatchMeta } from '@clp/format';
import { type EntryDigest, hashFile } from '@clp/trust';
import { actionNames } from './action-names.ts';

/** One value `clpctl create` computed and wrote into the archive's PKGINFO.meta. */
export interface FilledValue {
  action: string;
  attribute: 'sha256' | 'expect-sha256';
  value: string;
  /** The file it was computed from. */
  from: string;
}

/** What is at a path under a reference root: a file's sha256, `absent`, or something else. */
async function stateUnder(root: string, path: string): Promise<{ sha256: string } | 'absent' | string> {
  const file = join(root, path);
  try {
    const info = await lstat(file);
    if (info.isFile()) return { sha256: (await hashFile(file)).sha256 };
    return info.isSymbolicLink() ? 'a symbolic link' : info.isDirectory() ? 'a folder' : 'not a regular file';
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return 'absent';
    throw error;
  }
}

/**
 * Fills in the hashes PKGINFO.meta leaves out: the sha256 of every payload file an action installs
 * and, with a reference root, the expect-sha256 of every file a `replace` or `remove` changes.
 * A value that is written and disagrees with its file is refused, naming the action; a value is
 * never written over.
 */
export async function fillInHashes(
  meta: PatchMeta,
  entries: ReadonlyMap<string, EntryDigest>,
  expectFrom: string | undefined,
): Promise<{ meta: PatchMeta; filled: FilledValue[] }> {
  const names = actionNames(meta.actions);
  const filled: FilledValue[] = [];
  const actions: Action[] = [];
  for (const [index, original] of meta.actions.entries()) {
    const where = names[index]!;
    const action = { ...original };
    if ((action.type === 'file' || action.type === 'package') && action.source !== undefined) {
      const actual = entries.get(action.source)?.sha256;
      if (actual !== undefined && action.sha256 === undefined) {
        action.sha256 = actual;
        filled.push({ action: where, attribute: 'sha256', value: actual, from: action.source });
      } else if (actual !== undefined && action.sha256 !== actual) {
        throw new FormatError(
          'CLP_E_HASH_MISMATCH',
          `PKGINFO.meta ${where} says sha256 ${action.sha256}, but ${action.source} has sha256 ${actual}; fix PKGINFO.meta or the file, or leave sha256 out and create fills it in`,
          { details: { action: where, entry: action.source, expected: action.sha256, actual } },
        );
      }
    }
    if (action.type === 'file' && expectFrom !== undefined) {
      const state = await stateUnder(expectFrom, action.path);
      const reference = join(expectFrom, action.path);
      if (typeof state === 'string' && state !== 'absent') {
        throw new ClpError(
          'CLP_E_TARGET_NOT_FILE',
          `--expect-from: ${reference} is ${state}; ${where} changes regular files only`,
          { details: { action: where, file: reference } },
        );
      }
      const actual = state === 'absent' ? 'absent' : state.sha256;
      if (action.expectSha256 !== undefined && action.expectSha256 !== actual) {
        throw new FormatError(
          'CLP_E_HASH_MISMATCH',
          `PKGINFO.meta ${where} says expect-sha256 ${action.expectSha256}, but ${reference} ${actual === 'absent' ? 'does not exist' : `has sha256 ${actual}`}; the patch would not apply to that root: fix expect-sha256, or leave it out and create fills it in`,
          { details: { action: where, file: reference, expected: action.expectSha256, actual } },
        );
      }
      if (action.action === 'add' && actual !== 'absent') {
        throw new ClpError(
          'CLP_E_PRECONDITION',
          `--expect-from: ${reference} exists, and ${where} adds it: the patch would not apply to that root; make it a replace`,
          { details: { action: where, file: reference } },
        );
      }
      if (action.action !== 'add' && actual === 'absent') {
        throw new ClpError(
          'CLP_E_PRECONDITION',
          `--expect-from: ${reference} does not exist, and ${where} ${action.action === 'remove' ? 'removes' : 'replaces'} it: the patch would not apply to that root`,
          { details: { action: where, file: reference } },
        );
      }
      if (action.action !== 'add' && action.expectSha256 === undefined) {
        action.expectSha256 = actual;
        filled.push({ action: where, attribute: 'expect-sha256', value: actual, from: reference });
      }
    }
    actions.push(action);
  }
  return { meta: { ...meta, actions }, filled };
}
