import { createHash } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { mkdir, rm } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { ReadableStream as WebReadableStream } from 'node:stream/web';
import { PackageError } from './errors.ts';
import { fsyncFileAndDir } from './keep-file.ts';

/** Attempts per download; only network errors and 5xx answers are tried again. */
const DOWNLOAD_ATTEMPTS = 3;

class RetryableDownloadError extends Error {}

async function downloadOnce(url: string, file: string): Promise<string> {
  const hash = createHash('sha256');
  let response: Response;
  try {
    response = await fetch(url, { redirect: 'follow', signal: AbortSignal.timeout(30 * 60_000) });
  } catch (error) {
    throw new RetryableDownloadError((error as Error).message, { cause: error });
  }
  if (!response.ok || response.body === null) {
    const message = `the server answered ${response.status} ${response.statusText}`.trim();
    throw response.status >= 500 ? new RetryableDownloadError(message) : new Error(message);
  }
  const body = Readable.fromWeb(response.body as WebReadableStream<Uint8Array>);
  body.on('data', (chunk: Buffer) => hash.update(chunk));
  try {
    await pipeline(body, createWriteStream(file));
  } catch (error) {
    throw new RetryableDownloadError((error as Error).message, { cause: error });
  }
  return hash.digest('hex');
}

/** Downloads a package file into destDir (streamed, never whole in memory) and checks its sha256. */
export async function download(url: string, sha256: string, destDir: string): Promise<string> {
  await mkdir(destDir, { recursive: true });
  const last = basename(new URL(url).pathname);
  const file = join(destDir, last === '' || last === '.' || last === '..' ? 'package' : last);
  let actual = '';
  for (let attempt = 1; ; attempt++) {
    try {
      actual = await downloadOnce(url, file);
      break;
    } catch (error) {
      if (error instanceof RetryableDownloadError && attempt < DOWNLOAD_ATTEMPTS) {
        await new Promise((r) => setTimeout(r, 500 * 2 ** attempt));
        continue;
      }
      throw new PackageError(
        'CLP_E_PACKAGE_DOWNLOAD_FAILED',
        `could not download ${url} (attempt ${attempt} of ${DOWNLOAD_ATTEMPTS}): ${(error as Error).message}`,
        {
          cause: error,
          details: { url, attempts: attempt },
        },
      );
    }
  }
  if (actual !== sha256) {
    await rm(file, { force: true });
    throw new PackageError(
      'CLP_E_PACKAGE_HASH_MISMATCH',
      `the package file downloaded from ${url} has sha256 ${actual}, not the expected ${sha256}; refusing it`,
      {
        details: { url, expected: sha256, actual },
      },
    );
  }
  await fsyncFileAndDir(file);
  return file;
}
