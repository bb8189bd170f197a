import { pipeline } from 'node:stream/promises';
import { releases } from '@clp/db';
import { eq } from 'drizzle-orm';
import type { Request, Response } from 'express';
import { isSha256 } from './blob-store.ts';
import type { AppContext } from './context.ts';
import { ServerError } from './errors.ts';

/** Parses a single `bytes=` range; undefined means "serve it all", null means unsatisfiable. */
export function parseRange(header: string, size: number): { start: number; end: number } | undefined | null {
  const m = /^bytes=(\d*)-(\d*)$/.exec(header.trim());
  // Several ranges or another unit: RFC 9110 lets a server ignore Range and send the whole.
  if (!m) return header.includes(',') || !header.startsWith('bytes=') ? undefined : null;
  const [, a, b] = m;
  if (a === '' && b === '') return null;
  if (a === '') {
    const suffix = Number(b);
    if (suffix === 0 || size === 0) return null;
    return { start: Math.max(0, size - suffix), end: size - 1 };
  }
  const start = Number(a);
  const end = b === '' ? size - 1 : Math.min(Number(b), size - 1);
  if (start >= size || end < start) return null;
  return { start, end };
}

/**
 * GET/HEAD /v1/blobs/:sha256: immutable content, strong ETag (the sha256), single Range
 * requests, cacheable by any HTTP cache. The id must be 64 hex digits, which also makes it
 * impossible to name any file outside the store.
 */
export async function serveBlob(ctx: AppContext, req: Request, res: Response, sha256: string): Promise<void> {
  if (!isSha256(sha256)) {
    throw new ServerError('CLP_E_BAD_BLOB_ID', 'a blob id is the 64 lowercase hex digits of a sha256', {
      field: 'sha256',
    });
  }
  // A blob whose release row never committed (a crash or a lost name race) is not served: the
  // file and its release are visible together or not at all.
  const [size, [release]] = await Promise.all([
    ctx.blobs.size(sha256),
    ctx.db.select({ id: releases.id }).from(releases).where(eq(releases.sha256, sha256)),
  ]);
  if (size === undefined || !release)
    throw new ServerError('CLP_E_NOT_FOUND', `no blob ${sha256} on this server`);
  const etag = `"${sha256}"`;
  res.setHeader('Accept-Ranges', 'bytes');
  // Only answers that describe the blob carry its validator and the year-long caching; an error
  // (416 below) must not be kept by a shared cache as if it were the content.
  const describeBlob = () => {
    res.setHeader('ETag', etag);
    res.setHeader('Cache-Control', 'public, max-age=31536000, immutable');
  };
  const inm = req.headers['if-none-match'];
  if (inm?.split(',').some((t) => t.trim() === etag || t.trim() === `W/${etag}` || t.trim() === '*')) {
    describeBlob();
    res.status(304).end();
    return;
  }
  let range: { start: number; end: number } | undefined;
  const rangeHeader = req.headers.range;
  const ifRange = req.get('if-range');
  if (rangeHeader && (!ifRange || ifRange.trim() === etag)) {
    const parsed = parseRange(rangeHeader, size);
    if (parsed === null) {
      res.setHeader('Content-Range', `bytes */${size}`);
      throw new ServerError(
        'CLP_E_RANGE_NOT_SATISFIABLE',
        `range ${rangeHeader} is outside the blob's ${size} bytes`,
      );
    }
    range = parsed;
  }
  describeBlob();
  res.setHeader('Content-Type', 'application/octet-stream');
  if (range) {
    res.status(206);
    res.setHeader('Content-Range', `bytes ${range.start}-${range.end}/${size}`);
    res.setHeader('Content-Length', String(range.end - range.start + 1));
  } else {
    res.status(200);
    res.setHeader('Content-Length', String(size));
  }
  if (req.method === 'HEAD' || size === 0) {
    res.end();
    return;
  }
  try {
    await pipeline(ctx.blobs.read(sha256, range), res);
  } catch (error) {
    // A client that goes away mid-download is normal (it resumes with Range later).
    if ((error as NodeJS.ErrnoException).code !== 'ERR_STREAM_PREMATURE_CLOSE') throw error;
  }
}
