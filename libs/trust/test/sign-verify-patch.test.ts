import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openPatch, writePatch } from '@clp/format';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  generateKeyPair,
  type KeyPair,
  parseSignature,
  SIGNATURE_ENTRY,
  signPatch,
  TrustStore,
  type VerifiedManifest,
  verifyPatch,
} from '../src/index.ts';

const MOTD = Buffer.from('new motd\n');
const WRONG_SHA = '7a8c5e2c9b5c27b2e4b1c8b6a2ab4b7b5b0b98d2b0c7c3a7b4b4d7a9d3c1a2f0';

let dir: string;
let key: KeyPair;
let store: TrustStore;

function pkginfo(sha256: string): string {
  return `<?xml version="1.0" encoding="UTF-8"?>
<Package>
  <Name>CLP1251123</Name>
  <Version>1</Version>
  <Architecture>any</Architecture>
  <Actions>
    <File action="add" path="/etc/motd" source="payload/motd" sha256="${sha256}"/>
  </Actions>
</Package>
`;
}

async function realSha(data: Buffer): Promise<string> {
  const { createHash } = await import('node:crypto');
  return createHash('sha256').update(data).digest('hex');
}

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'clp-signpatch-'));
  key = generateKeyPair('release');
  store = new TrustStore([
    { keyId: key.keyId, name: 'release', file: 'release.pub', publicKey: key.publicKey },
  ]);
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function unsignedPatch(file: string, sha = ''): Promise<void> {
  await writePatch(file, [
    { name: 'PKGINFO.meta', data: Buffer.from(pkginfo(sha || (await realSha(MOTD)))) },
    { name: 'payload/motd', data: MOTD },
  ]);
}

async function verifyFile(file: string, s = store): Promise<VerifiedManifest> {
  const archive = await openPatch(file);
  try {
    return await verifyPatch(archive, s);
  } finally {
    await archive.close();
  }
}

describe('signPatch and verifyPatch', () => {
  it('signing in place adds SIGNATURE; verifyPatch returns the manifest map without SIGNATURE', async () => {
    const file = join(dir, 'p.clp');
    await unsignedPatch(file);
    const result = await signPatch(file, file, key.privateKey, 'Release Team');
    expect(result).toMatchObject({ patchName: 'CLP1251123', keyId: key.keyId, entries: 2 });
    const manifest = await verifyFile(file);
    expect(manifest).toBeInstanceOf(Map);
    expect([...manifest.keys()]).toEqual(['PKGINFO.meta', 'payload/motd']);
    expect(manifest.get('payload/motd')).toEqual({ sha256: await realSha(MOTD), size: MOTD.length });
    expect(manifest).toMatchObject({
      keyId: key.keyId,
      keyName: 'release',
      signer: 'Release Team',
      patchName: 'CLP1251123',
    });
  });

  it('the manifest map drives a re-checked extraction', async () => {
    const file = join(dir, 'p.clp');
    await unsignedPatch(file);
    await signPatch(file, file, key.privateKey, 's');
    const archive = await openPatch(file);
    try {
      const expected = await verifyPatch(archive, store);
      await archive.extractTo(join(dir, 'out'), { only: (n) => n !== SIGNATURE_ENTRY, expected });
      expect(await readFile(join(dir, 'out/payload/motd'))).toEqual(MOTD);
    } finally {
      await archive.close();
    }
  });

  it('an unsigned archive is CLP_E_UNSIGNED', async () => {
    const file = join(dir, 'p.clp');
    await unsignedPatch(file);
    await expect(verifyFile(file)).rejects.toMatchObject({ code: 'CLP_E_UNSIGNED' });
  });

  it('signing refuses a patch whose PKGINFO.meta declares a wrong sha256, and writes nothing', async () => {
    const file = join(dir, 'p.clp');
    await unsignedPatch(file, WRONG_SHA);
    await expect(signPatch(file, join(dir, 'signed.clp'), key.privateKey, 's')).rejects.toMatchObject({
      code: 'CLP_E_HASH_MISMATCH',
    });
    await expect(readFile(join(dir, 'signed.clp'))).rejects.toMatchObject({ code: 'ENOENT' });
  });

  it('a signature moved onto another patch of the same entries but another name is refused', async () => {
    const file = join(dir, 'p.clp');
    await unsignedPatch(file);
    await signPatch(file, file, key.privateKey, 's');
    const archive = await openPatch(file);
    const sig = await archive.readEntry(SIGNATURE_ENTRY, 1 << 20);
    await archive.close();
    const other = join(dir, 'other.clp');
    const xml = pkginfo(await realSha(MOTD)).replace('CLP1251123', 'CLP2251123');
    await writePatch(other, [
      { name: 'PKGINFO.meta', data: Buffer.from(xml) },
      { name: 'payload/motd', data: MOTD },
      { name: SIGNATURE_ENTRY, data: sig },
    ]);
    await expect(verifyFile(other)).rejects.toMatchObject({ code: 'CLP_E_MANIFEST_MISMATCH' });
    expect(parseSignature(sig).keyId).toBe(key.keyId);
  });

  it('a changed payload is CLP_E_MANIFEST_MISMATCH naming the entry', async () => {
    const file = join(dir, 'p.clp');
    await unsignedPatch(file);
    await signPatch(file, file, key.privateKey, 's');
    const archive = await openPatch(file);
    const sig = await archive.readEntry(SIGNATURE_ENTRY, 1 << 20);
    const meta = await archive.readEntry('PKGINFO.meta', 1 << 20);
    await archive.close();
    const evil = Buffer.from('new motd!\n');
    await writePatch(file, [
      {
        name: 'PKGINFO.meta',
        data: Buffer.from(meta.toString().replace(await realSha(MOTD), await realSha(evil))),
      },
      { name: 'payload/motd', data: evil },
      { name: SIGNATURE_ENTRY, data: sig },
    ]);
    const error = await verifyFile(file).catch((e: unknown) => e as { code: string; message: string });
    expect(error).toMatchObject({ code: 'CLP_E_MANIFEST_MISMATCH' });
    expect((error as { message: string }).message).toContain('PKGINFO.meta');
  });

  it('an empty trust store trusts nothing', async () => {
    const file = join(dir, 'p.clp');
    await unsignedPatch(file);
    await signPatch(file, file, key.privateKey, 's');
    await writeFile(join(dir, 'revoked'), '');
    await expect(verifyFile(file, await TrustStore.load(dir))).rejects.toMatchObject({
      code: 'CLP_E_UNKNOWN_KEY',
    });
  });
});
