/**
 * Fetching a package file named by URL: HTTPS only (plain HTTP only when allowed, and never
 * without the sha256 the signed patch declares), at most `maxBytes` (the action's signed `size`,
 * else the configured cap), refused the moment the stream passes it, so that nothing beyond it is
 * written to disk. Redirects are followed by hand, each one held to the same rules.
 */
import { createHash } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { mkdir, rm } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { Readable, Transform, type TransformCallback } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { ReadableStream as WebReadableStream } from 'node:stream/web';
import { PackageError } from './errors.ts';
import { fsyncFileAndDir } from './keep-file.ts';

/** The cap on a download whose action names no size. */
export const DEFAULT_DOWNLOAD_LIMIT = 1024 ** 3;

export interface DownloadRules {
  /** The most bytes the file may have. */
  maxBytes: number;
  /** Where the limit comes from, for messages: the action's signed size or the configured cap. */
  limitFrom: 'size' | 'cap';
  /** Let plain http:// URLs through (the sha256 still decides). */
  allowHttp: boolean;
}

/** Attempts per download; only network errors and 5xx answers are tried again. */
const DOWNLOAD_ATTEMPTS = 3;
const MAX_REDIRECTS = 5;

class RetryableDownloadError extends Error {}

/** Refuses a URL whose scheme the rules do not allow; returns it parsed. */
export function checkedUrl(url: string, rules: Pick<DownloadRules, 'allowHttp'>, what = url): URL {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch (error) {
    throw new PackageError('CLP_E_PACKAGE_URL_REFUSED', `${what} is not a URL`, {
      cause: error,
      details: { url },
    });
  }
  if (parsed.protocol === 'https:' || (parsed.protocol === 'http:' && rules.allowHttp)) return parsed;
  const why =
    parsed.protocol === 'http:'
      ? 'plain HTTP is refused unless allowed (--allow-http); the sha256 of the patch is checked either way'
      : `only https:// is fetched, not ${parsed.protocol}`;
  throw new PackageError('CLP_E_PACKAGE_URL_REFUSED', `${what}: ${why}`, { details: { url } });
}

/** Counts the bytes going through and fails, before passing it on, the chunk that would exceed `max`. */
class SizeGuard extends Transform {
  received = 0;
  readonly #max: number;
  readonly #tooLarge: () => Error;
  constructor(max: number, tooLarge: () => Error) {
    super();
    this.#max = max;
    this.#tooLarge = tooLarge;
  }
  override _transform(chunk: Buffer, _encoding: BufferEncoding, done: TransformCallback): void {
    if (this.received + chunk.length > this.#max) {
      done(this.#tooLarge());
      return;
    }
    this.received += chunk.length;
    done(null, chunk);
  }
}

function tooLarge(url: string, rules: DownloadRules, seen: string): PackageError {
  const limit =
    rules.limitFrom === 'size'
      ? `the ${rules.maxBytes} bytes the patch's signed size attribute allows`
      : `the download cap of ${rules.maxBytes} bytes (the action names no size; raise the cap with --max-download-size)`;
  return new PackageError(
    'CLP_E_PACKAGE_TOO_LARGE',
    `${url} ${seen}, more than ${limit}; refused, nothing of it is kept`,
    {
      details: { url, maxBytes: rules.maxBytes, limitFrom: rules.limitFrom },
    },
  );
}

/** The response for `url`, following redirects by hand so that each target is held to the rules. */
async function fetchChecked(url: string, rules: DownloadRules): Promise<Response> {
  let current = checkedUrl(url, rules);
  for (let hop = 0; ; hop++) {
    let response: Response;
    try {
      response = await fetch(current, { redirect: 'manual', signal: AbortSignal.timeout(30 * 60_000) });
    } catch (error) {
      throw new RetryableDownloadError((error as Error).message, { cause: error });
    }
    const location = response.headers.get('location');
    if (response.status < 300 || response.status >= 400 || location === null) return response;
    await response.body?.cancel();
    if (hop >= MAX_REDIRECTS) throw new Error(`more than ${MAX_REDIRECTS} redirects`);
    current = checkedUrl(new URL(location, current).href, rules, `${url} redirects to ${location}, which`);
  }
}

async function downloadOnce(url: string, file: string, rules: DownloadRules): Promise<string> {
  const response = await fetchChecked(url, rules);
  if (!response.ok || response.body === null) {
    await response.body?.cancel();
    const message = `the server answered ${response.status} ${response.statusText}`.trim();
    throw response.status >= 500 ? new RetryableDownloadError(message) : new Error(message);
  }
  const announced = Number(response.headers.get('content-length') ?? Number.NaN);
  if (Number.isFinite(announced) && announced > rules.maxBytes) {
    await response.body.cancel();
    throw tooLarge(url, rules, `announces ${announced} bytes`);
  }
  const hash = createHash('sha256');
  const guard = new SizeGuard(rules.maxBytes, () =>
    tooLarge(url, rules, `sent more than ${rules.maxBytes} bytes`),
  );
  const body = Readable.fromWeb(response.body as WebReadableStream<Uint8Array>);
  guard.on('data', (chunk: Buffer) => hash.update(chunk));
  try {
    await pipeline(body, guard, createWriteStream(file));
  } catch (error) {
    if (error instanceof PackageError) throw error;
    throw new RetryableDownloadError((error as Error).message, { cause: error });
  }
  return hash.digest('hex');
}

/** Downloads a package file into destDir (streamed, never whole in memory) and checks its sha256. */
export async function download(
  url: string,
  sha256: string,
  destDir: string,
  rules: DownloadRules,
): Promise<string> {
  const last = basename(checkedUrl(url, rules).pathname);
  await mkdir(destDir, { recursive: true });
  const file = join(destDir, last === '' || last === '.' || last === '..' ? 'package' : last);
  let actual = '';
  for (let attempt = 1; ; attempt++) {
    try {
      actual = await downloadOnce(url, file, rules);
      break;
    } catch (error) {
      if (error instanceof RetryableDownloadError && attempt < DOWNLOAD_ATTEMPTS) {
        await new Promise((r) => setTimeout(r, 500 * 2 ** attempt));
        continue;
      }
      await rm(file, { force: true });
      if (error instanceof PackageError) throw error;
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
