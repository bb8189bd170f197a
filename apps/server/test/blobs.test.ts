import { createHash } from 'node:crypto';
import { request } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { conformanceProblem } from './conformance.ts';
import { drivers, fakeRelease, jsonInspector, type Running, start } from './harness.ts';

/**
 * A raw GET that sends the path exactly as written (fetch would normalise `..`); its answer is
 * checked against the OpenAPI document like every fetched one.
 */
function rawGet(url: string, path: string): Promise<{ status: number; body: string }> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve, reject) => {
    const req = request({ hostname, port, path, method: 'GET' }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const body = Buffer.concat(chunks).toString();
        const status = res.statusCode ?? 0;
        const problem = conformanceProblem(
          'GET',
          path.split('?')[0]!,
          status,
          res.headers['content-type'] ?? null,
          body,
        );
        if (problem) reject(new Error(`the response does not conform to /openapi.json: ${problem}`));
        else resolve({ status, body });
      });
    });
    req.on('error', reject);
    req.end();
  });
}

const stores = drivers().flatMap((driver) =>
  (['folder', 'postgres'] as const).map((blobStore) => ({
    driver,
    blobStore,
    name: `${driver.name}, ${blobStore} store`,
  })),
);

describe.each(stores)('blob downloads on $name', ({ driver, blobStore }) => {
  let s: Running;
  let bytes: Buffer;
  let sha: string;

  beforeAll(async () => {
    s = await start({ driver, inspect: jsonInspector, config: { blobStore } });
    bytes = fakeRelease('CLP1260501');
    sha = createHash('sha256').update(bytes).digest('hex');
    const res = await s.call('POST', '/v1/releases', {
      token: s.admin,
      body: bytes,
      headers: { 'content-type': 'application/octet-stream' },
    });
    expect(res.status).toBe(201);
    expect(res.body.sha256).toBe(sha);
  });
  afterAll(async () => {
    await s?.close();
  });

  it('serves the file by sha256 with a strong ETag and immutable caching, without a credential', async () => {
    const res = await fetch(`${s.url}/v1/blobs/${sha}`);
    expect(res.status).toBe(200);
    expect(res.headers.get('etag')).toBe(`"${sha}"`);
    expect(res.headers.get('cache-control')).toContain('immutable');
    expect(res.headers.get('accept-ranges')).toBe('bytes');
    expect(res.headers.get('content-length')).toBe(String(bytes.length));
    expect(Buffer.from(await res.arrayBuffer())).toEqual(bytes);
  });

  it('answers HEAD with the headers and no body', async () => {
    const res = await fetch(`${s.url}/v1/blobs/${sha}`, { method: 'HEAD' });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-length')).toBe(String(bytes.length));
    expect(await res.text()).toBe('');
  });

  it('answers 304 to a matching If-None-Match', async () => {
    const res = await fetch(`${s.url}/v1/blobs/${sha}`, { headers: { 'if-none-match': `"${sha}"` } });
    expect(res.status).toBe(304);
    expect(res.headers.get('etag')).toBe(`"${sha}"`);
    const other = await fetch(`${s.url}/v1/blobs/${sha}`, { headers: { 'if-none-match': '"other"' } });
    expect(other.status).toBe(200);
  });

  it.each([
    ['bytes=0-9', 0, 9],
    ['bytes=10-', 10, -1],
    ['bytes=-5', -5, -1],
  ])('answers Range %s with 206 and the right bytes', async (range, from, to) => {
    const res = await fetch(`${s.url}/v1/blobs/${sha}`, { headers: { range } });
    expect(res.status).toBe(206);
    const start = from < 0 ? bytes.length + from : from;
    const end = to < 0 ? bytes.length - 1 : to;
    expect(res.headers.get('content-range')).toBe(`bytes ${start}-${end}/${bytes.length}`);
    expect(Buffer.from(await res.arrayBuffer())).toEqual(bytes.subarray(start, end + 1));
  });

  it('answers 416 with the size to a range past the end, neither cacheable nor carrying the ETag', async () => {
    const res = await fetch(`${s.url}/v1/blobs/${sha}`, { headers: { range: `bytes=${bytes.length}-` } });
    expect(res.status).toBe(416);
    expect(res.headers.get('content-range')).toBe(`bytes */${bytes.length}`);
    expect(res.headers.get('etag')).toBeNull();
    expect(res.headers.get('cache-control')).toBe('no-store');
    expect(((await res.json()) as { error: { code: string } }).error.code).toBe(
      'CLP_E_RANGE_NOT_SATISFIABLE',
    );
  });

  it('sends the whole file when If-Range names another version', async () => {
    const res = await fetch(`${s.url}/v1/blobs/${sha}`, {
      headers: { range: 'bytes=0-3', 'if-range': '"old"' },
    });
    expect(res.status).toBe(200);
    expect(Buffer.from(await res.arrayBuffer())).toEqual(bytes);
  });

  it('answers 404 for an unknown sha256, which no cache keeps (it may be uploaded later)', async () => {
    const res = await fetch(`${s.url}/v1/blobs/${'f'.repeat(64)}`);
    expect(res.status).toBe(404);
    expect(res.headers.get('etag')).toBeNull();
    expect(res.headers.get('cache-control')).toBe('no-store');
    expect(((await res.json()) as { error: { code: string } }).error.code).toBe('CLP_E_NOT_FOUND');
  });

  it.each([
    `/v1/blobs/${'A'.repeat(64)}`,
    '/v1/blobs/..%2F..%2F..%2Fetc%2Fpasswd',
    '/v1/blobs/%2e%2e%2f%2e%2e%2fpackage.json',
    `/v1/blobs/${'0'.repeat(63)}`,
    '/v1/blobs/..',
    '/v1/blobs/../../etc/passwd',
    '/v1/blobs/%00',
    '/v1/blobs/tmp',
  ])('refuses %s with 400 or 404 and never a file outside the store', async (path) => {
    const res = await rawGet(s.url, path);
    expect([400, 404]).toContain(res.status);
    expect(res.body).not.toContain('root:');
    expect(res.body).not.toContain('"workspaces"');
    if (res.status === 400)
      expect(JSON.parse(res.body).error.code).toMatch(/^CLP_E_(BAD_BLOB_ID|VALIDATION)$/);
  });
});
