import { createHash, randomUUID } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { rm } from 'node:fs/promises';
import type { IncomingMessage } from 'node:http';
import { join } from 'node:path';
import { ServerError } from './errors.ts';

export interface ReceivedUpload {
  file: string;
  sha256: string;
  size: number;
}

function tooLarge(max: number): ServerError {
  return new ServerError(
    'CLP_E_UPLOAD_TOO_LARGE',
    `the upload is larger than the limit of ${max} bytes; raise CLP_MAX_UPLOAD_BYTES on the server if this release is genuine`,
    { details: { limit: max } },
  );
}

/**
 * Streams a request body into a new file in `tempDir` while hashing it, so that memory stays
 * bounded whatever the size. Past `max` bytes it stops reading and throws CLP_E_UPLOAD_TOO_LARGE
 * (the caller answers 413 and closes the connection). The file is removed on any failure.
 */
export async function receiveUpload(
  req: IncomingMessage,
  tempDir: string,
  max: number,
): Promise<ReceivedUpload> {
  const declared = req.headers['content-length'];
  if (declared !== undefined && Number(declared) > max) throw tooLarge(max);
  const file = join(tempDir, `upload-${randomUUID()}`);
  const out = createWriteStream(file, { flags: 'wx', mode: 0o644 });
  const hash = createHash('sha256');
  let size = 0;
  try {
    await new Promise<void>((resolve, reject) => {
      const fail = (error: unknown) => {
        req.off('data', onData);
        req.off('end', onEnd);
        out.destroy();
        reject(error);
      };
      const onData = (chunk: Buffer) => {
        size += chunk.length;
        if (size > max) {
          req.pause();
          fail(tooLarge(max));
          return;
        }
        hash.update(chunk);
        if (!out.write(chunk)) {
          req.pause();
          out.once('drain', () => req.resume());
        }
      };
      const onEnd = () => {
        out.end(() => resolve());
      };
      req.on('data', onData);
      req.once('end', onEnd);
      req.once('error', fail);
      req.once('aborted', () =>
        fail(new ServerError('CLP_E_VALIDATION', 'the upload was cut off before its end; send it again')),
      );
      out.once('error', fail);
    });
  } catch (error) {
    // The file may still be opening: removing it before the stream has closed could leave it behind.
    if (!out.closed) await new Promise<void>((resolve) => out.once('close', () => resolve()));
    await rm(file, { force: true });
    throw error;
  }
  return { file, sha256: hash.digest('hex'), size };
}
