import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';

/** sha256 (hex) of a file's content; streams large files. */
export async function sha256File(path: string): Promise<string> {
  const info = await stat(path);
  if (info.size <= 1 << 20)
    return createHash('sha256')
      .update(await readFile(path))
      .digest('hex');
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path, { highWaterMark: 1 << 20 })) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

/** sha256 of what is at path now, or null when nothing is there. */
export async function sha256OrNull(path: string): Promise<string | null> {
  try {
    return await sha256File(path);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw error;
  }
}
