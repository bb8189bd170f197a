import { resolve } from 'node:path';
import { isClpError, openPatch, type PatchMeta } from '@clp/format';
import { TrustStore, verifyPatch } from '@clp/trust';

export interface InspectedRelease {
  meta: PatchMeta;
  signerKeyId: string;
  /** The archive's file entries, kept so that a release's page lists them without opening the blob. */
  entries?: Array<{ name: string; size: number; mode: number }>;
}

/** Reads and verifies an uploaded .clp; throws the format or trust library's ClpError when it is not acceptable. */
export type ReleaseInspector = (file: string) => Promise<InspectedRelease>;

/**
 * Opens the archive with the format library's limits and verifies its signature against the
 * keys in `keysDir`, read again for each upload so that adding or revoking a key needs no restart.
 */
export function trustedReleaseInspector(keysDir: string): ReleaseInspector {
  const folder = resolve(keysDir);
  return async (file) => {
    try {
      const store = await TrustStore.load(keysDir);
      const archive = await openPatch(file);
      try {
        const manifest = await verifyPatch(archive, store);
        const entries = archive.entries.map((e) => ({ name: e.name, size: e.size, mode: e.mode }));
        return { meta: archive.meta, signerKeyId: manifest.keyId, entries };
      } finally {
        await archive.close();
      }
    } catch (error) {
      // The uploader knows their file, not the server's temporary name for it, and has no business
      // knowing where the server keeps its keys.
      if (isClpError(error)) {
        error.message = error.message
          .replaceAll(file, 'the uploaded .clp')
          .replaceAll(folder, "the server's trusted keys folder")
          .replaceAll(keysDir, "the server's trusted keys folder");
      }
      throw error;
    }
  };
}
