// Helpers shared by the authoring commands (create, sign, verify, inspect).
import { stat } from 'node:fs/promises';
import { basename, join, resolve } from 'node:path';
import { ClpError } from '@clp/format';

/** Throws CLP_E_NOT_FOUND unless `file` is a regular file. */
export async function requireFile(file: string, what: string): Promise<void> {
  try {
    if ((await stat(file)).isFile()) return;
  } catch {
    throw new ClpError('CLP_E_NOT_FOUND', `${what} ${file} does not exist`, { details: { file } });
  }
  throw new ClpError('CLP_E_NOT_FOUND', `${what} ${file} is not a regular file`, { details: { file } });
}

/** The default signer label: the key's file name without `.key`. */
export function signerFromKeyFile(keyFile: string): string {
  return basename(keyFile).replace(/\.key$/, '');
}

/**
 * --keys DIR, or ROOT/etc/clp/keys.d. A folder named on the command line must exist (a typo is
 * not "no trusted keys"); the root's own folder may be missing, and then trusts nothing.
 */
export async function keysDir(root: string, keys: string | undefined): Promise<string> {
  if (keys === undefined) return join(resolve(root), 'etc/clp/keys.d');
  const dir = resolve(keys);
  const isFolder = await stat(dir).then(
    (s) => s.isDirectory(),
    () => undefined,
  );
  if (isFolder === undefined) {
    throw new ClpError('CLP_E_NOT_FOUND', `--keys ${keys}: there is no such folder (of trusted *.pub keys)`, {
      details: { dir },
    });
  }
  if (!isFolder) {
    throw new ClpError('CLP_E_USAGE', `--keys ${keys} is a file; give the folder that holds the *.pub keys`, {
      details: { dir },
    });
  }
  return dir;
}
