import type { KeyObject } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { openPatch, writePatch } from '@clp/format';
import { checkDeclaredHashes } from './declared-hashes.ts';
import { keyIdOf } from './keys.ts';
import { buildManifest, SIGNATURE_ENTRY } from './manifest.ts';
import { createSignature } from './signature.ts';

export interface SignResult {
  file: string;
  patchName: string;
  keyId: string;
  signer: string;
  /** Entries covered by the manifest (every entry but SIGNATURE). */
  entries: number;
  manifest: string;
}

/**
 * Signs a patch: hashes every entry (streamed), builds the manifest, and writes the archive again
 * with a new SIGNATURE entry replacing any old one. The output appears atomically; outFile may be
 * inFile. Entries are copied through a scratch folder beside outFile and re-checked on the way.
 */
export async function signPatch(
  inFile: string,
  outFile: string,
  privateKey: KeyObject,
  signer: string,
): Promise<SignResult> {
  const keyId = keyIdOf(privateKey);
  const archive = await openPatch(inFile);
  let closed = false;
  const scratch = await mkdtemp(join(dirname(resolve(outFile)), '.clp-sign-'));
  try {
    const hashes = await archive.hashEntries();
    hashes.delete(SIGNATURE_ENTRY);
    checkDeclaredHashes(archive.meta, hashes);
    const manifest = buildManifest(archive.meta.name, hashes);
    const signature = createSignature(manifest, privateKey, signer);
    await archive.extractTo(scratch, { only: (name) => name !== SIGNATURE_ENTRY, expected: hashes });
    await archive.close();
    closed = true;
    const entries: Array<{ name: string; file?: string; data?: Buffer }> = [...hashes.keys()].map((name) => ({
      name,
      file: join(scratch, name),
    }));
    entries.push({ name: SIGNATURE_ENTRY, data: Buffer.from(signature, 'utf8') });
    await writePatch(outFile, entries);
    return { file: outFile, patchName: archive.meta.name, keyId, signer, entries: hashes.size, manifest };
  } finally {
    if (!closed) await archive.close().catch(() => undefined);
    await rm(scratch, { recursive: true, force: true });
  }
}
