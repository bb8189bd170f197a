import {
  createHash,
  createPrivateKey,
  createPublicKey,
  generateKeyPairSync,
  type KeyObject,
} from 'node:crypto';
import { mkdir, open, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { TrustError } from './errors.ts';

/** Key names become file names: keep them to a safe, portable alphabet. */
const KEY_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;
/** PEM key files are a few hundred bytes; anything far bigger is not a key. */
const MAX_KEY_FILE = 64 * 1024;

export interface KeyPair {
  name: string;
  keyId: string;
  privateKey: KeyObject;
  publicKey: KeyObject;
}

export interface WrittenKeyPair {
  name: string;
  keyId: string;
  keyFile: string;
  pubFile: string;
}

function checkKeyName(name: string): void {
  if (!KEY_NAME.test(name)) {
    throw new TrustError(
      'CLP_E_KEY_INVALID',
      `key name "${name}" is not usable as a file name; use letters, digits, '.', '_' or '-' (at most 64, starting with a letter or digit)`,
      { details: { name } },
    );
  }
}

/** The key id: first 16 hex digits of the sha256 of the raw 32-byte Ed25519 public key. */
export function keyIdOf(publicKey: KeyObject): string {
  if (publicKey.asymmetricKeyType !== 'ed25519') {
    throw new TrustError(
      'CLP_E_KEY_INVALID',
      `expected an Ed25519 key, got ${publicKey.asymmetricKeyType ?? publicKey.type}`,
    );
  }
  const pub = publicKey.type === 'private' ? createPublicKey(publicKey) : publicKey;
  const jwk = pub.export({ format: 'jwk' });
  const raw = Buffer.from(String(jwk.x), 'base64url');
  if (raw.length !== 32) throw new TrustError('CLP_E_KEY_INVALID', 'Ed25519 public key is not 32 bytes');
  return createHash('sha256').update(raw).digest('hex').slice(0, 16);
}

/** A fresh Ed25519 key pair, in memory. */
export function generateKeyPair(name: string): KeyPair {
  checkKeyName(name);
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  return { name, keyId: keyIdOf(publicKey), privateKey, publicKey };
}

async function createExclusive(file: string, data: string, mode: number): Promise<void> {
  let handle: Awaited<ReturnType<typeof open>>;
  try {
    handle = await open(file, 'wx', mode);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'EEXIST') {
      throw new TrustError(
        'CLP_E_KEY_EXISTS',
        `${file} already exists; keys are never overwritten: choose another --name or folder`,
        {
          details: { file },
        },
      );
    }
    throw error;
  }
  try {
    // umask may only remove bits; chmod makes the mode exact.
    await handle.chmod(mode);
    await handle.writeFile(data, 'utf8');
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/**
 * Generates a key pair and writes DIR/NAME.key (PKCS#8 PEM, mode 0600) and DIR/NAME.pub (SPKI PEM).
 * Both files are created exclusively: an existing key or public key is never overwritten.
 */
export async function writeKeyPair(dir: string, name: string): Promise<WrittenKeyPair> {
  const pair = generateKeyPair(name);
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const keyFile = join(dir, `${name}.key`);
  const pubFile = join(dir, `${name}.pub`);
  const privatePem = pair.privateKey.export({ format: 'pem', type: 'pkcs8' }).toString();
  const publicPem = pair.publicKey.export({ format: 'pem', type: 'spki' }).toString();
  await createExclusive(keyFile, privatePem, 0o600);
  try {
    await createExclusive(pubFile, publicPem, 0o644);
  } catch (error) {
    // Only the .key file we just created is removed; never anything that was there before.
    await rm(keyFile, { force: true });
    throw error;
  }
  return { name, keyId: pair.keyId, keyFile, pubFile };
}

async function readKeyFile(file: string, what: string): Promise<string> {
  let data: Buffer;
  try {
    data = await readFile(file);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') {
      throw new TrustError('CLP_E_KEY_NOT_FOUND', `${what} ${file} does not exist`, {
        cause: error,
        details: { file },
      });
    }
    throw new TrustError('CLP_E_KEY_INVALID', `${what} ${file} cannot be read: ${(error as Error).message}`, {
      cause: error,
      details: { file },
    });
  }
  if (data.length > MAX_KEY_FILE) {
    throw new TrustError(
      'CLP_E_KEY_INVALID',
      `${what} ${file} is ${data.length} bytes; that is not a PEM key`,
      { details: { file } },
    );
  }
  return data.toString('utf8');
}

/** Loads an Ed25519 private key (unencrypted PKCS#8 PEM, as written by writeKeyPair). */
export async function loadPrivateKey(file: string): Promise<KeyObject> {
  const pem = await readKeyFile(file, 'private key');
  if (!pem.includes('-----BEGIN PRIVATE KEY-----')) {
    throw new TrustError(
      'CLP_E_KEY_INVALID',
      `${file} is not an unencrypted PKCS#8 PEM private key (expected -----BEGIN PRIVATE KEY-----); make one with 'clpctl keygen'`,
      { details: { file } },
    );
  }
  let key: KeyObject;
  try {
    key = createPrivateKey({ key: pem, format: 'pem' });
  } catch (error) {
    throw new TrustError(
      'CLP_E_KEY_INVALID',
      `${file} is not a readable private key: ${(error as Error).message}`,
      {
        cause: error,
        details: { file },
      },
    );
  }
  if (key.asymmetricKeyType !== 'ed25519') {
    throw new TrustError(
      'CLP_E_KEY_INVALID',
      `${file} is a ${key.asymmetricKeyType} key; patches are signed with Ed25519 keys only`,
      {
        details: { file },
      },
    );
  }
  return key;
}

/** Loads an Ed25519 public key (SPKI PEM). A private key is refused: trust folders hold public keys only. */
export async function loadPublicKey(file: string): Promise<KeyObject> {
  const pem = await readKeyFile(file, 'public key');
  if (/-----BEGIN [A-Z ]*PRIVATE KEY-----/.test(pem)) {
    throw new TrustError(
      'CLP_E_KEY_INVALID',
      `${file} holds a PRIVATE key; put only the .pub file where keys are trusted`,
      {
        details: { file },
      },
    );
  }
  if (!pem.includes('-----BEGIN PUBLIC KEY-----')) {
    throw new TrustError(
      'CLP_E_KEY_INVALID',
      `${file} is not an SPKI PEM public key (expected -----BEGIN PUBLIC KEY-----)`,
      {
        details: { file },
      },
    );
  }
  let key: KeyObject;
  try {
    key = createPublicKey({ key: pem, format: 'pem' });
  } catch (error) {
    throw new TrustError(
      'CLP_E_KEY_INVALID',
      `${file} is not a readable public key: ${(error as Error).message}`,
      {
        cause: error,
        details: { file },
      },
    );
  }
  if (key.asymmetricKeyType !== 'ed25519') {
    throw new TrustError(
      'CLP_E_KEY_INVALID',
      `${file} is a ${key.asymmetricKeyType} key; only Ed25519 keys are trusted`,
      {
        details: { file },
      },
    );
  }
  return key;
}
