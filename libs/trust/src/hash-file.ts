import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import type { EntryDigest } from './manifest.ts';

/** The sha256 and size of a file, streamed. */
export async function hashFile(file: string): Promise<EntryDigest> {
  const hash = createHash('sha256');
  let size = 0;
  for await (const chunk of createReadStream(file)) {
    hash.update(chunk as Buffer);
    size += (chunk as Buffer).length;
  }
  return { sha256: hash.digest('hex'), size };
}
