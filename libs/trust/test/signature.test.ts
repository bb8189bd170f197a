import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  buildManifest,
  createSignature,
  generateKeyPair,
  loadPrivateKey,
  TrustStore,
  verifyManifestSignature,
  writeKeyPair,
} from '../src/index.ts';

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'clp-sig-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

const manifest = buildManifest(
  'CLP1251123',
  new Map([['PKGINFO.meta', { sha256: 'c'.repeat(64), size: 10 }]]),
);

function codeOf(f: () => unknown): string | undefined {
  try {
    f();
  } catch (error) {
    return (error as { code?: string }).code;
  }
  return undefined;
}

describe('signature and trust store', () => {
  it('a signature by a trusted key verifies and names the key', async () => {
    const k = await writeKeyPair(dir, 'release');
    const store = await TrustStore.load(dir);
    const sig = createSignature(manifest, await loadPrivateKey(k.keyFile), 'Release Team');
    const v = verifyManifestSignature(sig, store);
    expect(v).toMatchObject({
      keyId: k.keyId,
      keyName: 'release',
      signer: 'Release Team',
      manifest,
      patchName: 'CLP1251123',
    });
    expect(JSON.parse(sig)).toMatchObject({
      format: 'clp-signature-1',
      algorithm: 'ed25519',
      keyId: k.keyId,
    });
  });

  it('two trusted keys at once: patches by either verify (rotation)', async () => {
    const oldKey = await writeKeyPair(dir, 'release-2024');
    const newKey = await writeKeyPair(dir, 'release-2025');
    const store = await TrustStore.load(dir);
    expect(store.keys.map((k) => k.name)).toEqual(['release-2024', 'release-2025']);
    for (const k of [oldKey, newKey]) {
      const sig = createSignature(manifest, await loadPrivateKey(k.keyFile), 'x');
      expect(verifyManifestSignature(sig, store).keyId).toBe(k.keyId);
    }
  });

  it('an unknown key, a revoked key, and an empty or missing store fail closed', async () => {
    const trusted = await writeKeyPair(dir, 'trusted');
    const stranger = generateKeyPair('stranger');
    const store = await TrustStore.load(dir);
    expect(
      codeOf(() => verifyManifestSignature(createSignature(manifest, stranger.privateKey, 's'), store)),
    ).toBe('CLP_E_UNKNOWN_KEY');
    await writeFile(join(dir, 'revoked'), `# leaked 2025-11-01\n${trusted.keyId}  # laptop stolen\n`);
    const revokedStore = await TrustStore.load(dir);
    const sig = createSignature(manifest, await loadPrivateKey(trusted.keyFile), 's');
    expect(codeOf(() => verifyManifestSignature(sig, revokedStore))).toBe('CLP_E_REVOKED_KEY');
    expect(revokedStore.get(trusted.keyId)).toBeUndefined();
    const missing = await TrustStore.load(join(dir, 'does-not-exist'));
    expect(missing.keys).toHaveLength(0);
    expect(codeOf(() => verifyManifestSignature(sig, missing))).toBe('CLP_E_UNKNOWN_KEY');
  });

  it('a revocation list line that is not a key id makes the store fail to load', async () => {
    await writeFile(join(dir, 'revoked'), 'not-a-key-id\n');
    await expect(TrustStore.load(dir)).rejects.toMatchObject({ code: 'CLP_E_KEY_INVALID' });
  });

  it('a revocation list that cannot be read makes the store fail to load', async () => {
    await mkdir(join(dir, 'revoked'));
    await expect(TrustStore.load(dir)).rejects.toMatchObject({ code: 'CLP_E_KEY_INVALID' });
  });

  it('an unreadable .pub in the keys folder makes the store fail to load', async () => {
    await writeFile(join(dir, 'broken.pub'), 'nothing here');
    await expect(TrustStore.load(dir)).rejects.toMatchObject({ code: 'CLP_E_KEY_INVALID' });
  });

  it('any change to the manifest, signature or fields is CLP_E_SIGNATURE_INVALID', async () => {
    const k = await writeKeyPair(dir, 'release');
    const store = await TrustStore.load(dir);
    const doc = JSON.parse(createSignature(manifest, await loadPrivateKey(k.keyFile), 's'));
    const sigBytes = Buffer.from(doc.signature, 'base64');
    sigBytes[10] = (sigBytes[10] ?? 0) ^ 1;
    const variants = [
      { ...doc, manifest: doc.manifest.replace('10 PKGINFO', '11 PKGINFO') },
      { ...doc, signature: sigBytes.toString('base64') },
      { ...doc, algorithm: 'rsa' },
      { ...doc, format: 'clp-signature-2' },
      { ...doc, extra: 1 },
      { ...doc, signature: undefined },
      { ...doc, signature: `${doc.signature}==` },
    ];
    for (const v of variants)
      expect(codeOf(() => verifyManifestSignature(JSON.stringify(v), store))).toBe('CLP_E_SIGNATURE_INVALID');
    expect(codeOf(() => verifyManifestSignature('not json', store))).toBe('CLP_E_SIGNATURE_INVALID');
    expect(codeOf(() => verifyManifestSignature(Buffer.from([0xff, 0xfe]), store))).toBe(
      'CLP_E_SIGNATURE_INVALID',
    );
  });

  it('a validly signed but malformed manifest is refused', async () => {
    const k = generateKeyPair('k');
    const store = new TrustStore([{ keyId: k.keyId, name: 'k', file: 'k.pub', publicKey: k.publicKey }]);
    const { sign } = await import('node:crypto');
    const bad = 'clp-manifest 1\nname X\nnot a line\n';
    const doc = {
      format: 'clp-signature-1',
      algorithm: 'ed25519',
      keyId: k.keyId,
      signer: 's',
      manifest: bad,
      signature: sign(null, Buffer.from(bad), k.privateKey).toString('base64'),
    };
    expect(codeOf(() => verifyManifestSignature(JSON.stringify(doc), store))).toBe('CLP_E_SIGNATURE_INVALID');
  });
});
