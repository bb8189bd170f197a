import { randomUUID } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openDatabase, queryOnce } from '@clp/db';
import { sql } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ROUTES, startServer } from '../src/index.ts';
import { drivers, FACTS, fakeRelease, jsonInspector, type Running, start } from './harness.ts';

describe.each(drivers())('operations on $name', (driver) => {
  let s: Running;
  const lines: string[] = [];

  beforeAll(async () => {
    s = await start({
      driver,
      inspect: jsonInspector,
      config: { logLevel: 'info', rateLimits: { enrollPerMinute: 3, authFailuresPerMinute: 5 } },
      logStream: { write: (line: string) => lines.push(line) },
    });
  });
  afterAll(async () => {
    await s?.close();
  });

  if (driver.name !== 'postgres') {
    console.warn(
      `skipped on ${driver.name}: cutting server connections needs PostgreSQL (PGlite runs in-process)`,
    );
  }
  it.skipIf(driver.name !== 'postgres')(
    'recovers by itself when its PostgreSQL connections are cut',
    async () => {
      const token = await s.call('POST', '/v1/enrollment-tokens', { token: s.admin, json: { tier: 'edge' } });
      s.server.context.limits.enroll.reset();
      const m = await s.call('POST', '/v1/agent/enroll', {
        json: { token: token.body.token, facts: FACTS, machineId: 'cut-machine' },
      });
      expect(m.status).toBe(201);
      const rows = (await s.server.context.db.execute(sql`select current_database() as name`)) as unknown as
        | Array<{ name: string }>
        | { rows: Array<{ name: string }> };
      const name = (Array.isArray(rows) ? rows : rows.rows)[0]!.name;
      const cut = await queryOnce<{ n: number }>(
        process.env.DATABASE_URL!,
        `select count(pg_terminate_backend(pid))::int as n from pg_stat_activity
        where datname = $1 and pid <> pg_backend_pid()`,
        [name],
      );
      expect(cut[0]!.n).toBeGreaterThan(0);
      const statuses: number[] = [];
      for (let i = 0; i < 20; i++) {
        const poll = await s.call('POST', '/v1/agent/poll', {
          token: m.body.credential,
          json: { facts: FACTS },
        });
        statuses.push(poll.status);
        if (poll.status === 200) break;
        expect(poll.status).toBe(503);
        await new Promise((r) => setTimeout(r, 100));
      }
      expect(statuses.at(-1)).toBe(200);
      expect((await s.call('GET', '/readyz')).status).toBe(200);
    },
  );

  it('answers /healthz and /readyz with the database kind', async () => {
    const health = await s.call('GET', '/healthz');
    expect(health.status).toBe(200);
    expect(health.body).toEqual({ status: 'ok' });
    const ready = await s.call('GET', '/readyz');
    expect(ready.status).toBe(200);
    expect(ready.body).toEqual({ status: 'ready', database: driver.name });
  });

  it('describes every route of the table in /openapi.json', async () => {
    const res = await s.call('GET', '/openapi.json');
    expect(res.status).toBe(200);
    expect(res.body.openapi).toBe('3.1.0');
    const paths = res.body.paths as Record<
      string,
      Record<string, { operationId: string; responses: object }>
    >;
    const ids = new Set<string>();
    for (const route of ROUTES) {
      const path = route.path.replace(/:([A-Za-z0-9_]+)/g, '{$1}');
      const op = paths[path]?.[route.method.toLowerCase()];
      expect(op, `${route.method} ${route.path} missing from the OpenAPI document`).toBeDefined();
      expect(op!.operationId).toBe(route.id);
      ids.add(op!.operationId);
      if (route.access.kind === 'admin')
        expect(Object.keys(op!.responses)).toEqual(expect.arrayContaining(['401', '403']));
    }
    const documented = Object.values(paths).flatMap((ops) => Object.keys(ops));
    expect(documented).toHaveLength(ROUTES.length);
    expect(paths['/v1/releases']!.post!).toMatchObject({
      requestBody: { content: { 'application/octet-stream': {} } },
    });
  });

  it('exposes Prometheus metrics that count requests by route and status', async () => {
    await s.call('GET', '/v1/tiers', { token: s.admin });
    const res = await fetch(`${s.url}/metrics`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^text\/plain/);
    const text = await res.text();
    expect(text).toMatch(/# TYPE clp_http_requests_total counter/);
    expect(text).toMatch(/clp_http_requests_total\{method="GET",route="\/v1\/tiers",status="200"\} [1-9]/);
    expect(text).toMatch(
      /clp_http_request_duration_seconds_bucket\{le="0.005",method="GET",route="\/v1\/tiers"\}/,
    );
  });

  it('writes structured JSON log lines', async () => {
    lines.length = 0;
    const token = await s.call('POST', '/v1/enrollment-tokens', { token: s.admin, json: { tier: 'edge' } });
    const res = await s.call('POST', '/v1/agent/enroll', {
      json: { token: token.body.token, facts: FACTS, machineId: 'log-machine-1' },
    });
    expect(res.status).toBe(201);
    const entries = lines.map((l) => JSON.parse(l) as Record<string, unknown>);
    const enrolled = entries.find((e) => e.msg === 'machine enrolled');
    expect(enrolled).toMatchObject({
      level: 30,
      service: 'clp-server',
      machine: 'log-machine-1',
      tier: 'edge',
    });
    expect(typeof enrolled!.time).toBe('string');
    // Secrets never reach the log.
    expect(lines.join('\n')).not.toContain(token.body.token);
    expect(lines.join('\n')).not.toContain(res.body.credential);
  });

  it('answers 429 with Retry-After once an address has enrolled too often', async () => {
    const token = await s.call('POST', '/v1/enrollment-tokens', {
      token: s.admin,
      json: { tier: 'edge', uses: 10 },
    });
    // The limit is 3 a minute; start from a clean count whatever the tests before spent.
    s.server.context.limits.enroll.reset();
    const statuses: number[] = [];
    let last: Awaited<ReturnType<Running['call']>> | undefined;
    for (let i = 0; i < 4; i++) {
      last = await s.call('POST', '/v1/agent/enroll', {
        json: { token: token.body.token, facts: FACTS, machineId: `rate-machine-${i}` },
      });
      statuses.push(last.status);
    }
    expect(statuses).toEqual([201, 201, 201, 429]);
    expect(last!.body.error.code).toBe('CLP_E_RATE_LIMITED');
    expect(Number(last!.headers.get('retry-after'))).toBeGreaterThan(0);
  });

  it('answers 429 to a credential refused too often, and still lets a good token from the same address in', async () => {
    s.server.context.limits.authFailures.reset();
    const statuses: number[] = [];
    for (let i = 0; i < 6; i++) statuses.push((await s.call('GET', '/v1/releases', { token: 'bad' })).status);
    expect(statuses).toEqual([401, 401, 401, 401, 401, 429]);
    const blocked = await s.call('GET', '/v1/releases', { token: 'bad' });
    expect(blocked.body.error.code).toBe('CLP_E_RATE_LIMITED');
    expect(Number(blocked.headers.get('retry-after'))).toBeGreaterThan(0);
    expect((await s.call('GET', '/v1/releases', { token: s.admin })).status).toBe(200);
    // Unauthenticated routes stay open.
    expect((await s.call('GET', '/healthz')).status).toBe(200);
    s.server.context.limits.authFailures.reset();
  });

  it.each([
    ['POST', '/v1/enrollment-tokens', { tags: [] }, 'body.tier'],
    ['POST', '/v1/enrollment-tokens', { tier: 'edge', uses: 0 }, 'body.uses'],
    ['POST', '/v1/enrollment-tokens', { tier: 'edge', tags: ['ok', 'no spaces'] }, 'body.tags.1'],
    ['POST', '/v1/admin-tokens', { name: 'x', role: 'root' }, 'body.role'],
    ['POST', '/v1/tiers', { name: 'Bad Name' }, 'body.name'],
    ['PUT', '/v1/tiers/order', { order: 'edge' }, 'body.order'],
    [
      'POST',
      '/v1/rollouts',
      { releaseId: 'a'.repeat(64), tier: 'edge', stages: [{ percent: 0, minDurationSeconds: 0 }] },
      'body.stages.0.percent',
    ],
    ['POST', '/v1/rollouts', { releaseId: 'nope', tier: 'edge', stages: [] }, 'body.releaseId'],
  ])('answers %s %s with a bad body by 400 naming the field (%j)', async (method, path, json, field) => {
    const res = await s.call(method, path, { token: s.admin, json });
    expect(res.status).toBe(400);
    expect(res.body.error.code).toBe('CLP_E_VALIDATION');
    expect(res.body.error.field).toBe(field);
    expect(res.body.error.message).toContain(field);
  });

  it('answers bad JSON, a bad query and a bad agent body by 400 naming the field', async () => {
    const broken = await s.call('POST', '/v1/tiers', {
      token: s.admin,
      body: '{"name": ',
      headers: { 'content-type': 'application/json' },
    });
    expect(broken.status).toBe(400);
    expect(broken.body.error.field).toBe('body');
    const query = await s.call('GET', '/v1/releases?limit=many', { token: s.admin });
    expect(query.status).toBe(400);
    expect(query.body.error.field).toBe('query.limit');
    const token = await s.call('POST', '/v1/enrollment-tokens', { token: s.admin, json: { tier: 'edge' } });
    s.server.context.limits.enroll.reset();
    const enroll = await s.call('POST', '/v1/agent/enroll', {
      json: { token: token.body.token, facts: { ...FACTS, arch: 'sparc' } },
    });
    expect(enroll.status).toBe(400);
    expect(enroll.body.error.field).toBe('body.facts.arch');
  });

  it('checks the credential before reading the body', async () => {
    s.server.context.limits.authFailures.reset();
    const res = await s.call('POST', '/v1/agent/reports', {
      body: '{"reports": [',
      headers: { 'content-type': 'application/json' },
    });
    expect(res.status).toBe(401);
    const upload = await s.call('POST', '/v1/releases', {
      token: 'not-a-token',
      body: Buffer.alloc(1024),
      headers: { 'content-type': 'application/octet-stream' },
    });
    expect(upload.status).toBe(401);
    s.server.context.limits.authFailures.reset();
  });

  it('takes a full batch of reports with long logs', async () => {
    const token = await s.call('POST', '/v1/enrollment-tokens', { token: s.admin, json: { tier: 'edge' } });
    s.server.context.limits.enroll.reset();
    const m = await s.call('POST', '/v1/agent/enroll', {
      json: { token: token.body.token, facts: FACTS, machineId: 'batch-machine' },
    });
    expect(m.status).toBe(201);
    const reports = Array.from({ length: 500 }, () => ({
      id: randomUUID(),
      name: 'CLP1260401',
      status: 'failed',
      errorCode: 'CLP_E_HEALTH_CHECK',
      log: 'x'.repeat(16_384),
      at: new Date().toISOString(),
    }));
    const res = await s.call('POST', '/v1/agent/reports', { token: m.body.credential, json: { reports } });
    expect(res.status, JSON.stringify(res.body).slice(0, 300)).toBe(200);
    expect(res.body.accepted).toHaveLength(500);
  });

  it('refuses an upload that is not application/octet-stream with 415', async () => {
    const res = await s.call('POST', '/v1/releases', {
      token: s.admin,
      body: fakeRelease('CLP1260401'),
      headers: { 'content-type': 'multipart/form-data; boundary=x' },
    });
    expect(res.status).toBe(415);
    expect(res.body.error.code).toBe('CLP_E_UNSUPPORTED_MEDIA_TYPE');
  });

  it('answers an unknown route with 404 pointing at the API description', async () => {
    const res = await s.call('GET', '/v1/nothing-here');
    expect(res.status).toBe(404);
    expect(res.body.error.message).toContain('/openapi.json');
  });
});

describe('readiness', () => {
  it('answers /readyz 503 while the database is unreachable, and /healthz 200', async () => {
    const handle = await openDatabase({ dataDir: ':memory:' });
    const dataDir = await mkdtemp(join(tmpdir(), 'clp-ready-'));
    const started = await startServer({ dataDir, database: handle, logLevel: 'silent' });
    try {
      expect((await fetch(`${started.url}/readyz`)).status).toBe(200);
      await handle.close();
      const down = await fetch(`${started.url}/readyz`);
      expect(down.status).toBe(503);
      expect(await down.json()).toEqual({ status: 'database unreachable', database: 'pglite' });
      expect((await fetch(`${started.url}/healthz`)).status).toBe(200);
      // Calls that need the database answer 503 with Retry-After, not 500.
      const tiers = await fetch(`${started.url}/v1/tiers`, {
        headers: { authorization: `Bearer ${started.adminToken}` },
      });
      expect(tiers.status).toBe(503);
      expect(tiers.headers.get('retry-after')).toBe('2');
      expect(((await tiers.json()) as { error: { code: string } }).error.code).toBe('CLP_E_UNAVAILABLE');
    } finally {
      await started.close().catch(() => undefined);
      await rm(dataDir, { recursive: true, force: true });
    }
  });
});
