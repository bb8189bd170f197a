import { createHash } from 'node:crypto';
import { constants } from 'node:fs';
import { type FileHandle, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import type { ReleaseToApply } from '@clp/protocol';
import { HTTPError } from 'got';
import { FleetError } from './errors.ts';
import { type AgentHttpClient, describeNetworkError, isTransient, joinUrl } from './http-client.ts';
import {
  ensureStateDir,
  listStateDir,
  openStateFile,
  readStateFile,
  stateFileSize,
  writeStateFile,
} from './own-state.ts';
import { RETRY_STATUS_CODES, retryDelay } from './retry-delay.ts';

export interface DownloadProgress {
  received: number;
  total: number;
}

export interface DownloadOptions {
  client: AgentHttpClient;
  release: Pick<ReleaseToApply, 'name' | 'sha256' | 'size' | 'url'>;
  /** The root the download folder belongs to: nothing is reached through a link that leaves it. */
  root: string;
  /** Folder for partial and finished downloads (under ROOT/var/lib/clp). */
  dir: string;
  /** Servers to try, in order (the one that answered the poll first). */
  servers?: readonly string[];
  onProgress?: ((progress: DownloadProgress) => void) | undefined;
  /** Called once before the first request, when the file is not already on disk. */
  onStart?: (() => Promise<void>) | undefined;
}

export interface DownloadResult {
  /** The verified file. */
  file: string;
  /** Bytes already on disk from an earlier, cut attempt that were kept. */
  resumedFrom: number;
  /** HTTP requests made (1 when nothing went wrong). */
  requests: number;
  /** True when the file was already downloaded and verified earlier. */
  cached: boolean;
}

interface PartMeta {
  etag?: string;
  url: string;
}

const DOWNLOADS_WHAT = "clp's download folder";
const DOWNLOAD_WHAT = 'the downloaded release';

async function sha256File(root: string, path: string): Promise<string> {
  const handle = await openStateFile(root, path, constants.O_RDONLY, DOWNLOAD_WHAT);
  const hash = createHash('sha256');
  // The stream closes the handle when it ends or fails.
  await pipeline(handle.createReadStream(), hash);
  return hash.digest('hex');
}

async function readMeta(root: string, path: string): Promise<PartMeta | null> {
  try {
    return JSON.parse(await readStateFile(root, path, DOWNLOAD_WHAT)) as PartMeta;
  } catch (error) {
    if ((error as { code?: unknown }).code === 'CLP_E_LINK_REFUSED') throw error;
    return null;
  }
}

/**
 * Deletes downloads (finished or partial) of releases the server no longer offers, so that a
 * yanked or superseded release does not hold disk space forever. The folder is read only when no
 * link leads it out of the root; rm removes a link itself, never what it points at.
 */
export async function pruneDownloads(
  root: string,
  dir: string,
  offered: ReadonlySet<string>,
  log: (line: string) => void,
): Promise<void> {
  for (const name of await listStateDir(root, dir, DOWNLOADS_WHAT)) {
    const sha = name.slice(0, 64);
    if (offered.has(sha)) continue;
    await rm(join(dir, name), { force: true, recursive: true });
    log(`removed ${name} from the download folder: the server no longer offers it`);
  }
}

/** Parses `bytes START-END/TOTAL`; null when absent or malformed. */
export function contentRangeStart(header: string | undefined): number | null {
  const match = header ? /^bytes (\d+)-\d+\/(\d+|\*)$/.exec(header.trim()) : null;
  return match ? Number(match[1]) : null;
}

/**
 * Downloads a release to DIR/<sha256>.clp and checks its sha256 before returning. A cut
 * transfer leaves DIR/<sha256>.clp.part behind; the next attempt (now or in the next run)
 * asks only for the rest (`Range`, with `If-Range` on the ETag so a changed file is sent whole).
 * A file whose hash does not match is deleted and never returned.
 */
export async function downloadRelease(options: DownloadOptions): Promise<DownloadResult> {
  const { client, release, dir, root } = options;
  const servers = options.servers ?? client.servers;
  await ensureStateDir(root, dir, DOWNLOADS_WHAT);
  const sizeOf = (path: string) => stateFileSize(root, path, DOWNLOAD_WHAT);
  const final = join(dir, `${release.sha256}.clp`);
  const part = `${final}.part`;
  const metaFile = `${part}.json`;

  if ((await sizeOf(final)) > 0) {
    if ((await sha256File(root, final)) === release.sha256)
      return { file: final, resumedFrom: 0, requests: 0, cached: true };
    await rm(final, { force: true });
  }

  await options.onStart?.();
  let requests = 0;
  let resumedFrom = 0;
  let freshRetryUsed = false;
  const failures: string[] = [];

  for (const server of servers) {
    const url = joinUrl(server, release.url);
    for (let attempt = 0; attempt <= client.http.retries; attempt++) {
      if (attempt > 0) await sleep(retryDelay(attempt, client.http));
      let offset = await sizeOf(part);
      const meta = offset > 0 ? await readMeta(root, metaFile) : null;
      if (offset > release.size) {
        await rm(part, { force: true });
        offset = 0;
      }
      try {
        if (offset < release.size || release.size === 0) {
          requests++;
          const got = await fetchInto(
            root,
            client,
            url,
            part,
            metaFile,
            offset,
            meta,
            release.size,
            options.onProgress,
          );
          if (got.resumed && resumedFrom === 0) resumedFrom = offset;
        }
      } catch (error) {
        if (error instanceof FleetError) throw error;
        const transient = isTransient(error) || error instanceof CutTransfer;
        const reason =
          error instanceof HTTPError ? `HTTP ${error.response.statusCode}` : describeNetworkError(error);
        client.log(`download ${url}: ${reason} (kept ${await sizeOf(part)} bytes)`);
        failures.push(`${server}: ${reason}`);
        if (
          !transient ||
          (error instanceof HTTPError && !RETRY_STATUS_CODES.includes(error.response.statusCode))
        )
          break;
        continue;
      }
      const digest = await sha256File(root, part);
      if (digest === release.sha256) {
        await rename(part, final);
        await rm(metaFile, { force: true });
        return { file: final, resumedFrom, requests, cached: false };
      }
      await rm(part, { force: true });
      await rm(metaFile, { force: true });
      // A resumed file may have joined two different bodies: one fresh download settles it.
      if (resumedFrom > 0 && !freshRetryUsed) {
        freshRetryUsed = true;
        resumedFrom = 0;
        client.log(`download ${url}: sha256 mismatch after resuming; downloading again from the start`);
        attempt--;
        continue;
      }
      throw new FleetError(
        'CLP_E_DOWNLOAD_CORRUPT',
        `${release.name}: downloaded bytes have sha256 ${digest}, expected ${release.sha256}; the file was deleted and nothing was applied`,
        { details: { name: release.name, url, expected: release.sha256, actual: digest } },
      );
    }
  }
  throw new FleetError(
    'CLP_E_DOWNLOAD_FAILED',
    `${release.name}: could not download ${release.url}: ${failures.join('; ')}; the partial file is kept and the next check resumes it`,
    { details: { name: release.name, failures } },
  );
}

/** A body that ended early without an error from the HTTP layer: worth a resume. */
class CutTransfer extends Error {
  override name = 'CutTransfer';
}

/**
 * Appends the body to the open file as it arrives. The stream flows (no read-ahead buffer that a
 * failing stream would drop), so after a cut the file holds every byte that arrived; writes
 * queue in order, and the stream pauses while the disk is behind. Returns the file's length.
 */
function writeBody(
  stream: NodeJS.ReadableStream & { destroy(): void },
  handle: FileHandle,
  first: Promise<unknown>,
  start: number,
  size: number,
  url: string,
): Promise<number> {
  let have = start;
  let queued = 0;
  let writing: Promise<unknown> = first;
  let failed = false;
  return new Promise<number>((resolve, reject) => {
    const fail = (error: unknown) => {
      if (failed) return;
      failed = true;
      stream.destroy();
      // Whatever was queued still reaches the disk before the caller sees the error.
      writing.then(
        () => reject(error),
        () => reject(error),
      );
    };
    stream.on('data', (chunk: Buffer) => {
      if (failed) return;
      have += chunk.length;
      if (have > size) {
        fail(
          new FleetError(
            'CLP_E_DOWNLOAD_CORRUPT',
            `${url}: the download is larger than the announced ${size} bytes`,
            { details: { url, size } },
          ),
        );
        return;
      }
      queued++;
      if (queued > 16) stream.pause();
      writing = writing.then(async () => {
        try {
          await handle.write(chunk);
        } catch (error) {
          fail(error);
          throw error;
        } finally {
          queued--;
          if (queued < 4 && !failed) stream.resume();
        }
      });
    });
    stream.once('end', () => {
      writing.then(
        () => resolve(have),
        (error: unknown) => reject(error),
      );
    });
    stream.on('error', fail);
  });
}

async function fetchInto(
  root: string,
  client: AgentHttpClient,
  url: string,
  part: string,
  metaFile: string,
  offset: number,
  meta: PartMeta | null,
  size: number,
  onProgress: DownloadOptions['onProgress'],
): Promise<{ resumed: boolean }> {
  const headers: Record<string, string> = {};
  if (offset > 0) {
    headers.range = `bytes=${offset}-`;
    if (meta?.etag && meta.url === url) headers['if-range'] = meta.etag;
  }
  const handle = await openStateFile(
    root,
    part,
    constants.O_WRONLY | constants.O_APPEND | constants.O_CREAT,
    DOWNLOAD_WHAT,
    0o600,
  );
  try {
    const stream = client.streamGot.stream(url, { headers });
    const response = await new Promise<{
      statusCode: number;
      headers: Record<string, string | string[] | undefined>;
    }>((resolve, reject) => {
      stream.once('response', resolve);
      stream.once('error', reject);
    });
    let start = 0;
    if (response.statusCode === 206) {
      const rangeStart = contentRangeStart(response.headers['content-range'] as string | undefined);
      if (rangeStart !== offset) {
        stream.destroy();
        throw new FleetError(
          'CLP_E_DOWNLOAD_FAILED',
          `${url} answered a range request with the wrong range`,
          { details: { url } },
        );
      }
      start = offset;
    }
    stream.on('downloadProgress', (progress: { transferred: number }) =>
      onProgress?.({ received: start + progress.transferred, total: size }),
    );
    // A whole body (200) replaces what was there; the ETag is kept for the If-Range of a resume.
    const etag = response.headers.etag;
    const first = Promise.all([
      start === 0 ? handle.truncate(0) : undefined,
      writeStateFile(
        root,
        metaFile,
        JSON.stringify({ url, ...(typeof etag === 'string' ? { etag } : {}) }),
        DOWNLOAD_WHAT,
        0o600,
      ),
    ]);
    const have = await writeBody(stream, handle, first, start, size, url);
    if (have < size) throw new CutTransfer(`${url}: the transfer ended after ${have} of ${size} bytes`);
    return { resumed: start > 0 };
  } finally {
    await handle.close();
  }
}
