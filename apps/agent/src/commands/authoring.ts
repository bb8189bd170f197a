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

/** --keys DIR, or ROOT/etc/clp/keys.d. */
export function keysDir(root: string, keys: string | undefined): string {
  return keys === undefined ? join(resolve(root), 'etc/clp/keys.d') : resolve(keys);
}
