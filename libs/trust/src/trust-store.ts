import type { KeyObject } from 'node:crypto';
import { readdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { TrustError } from './errors.ts';
import { keyIdOf, loadPublicKey } from './keys.ts';

export interface TrustedKey {
  keyId: string;
  /** File name without `.pub`. */
  name: string;
  file: string;
  publicKey: KeyObject;
}

/** The file in a keys folder that lists revoked key ids. */
export const REVOKED_FILE = 'revoked';

/** Parses a revocation list: one 16-hex-digit key id per line; `#` starts a comment. */
export function parseRevocationList(text: string, file = REVOKED_FILE): Set<string> {
  const ids = new Set<string>();
  const lines = text.split(/\r?\n/);
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!.replace(/#.*$/, '').trim();
    if (line === '') continue;
    if (!/^[0-9a-fA-F]{16}$/.test(line)) {
      throw new TrustError(
        'CLP_E_KEY_INVALID',
        `${file} line ${i + 1}: "${line}" is not a key id (16 hex digits)`,
        {
          details: { file, line: i + 1 },
        },
      );
    }
    ids.add(line.toLowerCase());
  }
  return ids;
}

/**
 * The keys a machine trusts: every `*.pub` in one folder (several at once, for rotation) minus
 * the ids listed in its `revoked` file. A missing folder is an empty store, which trusts nothing.
 */
export class TrustStore {
  readonly dir: string | undefined;
  readonly keys: readonly TrustedKey[];
  readonly revoked: ReadonlySet<string>;
  readonly #byId: Map<string, TrustedKey>;

  constructor(keys: readonly TrustedKey[], revoked: Iterable<string> = [], dir?: string) {
    this.dir = dir;
    this.keys = keys;
    this.revoked = new Set([...revoked].map((id) => id.toLowerCase()));
    this.#byId = new Map(keys.map((k) => [k.keyId, k]));
  }

  /** Loads DIR/*.pub and DIR/revoked. Any unreadable key or list line is an error (fail closed). */
  static async load(dir: string): Promise<TrustStore> {
    let names: string[];
    try {
      names = await readdir(dir);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return new TrustStore([], [], dir);
      throw new TrustError(
        'CLP_E_KEY_INVALID',
        `trusted keys folder ${dir} cannot be read: ${(error as Error).message}`,
        {
          cause: error,
          details: { dir },
        },
      );
    }
    const keys: TrustedKey[] = [];
    for (const entry of names.filter((n) => n.endsWith('.pub')).sort()) {
      const file = join(dir, entry);
      const info = await stat(file).catch((error: unknown) => {
        throw new TrustError(
          'CLP_E_KEY_INVALID',
          `trusted key ${file} cannot be read: ${(error as Error).message}`,
          {
            cause: error,
            details: { file },
          },
        );
      });
      if (!info.isFile()) continue;
      const publicKey = await loadPublicKey(file);
      keys.push({ keyId: keyIdOf(publicKey), name: entry.slice(0, -'.pub'.length), file, publicKey });
    }
    let revoked = new Set<string>();
    const revokedFile = join(dir, REVOKED_FILE);
    try {
      revoked = parseRevocationList(await readFile(revokedFile, 'utf8'), revokedFile);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') {
        // No revocation list: nothing is revoked.
      } else if (error instanceof TrustError) throw error;
      else {
        throw new TrustError(
          'CLP_E_KEY_INVALID',
          `revocation list ${revokedFile} cannot be read: ${(error as Error).message}`,
          {
            cause: error,
            details: { file: revokedFile },
          },
        );
      }
    }
    return new TrustStore(keys, revoked, dir);
  }

  /** A trusted, unrevoked key by id. */
  get(keyId: string): TrustedKey | undefined {
    if (this.isRevoked(keyId)) return undefined;
    return this.#byId.get(keyId.toLowerCase());
  }

  isRevoked(keyId: string): boolean {
    return this.revoked.has(keyId.toLowerCase());
  }

  /** Where the keys came from, for messages. */
  describe(): string {
    const where = this.dir ?? 'the trust store';
    const usable = this.keys.filter((k) => !this.isRevoked(k.keyId)).length;
    return usable === 0 ? `${where} (no trusted keys)` : where;
  }
}
