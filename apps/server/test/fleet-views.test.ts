import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cohortBucket, inStage, ManualClock } from '../src/index.ts';
import { drivers, FACTS, fakeRelease, jsonInspector, type Running, start } from './harness.ts';

/**
 * The fleet views the console and `clpctl admin` read: the overview, a rollout's timeline, the
 * rollout preview, and the machine list's search, filters, order and paging. Every figure is
 * checked against what the seeded fleet makes it by construction.
 */
describe.each(drivers())('fleet views on $name', (driver) => {
  let s: Running;
  // Seeded ten days before "now", 2026-05-01T12:00Z (ManualClock advances in seconds).
  const clock = new ManualClock('2026-04-21T12:00:00Z');
  const hour = 3600;
  const day = 24 * hour;
  const machines = new Map<string, { credential: string; hostname: string; arch: string }>();
  let patchA: string;
  let patchB: string;

  beforeAll(async () => {
    s = await start({ driver, clock, inspect: jsonInspector });
    patchA = await upload('CLP1260501');
    patchB = await upload('CLP1260502');
    const beta = await token('beta', ['web']);
    const edge = await token('edge', []);
    // web-01..web-06 in beta, tagged web; db_01 and DB-02 in edge.
    for (let i = 1; i <= 6; i++) await enroll(beta, `views-web-${i}`, `web-0${i}`);
    await enroll(edge, 'views-db-1', 'db_01', 'aarch64');
    await enroll(edge, 'views-db-2', 'DB-02', 'aarch64');
    // Seen: web-01..03 now (patch A installed on 01 and 02, failed on 03); web-04 three days
    // ago; web-05 ten days ago; web-06 never; db_01 now with patch B; DB-02 revoked.
    await poll('views-web-5');
    clock.advance(7 * day);
    await poll('views-web-4');
    clock.advance(3 * day);
    await poll('views-web-1', [{ name: 'CLP1260501', sha256: patchA, state: 'installed' }]);
    await poll('views-web-2', [{ name: 'CLP1260501', sha256: patchA, state: 'installed' }]);
    await poll('views-web-3', [{ name: 'CLP1260501', sha256: patchA, state: 'failed' }]);
    await poll('views-db-1', [{ name: 'CLP1260502', sha256: patchB, state: 'installed' }]);
    const revoked = await s.call('POST', '/v1/machines/views-db-2/revoke', { token: s.admin, json: {} });
    expect(revoked.status).toBe(200);
  });
  afterAll(async () => {
    await s?.close();
  });

  async function upload(name: string): Promise<string> {
    const res = await s.call('POST', '/v1/releases', {
      token: s.admin,
      body: fakeRelease(name),
      headers: { 'content-type': 'application/octet-stream' },
    });
    expect(res.status).toBe(201);
    return res.body.id as string;
  }

  async function token(tier: string, tags: string[]): Promise<string> {
    const res = await s.call('POST', '/v1/enrollment-tokens', {
      token: s.admin,
      json: { tier, uses: 50, tags },
    });
    expect(res.status).toBe(201);
    return res.body.token as string;
  }

  async function enroll(secret: string, machineId: string, hostname: string, arch = 'x86_64') {
    const res = await s.call('POST', '/v1/agent/enroll', {
      json: { token: secret, facts: { ...FACTS, hostname, arch }, machineId },
    });
    expect(res.status, JSON.stringify(res.body)).toBe(201);
    machines.set(machineId, { credential: res.body.credential, hostname, arch });
  }

  async function poll(machineId: string, installed: unknown[] = []) {
    const m = machines.get(machineId)!;
    const res = await s.call('POST', '/v1/agent/poll', {
      token: m.credential,
      json: { facts: { ...FACTS, hostname: m.hostname, arch: m.arch }, installed },
    });
    expect(res.status).toBe(200);
    return res.body as { apply: Array<{ releaseId: string; rolloutId: string }> };
  }

  async function report(
    machineId: string,
    rollout: { id: string; releaseId: string; releaseName: string },
    status: string,
    extra = {},
  ) {
    const res = await s.call('POST', '/v1/agent/reports', {
      token: machines.get(machineId)!.credential,
      json: {
        reports: [
          {
            id: randomUUID(),
            rolloutId: rollout.id,
            releaseId: rollout.releaseId,
            name: rollout.releaseName,
            status,
            at: clock.now().toISOString(),
            ...extra,
          },
        ],
      },
    });
    expect(res.status).toBe(200);
  }

  /** Offers are written in batches, and stages and silences move on the server's tick. */
  async function settle(): Promise<void> {
    await s.server.context.offers.flush();
    await s.server.tick();
  }

  async function hostnames(query: string): Promise<{ names: string[]; total: number }> {
    const res = await s.call('GET', `/v1/machines?${query}`, { token: s.admin });
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    return { names: res.body.machines.map((m: { hostname: string }) => m.hostname), total: res.body.total };
  }

  describe('the machine list', () => {
    it('finds machines by part of the host name or id, in any case, with % and _ taken literally', async () => {
      expect((await hostnames('q=WEB-0')).names).toEqual([
        'web-01',
        'web-02',
        'web-03',
        'web-04',
        'web-05',
        'web-06',
      ]);
      // Sorted here: the database's collation orders upper and lower case.
      expect((await hostnames('q=views-db')).names.sort()).toEqual(['DB-02', 'db_01']);
      // `_` is not a wildcard: "b_0" matches db_01 only, not DB-02.
      expect((await hostnames('q=b_0')).names).toEqual(['db_01']);
      expect((await hostnames('q=%25')).names).toEqual([]);
    });

    it('filters by when machines were last seen', async () => {
      expect((await hostnames('seen=day')).names).toEqual(['db_01', 'web-01', 'web-02', 'web-03']);
      expect((await hostnames('seen=week')).names).toEqual(['db_01', 'web-01', 'web-02', 'web-03', 'web-04']);
      expect((await hostnames('seen=stale&revoked=false')).names).toEqual(['web-05', 'web-06']);
      expect((await hostnames('seen=never')).names).toEqual(['DB-02', 'web-06']);
    });

    it('filters by a release installed, or failed and rolled back', async () => {
      expect((await hostnames(`installed=${patchA}`)).names).toEqual(['web-01', 'web-02']);
      expect((await hostnames(`failed=${patchA}`)).names).toEqual(['web-03']);
      expect((await hostnames(`installed=${patchB}`)).names).toEqual(['db_01']);
    });

    it('filters by revocation, tier, tag and arch together', async () => {
      expect((await hostnames('revoked=true')).names).toEqual(['DB-02']);
      expect((await hostnames('tier=edge&revoked=false')).names).toEqual(['db_01']);
      expect((await hostnames('tag=web&arch=x86_64&seen=day')).names).toEqual(['web-01', 'web-02', 'web-03']);
    });

    it('sorts by last seen or enrolment, and pages with the total of every match', async () => {
      const bySeen = await hostnames('sort=lastSeen&tier=beta');
      expect(bySeen.names.slice(3)).toEqual(['web-04', 'web-05', 'web-06']);
      const first = await hostnames('q=web&limit=4&offset=0');
      const second = await hostnames('q=web&limit=4&offset=4');
      expect(first).toEqual({ names: ['web-01', 'web-02', 'web-03', 'web-04'], total: 6 });
      expect(second).toEqual({ names: ['web-05', 'web-06'], total: 6 });
    });

    it('refuses an unknown filter value with 400 naming the field', async () => {
      const res = await s.call('GET', '/v1/machines?seen=yesterday', { token: s.admin });
      expect(res.status).toBe(400);
      expect(res.body.error.code).toBe('CLP_E_VALIDATION');
      expect(res.body.error.field).toBe('query.seen');
    });
  });

  describe('the overview', () => {
    it('counts the fleet by when it was seen, and the machines per installed patch', async () => {
      const res = await s.call('GET', '/v1/overview', { token: s.admin });
      expect(res.status).toBe(200);
      expect(res.body.machines).toEqual({ enrolled: 7, seenLastDay: 4, notSeenForWeek: 2, revoked: 1 });
      expect(res.body.installed).toEqual([
        { name: 'CLP1260501', sha256: patchA, installed: 2, failed: 1 },
        { name: 'CLP1260502', sha256: patchB, installed: 1, failed: 0 },
      ]);
      expect(res.body.serverTime).toBe(clock.now().toISOString());
    });

    it('lists live rollouts and the latest failures with machine, host name and error code', async () => {
      const created = await s.call('POST', '/v1/rollouts', {
        token: s.admin,
        json: {
          releaseId: await upload('CLP1260504'),
          tier: 'edge',
          stages: [{ percent: 100, minDurationSeconds: 0 }],
        },
      });
      expect(created.status).toBe(201);
      const offer = await poll('views-db-1');
      expect(offer.apply.map((a) => a.rolloutId)).toEqual([created.body.id]);
      await settle();
      const live = await s.call('GET', '/v1/overview', { token: s.admin });
      expect(live.body.rollouts.map((r: { id: string }) => r.id)).toContain(created.body.id);
      await report('views-db-1', created.body, 'failed', { errorCode: 'CLP_E_PRECONDITION' });
      const res = await s.call('GET', '/v1/overview', { token: s.admin });
      expect(res.body.recentFailures[0]).toMatchObject({
        machineId: 'views-db-1',
        hostname: 'db_01',
        rolloutId: created.body.id,
        errorCode: 'CLP_E_PRECONDITION',
        status: 'failed',
      });
      // Its one machine answered, so it completed: no longer listed as moving.
      const completed = await s.call('GET', `/v1/rollouts/${created.body.id}`, { token: s.admin });
      expect(completed.body.state).toBe('completed');
      expect(res.body.rollouts.map((r: { id: string }) => r.id)).not.toContain(created.body.id);
    });

    it('is read by a viewer, and refused without a credential', async () => {
      const viewer = await s.call('POST', '/v1/admin-tokens', {
        token: s.admin,
        json: { name: 'v', role: 'viewer' },
      });
      expect((await s.call('GET', '/v1/overview', { token: viewer.body.token })).status).toBe(200);
      const anonymous = await s.call('GET', '/v1/overview');
      expect(anonymous.status).toBe(401);
      expect(anonymous.body.error.code).toBe('CLP_E_UNAUTHORIZED');
    });
  });

  describe('the rollout preview', () => {
    const stages = [
      { percent: 50, minDurationSeconds: 0 },
      { percent: 100, minDurationSeconds: 0 },
    ];

    it('counts the machines each stage reaches, and a rollout made with its id reaches exactly those', async () => {
      const body = { releaseId: patchA, tier: 'beta', selector: { tags: ['web'] }, stages };
      const res = await s.call('POST', '/v1/rollouts/preview', { token: s.admin, json: body });
      expect(res.status, JSON.stringify(res.body)).toBe(200);
      expect(res.body.inTier).toBe(6);
      expect(res.body.matching).toBe(6);
      const ids = [1, 2, 3, 4, 5, 6].map((i) => `views-web-${i}`);
      const firstStage = ids.filter((m) => inStage(cohortBucket(m, res.body.rolloutId), 50));
      expect(res.body.stages).toEqual([
        { percent: 50, machines: firstStage.length },
        { percent: 100, machines: 6 },
      ]);
      const created = await s.call('POST', '/v1/rollouts', {
        token: s.admin,
        json: {
          ...body,
          id: res.body.rolloutId,
          stages: [{ percent: 50, minDurationSeconds: 3600 }, stages[1]],
        },
      });
      expect(created.status, JSON.stringify(created.body)).toBe(201);
      expect(created.body.id).toBe(res.body.rolloutId);
      const offered: string[] = [];
      for (const m of ids) {
        if ((await poll(m)).apply.some((a) => a.rolloutId === created.body.id)) offered.push(m);
      }
      expect(offered).toEqual(firstStage);
      const again = await s.call('POST', '/v1/rollouts/preview', {
        token: s.admin,
        json: { ...body, id: res.body.rolloutId },
      });
      expect(again.status).toBe(409);
      expect(again.body.error.code).toBe('CLP_E_CONFLICT');
      expect(again.body.error.field).toBe('id');
      await s.call('POST', `/v1/rollouts/${created.body.id}/abort`, { token: s.admin, json: {} });
    });

    it('leaves out machines the selector or the release architecture excludes', async () => {
      const res = await s.call('POST', '/v1/rollouts/preview', {
        token: s.admin,
        json: { releaseId: patchA, tier: 'edge', selector: { arch: ['x86_64'] }, stages },
      });
      expect(res.status).toBe(200);
      // db_01 is aarch64; DB-02 is revoked.
      expect(res.body).toMatchObject({ inTier: 1, matching: 0, stages: [{ machines: 0 }, { machines: 0 }] });
    });

    it('is refused to a viewer, and names an unknown release', async () => {
      const viewer = await s.call('POST', '/v1/admin-tokens', {
        token: s.admin,
        json: { name: 'v2', role: 'viewer' },
      });
      const body = { releaseId: patchA, tier: 'beta', stages };
      const forbidden = await s.call('POST', '/v1/rollouts/preview', {
        token: viewer.body.token,
        json: body,
      });
      expect(forbidden.status).toBe(403);
      expect(forbidden.body.error.code).toBe('CLP_E_FORBIDDEN');
      const unknown = await s.call('POST', '/v1/rollouts/preview', {
        token: s.admin,
        json: { ...body, releaseId: 'f'.repeat(64) },
      });
      expect(unknown.status).toBe(404);
      expect(unknown.body.error.code).toBe('CLP_E_NOT_FOUND');
    });
  });

  describe('the rollout timeline', () => {
    it("counts each offered machine once by its latest outcome, and its last point is the rollout's counters", async () => {
      const releaseId = await upload('CLP1260503');
      const created = await s.call('POST', '/v1/rollouts', {
        token: s.admin,
        json: {
          releaseId,
          tier: 'beta',
          stages: [{ percent: 100, minDurationSeconds: 0 }],
          failureThreshold: { maxFailureRate: 0.9, minReports: 100 },
          silenceTimeoutSeconds: 3600,
        },
      });
      expect(created.status, JSON.stringify(created.body)).toBe(201);
      const id = created.body.id as string;
      const r = created.body;
      for (const m of ['views-web-1', 'views-web-2', 'views-web-3', 'views-web-4']) await poll(m);
      await settle();
      clock.advance(10 * 60);
      await report('views-web-1', r, 'applied');
      await report('views-web-2', r, 'failed');
      clock.advance(20 * 60);
      // The same failure again, and a retry that succeeds: each machine still counts once.
      await report('views-web-2', r, 'failed');
      await report('views-web-3', r, 'failed');
      await report('views-web-3', r, 'applied');
      // A machine the rollout never offered the release to counts for nothing.
      await report('views-db-1', r, 'failed');
      // web-4 was offered and says nothing: silent once the timeout has passed.
      clock.advance(2 * hour);
      await settle();
      const rollout = await s.call('GET', `/v1/rollouts/${id}`, { token: s.admin });
      expect(rollout.body.counters).toMatchObject({ applied: 2, failed: 1, silent: 1 });

      const res = await s.call('GET', `/v1/rollouts/${id}/timeline?buckets=30`, { token: s.admin });
      expect(res.status).toBe(200);
      const t = res.body;
      // 2 h 30 min in at most 30 buckets: 5 minutes each.
      expect(t.bucketSeconds).toBe(300);
      expect(t.points.length).toBeLessThanOrEqual(30);
      expect(t.maxFailureRate).toBe(0.9);
      const last = t.points.at(-1);
      expect(last).toMatchObject({ appliedTotal: 2, failedTotal: 1, silentTotal: 1 });
      expect(last.failureRate).toBeCloseTo(rollout.body.failureRate, 10);
      expect(last.failureRate).toBeCloseTo(0.5, 10);
      const sum = (k: 'applied' | 'failed' | 'silent') => t.points.reduce((n: number, p: any) => n + p[k], 0);
      expect([sum('applied'), sum('failed'), sum('silent')]).toEqual([2, 1, 1]);
      // Buckets follow the agents' report times, each machine at its latest outcome: web-1 applied
      // ten minutes in; web-2's failure sent again and web-3's success came at thirty minutes.
      expect(t.points[2]).toMatchObject({ applied: 1, failed: 0, silent: 0 });
      expect(Date.parse(t.points[2].at) - Date.parse(t.from)).toBe(600_000);
      expect(t.points[6]).toMatchObject({ applied: 1, failed: 1, silent: 0 });
    });

    it('answers 404 for an unknown rollout and 400 for a bucket count out of range', async () => {
      const unknown = await s.call('GET', `/v1/rollouts/${randomUUID()}/timeline`, { token: s.admin });
      expect(unknown.status).toBe(404);
      expect(unknown.body.error.code).toBe('CLP_E_NOT_FOUND');
      const list = await s.call('GET', '/v1/rollouts?limit=1', { token: s.admin });
      const bad = await s.call('GET', `/v1/rollouts/${list.body.rollouts[0].id}/timeline?buckets=0`, {
        token: s.admin,
      });
      expect(bad.status).toBe(400);
      expect(bad.body.error.field).toBe('query.buckets');
    });
  });
});
