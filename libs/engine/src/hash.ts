import { createHash } from 'node:crypto';
import { constants } from 'node:fs';
import { open } from 'node:fs/promises';
import { EngineError } from './errors.ts';
import { kindOf } from './own-files.ts';

/**
 * sha256 (hex) of a regular file's content. The file is opened without following a link at its
 * name and without blocking (a FIFO put at a patched path cannot hang the engine), and anything
 * but a regular file is refused with CLP_E_TARGET_NOT_FILE naming `subject`.
 */
export async function sha256File(path: string, subject = path): Promise<string> {
  let fh: Awaited<ReturnType<typeof open>>;
  try {
    fh = await open(path, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ELOOP') throw notRegular(subject, 'symbolic link');
    throw error;
  }
  try {
    const st = await fh.stat();
    if (!st.isFile()) throw notRegular(subject, kindOf(st));
    const hash = createHash('sha256');
    if (st.size <= 1 << 20) return hash.update(await fh.readFile()).digest('hex');
    for await (const chunk of fh.createReadStream({ highWaterMark: 1 << 20, autoClose: false }))
      hash.update(chunk as Buffer);
    return hash.digest('hex');
  } finally {
    await fh.close();
  }
}

function notRegular(subject: string, kind: string): EngineError {
  return new EngineError(
    'CLP_E_TARGET_NOT_FILE',
    `${subject} is a ${kind}, not a regular file; clp only reads and changes regular files: move it away and run the command again`,
    { details: { path: subject, kind } },
  );
}

/** sha256 of what is at path now, or null when nothing is there. */
export async function sha256OrNull(path: string, subject = path): Promise<string | null> {
  try {
    return await sha256File(path, subject);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw error;
  }
}
