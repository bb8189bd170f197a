import { FormatError, type PatchMeta } from '@clp/format';
import type { EntryDigest } from './manifest.ts';

/**
 * Checks that every sha256 PKGINFO.meta declares for a payload entry is the entry's real sha256.
 * Nothing is filled in: a wrong or missing entry is an error naming it.
 */
export function checkDeclaredHashes(meta: PatchMeta, entries: ReadonlyMap<string, EntryDigest>): void {
  meta.actions.forEach((action, index) => {
    if (action.type !== 'file' && action.type !== 'package') return;
    if (action.source === undefined) return;
    const where = `Actions[${index + 1}] (${action.type === 'file' ? action.path : action.name})`;
    const actual = entries.get(action.source);
    if (!actual) {
      throw new FormatError(
        'CLP_E_MISSING_SOURCE',
        `${where} names source ${action.source}, which is not in the patch`,
        {
          details: { entry: action.source },
        },
      );
    }
    if (action.sha256 !== undefined && action.sha256 !== actual.sha256) {
      throw new FormatError(
        'CLP_E_HASH_MISMATCH',
        `${action.source}: PKGINFO.meta ${where} declares sha256 ${action.sha256} but the file's sha256 is ${actual.sha256}; fix PKGINFO.meta or the file`,
        { details: { entry: action.source, expected: action.sha256, actual: actual.sha256 } },
      );
    }
  });
}
