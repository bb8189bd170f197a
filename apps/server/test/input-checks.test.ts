import { randomUUID } from 'node:crypto';
import { machines, reports } from '@clp/db';
import { inArray } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ManualClock } from '../src/index.ts';
import { drivers, FACTS, jsonInspector, type Running, start } from './harness.ts';

/**
 * Bar R9: text from machines and operators is checked at the edge (a NUL, another control
 * character or a lone surrogate anywhere gets a 400 naming the field), and the batch writers
 * isolate a row the database refuses, so one machine never fails or stalls another's write.
 */
describe.each(drivers())('text checked at the edge on $name', (driver) => {
  let s: Running;
  const clock = new ManualClock('2026-06-01T00:00:00Z');
  let fleet: Array<{ machineId: string; credential: string }>;

  async function enrollFleet(prefix: string, count: number) {
    const token = await s.call('POST', '/v1/enrollment-tokens', {
      token: s.admin,
      json: { tier: 'edge', uses: count },
    });
    expect(token.status).toBe(201);
    const out: Array<{ machineId: string; credential: string }> = [];
    for (let i = 0; i < count; i++) {
      const res = await s.call('POST', '/v1/agent/enroll', {
        json: { token: token.body.token, facts: FACTS, machineId: `${prefix}-${String(i).padStart(3, '0')}` },
      });
      expect(res.status, JSON.stringify(res.body)).toBe(201);
      out.push(res.body);
    }
    return out;
  }

  beforeAll(async () => {
    s = await start({ driver, clock, inspect: jsonInspector });
    fleet = await enrollFleet('text-machine', 3);
  });
  afterAll(async () => {
    await s?.close();
  });

  const report = (extra: Record<string, unknown> = {}) => ({
    id: randomUUID(),
    name: 'CLP1260601',
    status: 'failed',
    at: clock.now().toISOString(),
    ...extra,
  });

  const cases: Array<[string, string, string, () => { token: 'admin' | 'machine'; json?: unknown }, string]> =
    [
      [
        'a NUL in a query value',
        'GET',
        '/v1/machines?hostname=web%001',
        () => ({ token: 'admin' }),
        'query.hostname',
      ],
      ['a NUL in a query name', 'GET', '/v1/machines?host%00name=x', () => ({ token: 'admin' }), 'query'],
      [
        'an escape in a query value',
        'GET',
        '/v1/reports?machine=%1b%5b31m',
        () => ({ token: 'admin' }),
        'query.machine',
      ],
      ['a NUL in a path id', 'GET', '/v1/machines/text%00machine', () => ({ token: 'admin' }), 'params.id'],
      ['a NUL in a rollout id', 'GET', '/v1/rollouts/%00', () => ({ token: 'admin' }), 'params.id'],
      [
        'a bell in a tier path',
        'PATCH',
        '/v1/tiers/edge%07',
        () => ({ token: 'admin', json: {} }),
        'params.id',
      ],
      [
        'a NUL in a tier description',
        'POST',
        '/v1/tiers',
        () => ({ token: 'admin', json: { name: 'nul-tier', description: 'a\u0000b' } }),
        'body.description',
      ],
      [
        'a newline in an admin token name',
        'POST',
        '/v1/admin-tokens',
        () => ({ token: 'admin', json: { name: 'two\nlines', role: 'viewer' } }),
        'body.name',
      ],
      [
        'a NUL in a rollout reason',
        'POST',
        `/v1/rollouts/${randomUUID()}/pause`,
        () => ({ token: 'admin', json: { reason: 'because\u0000' } }),
        'body.reason',
      ],
      [
        'a NUL in poll facts',
        'POST',
        '/v1/agent/poll',
        () => ({ token: 'machine', json: { facts: { ...FACTS, hostname: 'web\u00001' } } }),
        'body.facts.hostname',
      ],
      [
        'a NUL in an installed patch name',
        'POST',
        '/v1/agent/poll',
        () => ({
          token: 'machine',
          json: {
            facts: FACTS,
            installed: [{ name: 'CLP\u0000', sha256: 'a'.repeat(64), state: 'installed' }],
          },
        }),
        'body.installed.0.name',
      ],
      [
        'a NUL in a field the schema would drop',
        'POST',
        '/v1/agent/poll',
        () => ({ token: 'machine', json: { facts: { ...FACTS, extra: '\u0000' } } }),
        'body.facts.extra',
      ],
      [
        'a NUL in a report log',
        'POST',
        '/v1/agent/reports',
        () => ({ token: 'machine', json: { reports: [report(), report({ log: 'ok\u0000' })] } }),
        'body.reports.1.log',
      ],
      [
        'an escape in a report log',
        'POST',
        '/v1/agent/reports',
        () => ({ token: 'machine', json: { reports: [report({ log: '\u001b[31mred' })] } }),
        'body.reports.0.log',
      ],
      [
        'a tab in a report error code',
        'POST',
        '/v1/agent/reports',
        () => ({ token: 'machine', json: { reports: [report({ errorCode: 'CLP_E\tX' })] } }),
        'body.reports.0.errorCode',
      ],
      [
        'a lone surrogate in a report name',
        'POST',
        '/v1/agent/reports',
        () => ({ token: 'machine', json: { reports: [report({ name: 'CLP\ud800' })] } }),
        'body.reports.0.name',
      ],
    ];

  it.each(cases)(
    'answers %s with 400 naming the field, and stores nothing',
    async (_what, method, path, make, field) => {
      const before = await s.call('GET', '/v1/reports?limit=1000', { token: s.admin });
      const { token, json } = make();
      const res = await s.call(method, path, {
        token: token === 'admin' ? s.admin : fleet[0]!.credential,
        ...(json !== undefined ? { json } : {}),
      });
      expect(res.status, JSON.stringify(res.body)).toBe(400);
      expect(res.body.error).toMatchObject({ code: 'CLP_E_VALIDATION', field });
      expect(res.body.error.message).toMatch(/control character|lone surrogate/);
      const after = await s.call('GET', '/v1/reports?limit=1000', { token: s.admin });
      expect(after.body.reports).toHaveLength(before.body.reports.length);
    },
  );

  it('answers a lone surrogate escaped in the JSON text with 400 naming the field', async () => {
    const body = `{"facts":{"hostname":"web-\\udc00","os":{"id":"vincent","version":"1"},"arch":"x86_64","agentVersion":"1"}}`;
    const res = await s.call('POST', '/v1/agent/poll', {
      token: fleet[0]!.credential,
      body,
      headers: { 'content-type': 'application/json' },
    });
    expect(res.status).toBe(400);
    expect(res.body.error).toMatchObject({ code: 'CLP_E_VALIDATION', field: 'body.facts.hostname' });
  });

  it('refuses a deeply nested body from a caller without credentials at once, naming where it nests too deep', async () => {
    // 200 KB of brackets on the one route that reads a body before any credential: checking it
    // must not cost the server a CPU for a minute.
    const depth = 100_000;
    const body = `{"token":"x","facts":${'['.repeat(depth)}${']'.repeat(depth)}}`;
    const started = performance.now();
    const res = await s.call('POST', '/v1/agent/enroll', {
      body,
      headers: { 'content-type': 'application/json' },
    });
    const ms = performance.now() - started;
    expect(res.status).toBe(400);
    expect(res.body.error.code).toBe('CLP_E_VALIDATION');
    expect(res.body.error.field).toMatch(/^body\.facts(\.0)+$/);
    expect(res.body.error.message).toMatch(/nested deeper than 32 levels/);
    expect(ms).toBeLessThan(2000);
  });

  it('takes tabs and line ends in a report log, and any Unicode text elsewhere', async () => {
    const log = 'step 1\tok\r\nstep 2\tfailed: exit 1\n';
    const named = { ...FACTS, hostname: 'sérvér-東京-🚀' };
    const poll = await s.call('POST', '/v1/agent/poll', {
      token: fleet[1]!.credential,
      json: { facts: named },
    });
    expect(poll.status, JSON.stringify(poll.body)).toBe(200);
    const sent = report({ log });
    const res = await s.call('POST', '/v1/agent/reports', {
      token: fleet[1]!.credential,
      json: { reports: [sent] },
    });
    expect(res.status).toBe(200);
    expect(res.body.accepted).toEqual([sent.id]);
    const shown = await s.call('GET', `/v1/machines/${fleet[1]!.machineId}`, { token: s.admin });
    expect(shown.body.hostname).toBe('sérvér-東京-🚀');
    expect(shown.body.recentReports[0].log).toBe(log);
  });

  it('records the polls of many machines in one batch though one of them sends data the database refuses', async () => {
    const many = await enrollFleet('seen-batch', 40);
    const ctx = s.server.context;
    await ctx.seen.flush();
    const at = new Date('2026-06-01T01:00:00Z');
    const poisoned = many[17]!.machineId;
    for (const m of many) {
      const hostname = m.machineId === poisoned ? 'bad\u0000host' : `host-of-${m.machineId}`;
      ctx.seen.record(m.machineId, { at, installed: [], facts: { ...FACTS, hostname } });
    }
    await ctx.seen.flush();
    const ids = many.map((m) => m.machineId);
    const rows = await ctx.db
      .select({ id: machines.id, hostname: machines.hostname, lastSeenAt: machines.lastSeenAt })
      .from(machines)
      .where(inArray(machines.id, ids));
    for (const row of rows) {
      if (row.id === poisoned) {
        expect(row).toMatchObject({ hostname: FACTS.hostname, lastSeenAt: null });
      } else {
        expect(row).toMatchObject({ hostname: `host-of-${row.id}`, lastSeenAt: at });
      }
    }
    expect(rows).toHaveLength(40);
    // Nothing of the refused poll stays queued: the next flush writes the next polls at once.
    const later = new Date('2026-06-01T02:00:00Z');
    ctx.seen.record(poisoned, { at: later, installed: [], facts: { ...FACTS, hostname: 'clean-again' } });
    ctx.seen.record(ids[0]!, { at: later, installed: [], facts: { ...FACTS, hostname: 'moved-on' } });
    await ctx.seen.flush();
    const again = await ctx.db
      .select({ id: machines.id, hostname: machines.hostname, lastSeenAt: machines.lastSeenAt })
      .from(machines)
      .where(inArray(machines.id, [poisoned, ids[0]!]));
    expect(Object.fromEntries(again.map((r) => [r.id, [r.hostname, r.lastSeenAt?.toISOString()]]))).toEqual({
      [poisoned]: ['clean-again', later.toISOString()],
      [ids[0]!]: ['moved-on', later.toISOString()],
    });
  });

  it("stores every other machine's reports of a round though one machine's report is refused by the database", async () => {
    const many = await enrollFleet('report-round', 12);
    const ctx = s.server.context;
    const receivedAt = clock.now();
    const row = (machineId: string, log: string | null) => ({
      id: randomUUID(),
      machineId,
      releaseId: null,
      rolloutId: null,
      name: 'CLP1260601',
      sha256: null,
      status: 'downloading',
      errorCode: null,
      log,
      at: receivedAt,
      receivedAt,
    });
    const batches = many.map((m, i) => [
      row(m.machineId, 'fine'),
      row(m.machineId, i === 5 ? 'bad\u0000log' : null),
    ]);
    // All queued at once, so that they share rounds with the poisoned one.
    const answers = await Promise.allSettled(batches.map((b) => ctx.reportWriter.write(b)));
    for (const [i, a] of answers.entries()) {
      if (i === 5) {
        expect(a.status).toBe('rejected');
        expect((a as PromiseRejectedResult).reason).toMatchObject({
          code: 'CLP_E_VALIDATION',
          field: 'body.reports',
        });
      } else {
        expect(a.status, String((a as PromiseRejectedResult).reason)).toBe('fulfilled');
        expect([...(a as PromiseFulfilledResult<Set<string>>).value].sort()).toEqual(
          batches[i]!.map((r) => r.id).sort(),
        );
      }
    }
    const stored = await ctx.db
      .select({ id: reports.id })
      .from(reports)
      .where(
        inArray(
          reports.id,
          batches.flat().map((r) => r.id),
        ),
      );
    expect(stored).toHaveLength(22);
    expect(stored.map((r) => r.id)).not.toContain(batches[5]![0]!.id);
  });
});
