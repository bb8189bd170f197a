import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { missingOwnPostgres, type OwnPostgres, ownPostgres } from './support/own-postgres.ts';
import { missingBuild } from './support/paths.ts';
import { type ServerProcess, startServerProcess } from './support/server-process.ts';

/*
 * The server on a PostgreSQL of the test's own, restarted again and again under load: the
 * process must live through every restart and answer again, and while the database is down it
 * answers 503 with Retry-After at once (liveness stays 200, readiness goes 503).
 */

const missing = missingBuild() ?? missingOwnPostgres();
if (missing) console.warn(`skipped: needs ${missing}`);

const RESTARTS = 6;
const LOADERS = 8;
const FACTS = {
  hostname: 'restart-m',
  os: { id: 'vincent', version: '2025.11' },
  arch: 'x86_64',
  agentVersion: '0.1.0',
};

describe.skipIf(missing !== undefined)('the server while its PostgreSQL restarts', () => {
  let pg: OwnPostgres;
  let server: ServerProcess;
  let credential: string;

  beforeAll(async () => {
    pg = await ownPostgres();
    await pg.start();
    server = await startServerProcess({ databaseUrl: pg.url });
    const token = await server.call('POST', '/v1/enrollment-tokens', { json: { tier: 'edge', uses: 1 } });
    const enrolled = await server.call('POST', '/v1/agent/enroll', {
      token: '',
      json: { token: token.body.token, facts: FACTS },
    });
    expect(enrolled.status, JSON.stringify(enrolled.body)).toBe(201);
    credential = enrolled.body.credential;
  }, 120_000);

  afterAll(async () => {
    await server?.stop();
    await pg?.remove();
  }, 60_000);

  it(`lives through ${RESTARTS} fast restarts under load and answers again after each`, async () => {
    const statuses = new Map<number, number>();
    let loading = true;
    const loader = async () => {
      while (loading) {
        const res = await (Math.random() < 0.5
          ? server.call('POST', '/v1/agent/poll', { token: credential, json: { facts: FACTS } })
          : server.call('POST', '/v1/agent/reports', {
              token: credential,
              json: {
                reports: [
                  { id: randomUUID(), name: 'CLP1261301', status: 'applied', at: new Date().toISOString() },
                ],
              },
            })
        ).catch(() => ({ status: 0 }));
        statuses.set(res.status, (statuses.get(res.status) ?? 0) + 1);
      }
    };
    const loaders = Array.from({ length: LOADERS }, loader);
    try {
      for (let i = 0; i < RESTARTS; i++) {
        await new Promise((r) => setTimeout(r, 700));
        await pg.restart();
        const recovered = await untilOk(() => server.call('GET', '/v1/tiers'), 15_000);
        expect(recovered, `no 200 after restart ${i + 1}:\n${server.output()}`).toBe(true);
      }
    } finally {
      loading = false;
      await Promise.all(loaders);
    }
    expect(await Promise.race([server.exited, new Promise((r) => setTimeout(() => r('running'), 100))])).toBe(
      'running',
    );
    expect(server.output()).not.toMatch(/TypeError|uncaught/i);
    // Only answers the server meant: 200s, and 503s while the database was away; no 500, no cut connection.
    expect([...statuses.keys()].filter((s) => s !== 200 && s !== 503)).toEqual([]);
    expect(statuses.get(200)).toBeGreaterThan(0);
    console.info(`answers during ${RESTARTS} restarts: ${JSON.stringify(Object.fromEntries(statuses))}`);
  }, 180_000);

  it('answers 503 with Retry-After within two seconds while the database is down; /healthz stays 200 and /readyz goes 503', async () => {
    await pg.stop();
    try {
      const latencies: number[] = [];
      for (let i = 0; i < 5; i++) {
        const started = performance.now();
        const res = await server.call('GET', '/v1/tiers');
        latencies.push(performance.now() - started);
        expect(res.status).toBe(503);
        expect(res.body.error.code).toBe('CLP_E_UNAVAILABLE');
        expect(Number(res.headers.get('retry-after'))).toBeGreaterThan(0);
      }
      console.info(`503 latency while the database is down (ms): ${latencies.map(Math.round).join(', ')}`);
      expect(Math.max(...latencies)).toBeLessThan(2000);
      expect((await server.call('GET', '/healthz')).status).toBe(200);
      const ready = await server.call('GET', '/readyz');
      expect(ready.status).toBe(503);
    } finally {
      await pg.start();
    }
    expect(await untilOk(() => server.call('GET', '/readyz'), 15_000)).toBe(true);
  }, 60_000);
});

async function untilOk(call: () => Promise<{ status: number }>, limitMs: number): Promise<boolean> {
  const until = Date.now() + limitMs;
  while (Date.now() < until) {
    if ((await call().catch(() => ({ status: 0 }))).status === 200) return true;
    await new Promise((r) => setTimeout(r, 100));
  }
  return false;
}
