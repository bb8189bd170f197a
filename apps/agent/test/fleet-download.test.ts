import { readdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fakeRelease, jsonInspector } from '../../server/test/harness.ts';
import { HttpConfig } from '../src/fleet/config.ts';
import { downloadRelease } from '../src/fleet/download.ts';
import { AgentHttpClient } from '../src/fleet/http-client.ts';
import {
  deadUrl,
  FAST_HTTP,
  type FaultProxy,
  faultProxy,
  type Running,
  removeAll,
  sha256,
  start,
  tempDir,
} from './fleet-harness.ts';

describe('release downloads against the real server', () => {
  let s: Running;
  let proxy: FaultProxy;
  let work: string;
  /** A release of ~200 KiB, so that a cut in the middle leaves a real partial file. */
  let release: { name: string; sha256: string; size: number; url: string };
  let body: Buffer;

  beforeAll(async () => {
    s = await start({ inspect: jsonInspector });
    proxy = await faultProxy(s.url);
    work = await tempDir('clp-fleet-download-');
    const doc = JSON.parse(fakeRelease('CLP1260310').toString()) as Record<string, unknown>;
    body = Buffer.from(JSON.stringify({ ...doc, padding: 'x'.repeat(200_000) }));
    const res = await s.call('POST', '/v1/releases', {
      token: s.admin,
      body,
      headers: { 'content-type': 'application/octet-stream' },
    });
    expect(res.status).toBe(201);
    release = {
      name: 'CLP1260310',
      sha256: sha256(body),
      size: body.length,
      url: `/v1/blobs/${sha256(body)}`,
    };
    expect(res.body.sha256).toBe(release.sha256);
  });

  afterAll(async () => {
    await proxy?.close();
    await s?.close();
    await removeAll(work);
  });

  function client(servers: string[]): AgentHttpClient {
    return new AgentHttpClient({ servers, http: HttpConfig.parse(FAST_HTTP) });
  }

  it('a download cut halfway is resumed with Range and the joined file matches the sha256', async () => {
    const dir = join(work, 'resume');
    proxy.seen.length = 0;
    proxy.fault = (_req, index) => (index === 0 ? { cutAfter: 80_000 } : 'pass');
    const result = await downloadRelease({ client: client([proxy.url]), release, dir, root: work });
    expect(result.resumedFrom).toBeGreaterThanOrEqual(80_000);
    expect(result.requests).toBe(2);
    expect(proxy.seen[1]?.range).toBe(`bytes=${result.resumedFrom}-`);
    expect(sha256(await readFile(result.file))).toBe(release.sha256);
    expect(await readdir(dir)).toEqual([`${release.sha256}.clp`]);
  });

  it('a cut that outlasts the retries leaves the partial file, and the next run asks only for the rest', async () => {
    const dir = join(work, 'next-run');
    proxy.seen.length = 0;
    proxy.fault = (_req, index) => (index === 0 ? { cutAfter: 50_000 } : 'refuse');
    await expect(
      downloadRelease({ client: client([proxy.url]), release, dir, root: work }),
    ).rejects.toMatchObject({
      code: 'CLP_E_DOWNLOAD_FAILED',
    });
    const part = (await stat(join(dir, `${release.sha256}.clp.part`))).size;
    expect(part).toBeGreaterThanOrEqual(50_000);
    expect(part).toBeLessThan(release.size);
    proxy.seen.length = 0;
    proxy.fault = () => 'pass';
    const result = await downloadRelease({ client: client([proxy.url]), release, dir, root: work });
    expect(proxy.seen).toHaveLength(1);
    expect(proxy.seen[0]?.range).toBe(`bytes=${part}-`);
    expect(result.resumedFrom).toBe(part);
    expect(sha256(await readFile(result.file))).toBe(release.sha256);
  });

  it('corrupted bytes are rejected by sha256 and nothing is kept', async () => {
    const dir = join(work, 'corrupt');
    proxy.fault = () => 'corrupt';
    const error = await downloadRelease({ client: client([proxy.url]), release, dir, root: work }).catch(
      (e: unknown) => e,
    );
    expect(error).toMatchObject({ code: 'CLP_E_DOWNLOAD_CORRUPT' });
    expect((error as Error).message).toContain(release.sha256);
    expect(await readdir(dir)).toEqual([]);
  });

  it('a corrupted resume is detected and settled by one fresh download', async () => {
    const dir = join(work, 'corrupt-resume');
    proxy.seen.length = 0;
    proxy.fault = (_req, index) => (index === 0 ? { cutAfter: 60_000 } : index === 1 ? 'corrupt' : 'pass');
    const result = await downloadRelease({ client: client([proxy.url]), release, dir, root: work });
    expect(proxy.seen.map((r) => r.range)).toEqual([undefined, 'bytes=60000-', undefined]);
    expect(sha256(await readFile(result.file))).toBe(release.sha256);
  });

  it('5xx answers are retried and a dead mirror falls back to the next server', async () => {
    const dir = join(work, 'fallback');
    proxy.seen.length = 0;
    proxy.fault = (_req, index) => (index < 2 ? { status: 503 } : 'pass');
    const result = await downloadRelease({
      client: client([await deadUrl(), proxy.url]),
      release,
      dir,
      root: work,
    });
    expect(proxy.seen).toHaveLength(3);
    expect(sha256(await readFile(result.file))).toBe(release.sha256);
  });

  it('a file already downloaded and intact is not fetched again', async () => {
    const dir = join(work, 'resume');
    proxy.seen.length = 0;
    const result = await downloadRelease({ client: client([proxy.url]), release, dir, root: work });
    expect(result.cached).toBe(true);
    expect(proxy.seen).toHaveLength(0);
  });

  it('reports progress up to the full size', async () => {
    const dir = join(work, 'progress');
    proxy.fault = () => 'pass';
    const seen: number[] = [];
    await downloadRelease({
      client: client([proxy.url]),
      release,
      dir,
      root: work,
      onProgress: (p) => {
        expect(p.total).toBe(release.size);
        seen.push(p.received);
      },
    });
    expect(seen.at(-1)).toBe(release.size);
  });
});
