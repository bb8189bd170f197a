import { isClpError, openPatch, type PatchMeta } from '@clp/format';
import { TrustStore, verifyPatch } from '@clp/trust';

export interface InspectedRelease {
  meta: PatchMeta;
  signerKeyId: string;
}

/** Reads and verifies an uploaded .clp; throws the format or trust library's ClpError when it is not acceptable. */
export type ReleaseInspector = (file: string) => Promise<InspectedRelease>;

/**
 * Opens the archive with the format library's limits and verifies its signature against the
 * keys in `keysDir`, read again for each upload so that adding or revoking a key needs no restart.
 */
export function trustedReleaseInspector(keysDir: string): ReleaseInspector {
  return async (file) => {
    const store = await TrustStore.load(keysDir);
    try {
      const archive = await openPatch(file);
      try {
        const manifest = await verifyPatch(archive, store);
        return { meta: archive.meta, signerKeyId: manifest.keyId };
      } finally {
        await archive.close();
      }
    } catch (error) {
      // The uploader knows their file, not the server's temporary name for it.
      if (isClpError(error)) error.message = error.message.replaceAll(file, 'the uploaded .clp');
      throw error;
    }
  };
}
