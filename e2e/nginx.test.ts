import { randomBytes } from 'node:crypto';
import { readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createTestDatabase, type TestDatabase } from '@clp/db';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildRelease, sha256 } from './support/agents.ts';
import { missingNginx, type NginxFront, startNginxFront } from './support/nginx-front.ts';
import { missingBuild } from './support/paths.ts';
import { type ServerProcess, startServerProcess } from './support/server-process.ts';

/*
 * The scale-out deployment for real: Debian's nginx with deploy/nginx/clp-locations.conf in front
 * of two server processes on one PostgreSQL database, release files in PostgreSQL.
 */

const missing =
  missingBuild() ?? missingNginx() ?? (process.env.DATABASE_URL ? undefined : 'PostgreSQL (DATABASE_URL)');
if (missing) console.warn(`skipped: needs ${missing}`);

async function requestsServed(replica: ServerProcess, route: string): Promise<number> {
  const text = await (await fetch(`${replica.url}/metrics`)).text();
  let total = 0;
  for (const line of text.split('\n')) {
    if (line.startsWith('clp_http_requests_total{') && line.includes(`route="${route}"`)) {
      total += Number(line.split(' ').at(-1));
    }
  }
  return total;
}

describe.skipIf(missing !== undefined)('nginx in front of server replicas', () => {
  let database: TestDatabase;
  const replicas: ServerProcess[] = [];
  let front: NginxFront;
  let release: Awaited<ReturnType<typeof buildRelease>>;
  const admin = `clp_adm_nginx${randomBytes(16).toString('hex')}`;

  beforeAll(async () => {
    database = await createTestDatabase(process.env.DATABASE_URL!, 'clp_nginx');
    release = await buildRelease('CLP1261210', 256 * 1024);
    const env = { CLP_BLOB_STORE: 'postgres', CLP_TRUST_PROXY: 'loopback' };
    replicas.push(await startServerProcess({ databaseUrl: database.url, admin, env }));
    replicas.push(await startServerProcess({ databaseUrl: database.url, admin, env }));
    for (const r of replicas) await writeFile(join(r.keysDir, 'release.pub'), await readFile(release.pub));
    front = await startNginxFront(replicas.map((r) => r.url));
  }, 180_000);

  afterAll(async () => {
    await front?.stop();
    await Promise.all(replicas.map((r) => r.stop()));
    await database?.drop();
    if (release) await rm(release.dir, { recursive: true, force: true });
  }, 60_000);

  const viaNginx = (path: string, init: RequestInit = {}) =>
    fetch(front.url + path, {
      ...init,
      headers: { authorization: `Bearer ${admin}`, ...(init.headers as Record<string, string>) },
    });

  it('spreads API calls over every replica', async () => {
    const before = await Promise.all(replicas.map((r) => requestsServed(r, '/v1/tiers')));
    for (let i = 0; i < 10; i++) expect((await viaNginx('/v1/tiers')).status).toBe(200);
    const after = await Promise.all(replicas.map((r) => requestsServed(r, '/v1/tiers')));
    for (const [i, n] of after.entries()) expect(n - before[i]!).toBeGreaterThan(0);
  });

  it('takes an upload through nginx and serves the release from its cache: whole, ranged, conditional', async () => {
    const up = await viaNginx('/v1/releases', {
      method: 'POST',
      body: release.bytes,
      headers: { 'content-type': 'application/octet-stream' },
    });
    expect(up.status).toBe(201);
    const id = sha256(release.bytes);
    const first = await viaNginx(`/v1/blobs/${id}`);
    expect(first.status).toBe(200);
    expect(first.headers.get('x-cache-status')).toBe('MISS');
    expect(sha256(Buffer.from(await first.arrayBuffer()))).toBe(id);
    const served = await Promise.all(replicas.map((r) => requestsServed(r, '/v1/blobs/:sha256')));
    const second = await viaNginx(`/v1/blobs/${id}`);
    expect(second.headers.get('x-cache-status')).toBe('HIT');
    expect(second.headers.get('etag')).toBe(`"${id}"`);
    expect(second.headers.get('cache-control')).toContain('immutable');
    expect(sha256(Buffer.from(await second.arrayBuffer()))).toBe(id);
    const part = await viaNginx(`/v1/blobs/${id}`, { headers: { range: 'bytes=1000-1999' } });
    expect(part.status).toBe(206);
    expect(part.headers.get('content-range')).toBe(`bytes 1000-1999/${release.bytes.length}`);
    expect(Buffer.from(await part.arrayBuffer()).equals(release.bytes.subarray(1000, 2000))).toBe(true);
    const unchanged = await viaNginx(`/v1/blobs/${id}`, { headers: { 'if-none-match': `"${id}"` } });
    expect(unchanged.status).toBe(304);
    // The repeats never reached a replica.
    expect(await Promise.all(replicas.map((r) => requestsServed(r, '/v1/blobs/:sha256')))).toEqual(served);
  });

  it('keeps no answer but a 200 for a blob: an unknown one is asked again each time', async () => {
    const unknown = 'e'.repeat(64);
    for (let i = 0; i < 2; i++) {
      const res = await viaNginx(`/v1/blobs/${unknown}`);
      expect(res.status).toBe(404);
      expect(res.headers.get('x-cache-status')).not.toBe('HIT');
    }
  });

  it('answers through the other replica when one is gone', async () => {
    await replicas[1]!.stop();
    for (let i = 0; i < 6; i++) expect((await viaNginx('/v1/tiers')).status).toBe(200);
  });
});
