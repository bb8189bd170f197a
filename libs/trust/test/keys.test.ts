import { createHash, createPublicKey, generateKeyPairSync } from 'node:crypto';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { generateKeyPair, keyIdOf, loadPrivateKey, loadPublicKey, writeKeyPair } from '../src/index.ts';

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'clp-keys-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function codeOf(p: Promise<unknown>): Promise<string | undefined> {
  try {
    await p;
  } catch (error) {
    return (error as { code?: string }).code;
  }
  return undefined;
}

describe('keys', () => {
  it('the key id is the first 16 hex digits of the sha256 of the raw public key', () => {
    const pair = generateKeyPair('release');
    const raw = pair.publicKey.export({ format: 'der', type: 'spki' }).subarray(-32);
    expect(pair.keyId).toBe(createHash('sha256').update(raw).digest('hex').slice(0, 16));
    expect(keyIdOf(pair.privateKey)).toBe(pair.keyId);
  });

  it('writeKeyPair writes a 0600 PKCS#8 private key and an SPKI public key that load back', async () => {
    const written = await writeKeyPair(join(dir, 'sub'), 'release-2025');
    expect((await stat(written.keyFile)).mode & 0o777).toBe(0o600);
    expect(await readFile(written.keyFile, 'utf8')).toContain('-----BEGIN PRIVATE KEY-----');
    expect(await readFile(written.pubFile, 'utf8')).toContain('-----BEGIN PUBLIC KEY-----');
    const priv = await loadPrivateKey(written.keyFile);
    const pub = await loadPublicKey(written.pubFile);
    expect(keyIdOf(pub)).toBe(written.keyId);
    expect(keyIdOf(createPublicKey(priv))).toBe(written.keyId);
  });

  it('writeKeyPair never overwrites an existing key or public key', async () => {
    const first = await writeKeyPair(dir, 'release');
    const before = await readFile(first.keyFile, 'utf8');
    expect(await codeOf(writeKeyPair(dir, 'release'))).toBe('CLP_E_KEY_EXISTS');
    expect(await readFile(first.keyFile, 'utf8')).toBe(before);

    await writeFile(join(dir, 'other.pub'), 'precious');
    expect(await codeOf(writeKeyPair(dir, 'other'))).toBe('CLP_E_KEY_EXISTS');
    expect(await readFile(join(dir, 'other.pub'), 'utf8')).toBe('precious');
    // The half-made private key is cleaned up, not left behind.
    expect(await codeOf(stat(join(dir, 'other.key')))).toBe('ENOENT');
  });

  it('a key name that is not a safe file name is refused', async () => {
    expect(await codeOf(writeKeyPair(dir, '../evil'))).toBe('CLP_E_KEY_INVALID');
    expect(() => generateKeyPair('')).toThrow(expect.objectContaining({ code: 'CLP_E_KEY_INVALID' }));
  });

  it('loading a missing key file is CLP_E_KEY_NOT_FOUND', async () => {
    expect(await codeOf(loadPrivateKey(join(dir, 'nope.key')))).toBe('CLP_E_KEY_NOT_FOUND');
    expect(await codeOf(loadPublicKey(join(dir, 'nope.pub')))).toBe('CLP_E_KEY_NOT_FOUND');
  });

  it('non-Ed25519 keys, garbage and private keys posing as public keys are CLP_E_KEY_INVALID', async () => {
    const rsa = generateKeyPairSync('rsa', { modulusLength: 1024 });
    await writeFile(join(dir, 'rsa.key'), rsa.privateKey.export({ format: 'pem', type: 'pkcs8' }));
    await writeFile(join(dir, 'rsa.pub'), rsa.publicKey.export({ format: 'pem', type: 'spki' }));
    await writeFile(join(dir, 'junk.pub'), '-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n');
    const ed = await writeKeyPair(dir, 'ed');
    expect(await codeOf(loadPrivateKey(join(dir, 'rsa.key')))).toBe('CLP_E_KEY_INVALID');
    expect(await codeOf(loadPublicKey(join(dir, 'rsa.pub')))).toBe('CLP_E_KEY_INVALID');
    expect(await codeOf(loadPublicKey(join(dir, 'junk.pub')))).toBe('CLP_E_KEY_INVALID');
    expect(await codeOf(loadPublicKey(ed.keyFile))).toBe('CLP_E_KEY_INVALID');
    expect(await codeOf(loadPrivateKey(ed.pubFile))).toBe('CLP_E_KEY_INVALID');
  });
});
