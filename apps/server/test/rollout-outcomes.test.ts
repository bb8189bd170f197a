import { randomUUID } from 'node:crypto';
import { rolloutMachines } from '@clp/db';
import { eq } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cohortBucket, createServer, defaultConfig, inStage, ManualClock } from '../src/index.ts';
import { drivers, FACTS, fakeRelease, jsonInspector, type Running, start } from './harness.ts';

/**
 * Bar R9: a machine speaks only for itself. Every report is stored, but a rollout's counters and
 * its halt move only for machines the rollout offered its release to, once per machine, by each
 * machine's latest outcome.
 */
describe.each(drivers())('per-machine rollout outcomes on $name', (driver) => {
  let s: Running;
  const clock = new ManualClock('2026-07-01T00:00:00Z');
  let serial = 0;

  beforeAll(async () => {
    s = await start({ driver, clock, inspect: jsonInspector });
  });
  afterAll(async () => {
    await s?.close();
  });

  async function release(): Promise<string> {
    serial++;
    const res = await s.call('POST', '/v1/releases', {
      token: s.admin,
      body: fakeRelease(`CLP12607${String(serial).padStart(2, '0')}`),
      headers: { 'content-type': 'application/octet-stream' },
    });
    expect(res.status).toBe(201);
    return res.body.id as string;
  }

  async function machines(tier: string, ids: string[]) {
    const token = await s.call('POST', '/v1/enrollment-tokens', {
      token: s.admin,
      json: { tier, uses: ids.length },
    });
    const out: Array<{ machineId: string; credential: string }> = [];
    for (const machineId of ids) {
      const res = await s.call('POST', '/v1/agent/enroll', {
        json: { token: token.body.token, facts: FACTS, machineId },
      });
      expect(res.status, JSON.stringify(res.body)).toBe(201);
      out.push(res.body);
    }
    return out;
  }

  async function rollout(releaseId: string, tier: string, extra: Record<string, unknown> = {}) {
    const res = await s.call('POST', '/v1/rollouts', {
      token: s.admin,
      json: {
        releaseId,
        tier,
        stages: [{ percent: 100, minDurationSeconds: 86_400 }],
        failureThreshold: { maxFailureRate: 0.3, minReports: 3 },
        ...extra,
      },
    });
    expect(res.status, JSON.stringify(res.body)).toBe(201);
    return res.body.id as string;
  }

  const poll = (credential: string) =>
    s.call('POST', '/v1/agent/poll', { token: credential, json: { facts: FACTS } });

  function report(
    credential: string,
    rolloutId: string,
    releaseId: string,
    status: string,
    at = clock.now(),
    count = 1,
  ) {
    const reports = Array.from({ length: count }, () => ({
      id: randomUUID(),
      rolloutId,
      releaseId,
      name: 'CLP1270001',
      status,
      at: at.toISOString(),
    }));
    return s.call('POST', '/v1/agent/reports', { token: credential, json: { reports } });
  }

  const shown = async (id: string) => (await s.call('GET', `/v1/rollouts/${id}`, { token: s.admin })).body;

  it('counts nothing of a machine the rollout never offered: a stable machine cannot halt an edge rollout', async () => {
    const releaseId = await release();
    const edge = await rollout(releaseId, 'edge');
    const stableRollout = await rollout(releaseId, 'stable', {
      failureThreshold: { maxFailureRate: 0.3, minReports: 1 },
    });
    const [stranger] = await machines('stable', ['outcome-stranger-1']);
    expect(
      (await poll(stranger!.credential)).body.apply.map((a: { rolloutId: string }) => a.rolloutId),
    ).toEqual([stableRollout]);
    for (let i = 0; i < 12; i++)
      expect((await report(stranger!.credential, edge, releaseId, 'failed')).status).toBe(200);
    expect(await shown(edge)).toMatchObject({
      state: 'active',
      counters: { applied: 0, failed: 0, reverted: 0, revertFailed: 0 },
      haltReason: null,
    });
    // The reports are kept as the machine's history all the same.
    const stored = await s.call('GET', `/v1/reports?rollout=${edge}&machine=outcome-stranger-1`, {
      token: s.admin,
    });
    expect(stored.body.reports).toHaveLength(12);
    // And the stable rollout it was offered is untouched by them.
    expect((await shown(stableRollout)).counters).toMatchObject({ applied: 0, failed: 0 });
    const rows = await s.server.context.db
      .select()
      .from(rolloutMachines)
      .where(eq(rolloutMachines.rolloutId, edge));
    expect(rows).toEqual([]);
  });

  it('counts a machine once however often it says so: hundreds of applied reports do not mask failures', async () => {
    const releaseId = await release();
    const id = await rollout(releaseId, 'edge');
    const [loud, b, c] = await machines('edge', ['outcome-loud-1', 'outcome-fails-1', 'outcome-fails-2']);
    for (const m of [loud, b, c]) await poll(m!.credential);
    expect(
      (await report(loud!.credential, id, releaseId, 'applied', clock.now(), 300)).body.accepted,
    ).toHaveLength(300);
    expect((await shown(id)).counters).toMatchObject({ applied: 1, failed: 0 });
    await report(b!.credential, id, releaseId, 'failed');
    await report(c!.credential, id, releaseId, 'failed', clock.now(), 50);
    const halted = await shown(id);
    expect(halted.counters).toMatchObject({ applied: 1, failed: 2 });
    expect(halted.state).toBe('halted');
    expect(halted.haltReason).toMatch(/2 of 3/);
  });

  it("replaces a machine's failure by its later success, and a late older report changes nothing", async () => {
    const releaseId = await release();
    const id = await rollout(releaseId, 'beta', {
      failureThreshold: { maxFailureRate: 0.9, minReports: 100 },
    });
    const [m] = await machines('beta', ['outcome-retry-1']);
    await poll(m!.credential);
    const t0 = clock.now();
    const t1 = new Date(t0.getTime() + 60_000);
    const t2 = new Date(t0.getTime() + 120_000);
    await report(m!.credential, id, releaseId, 'failed', t1);
    expect((await shown(id)).counters).toMatchObject({ applied: 0, failed: 1 });
    await report(m!.credential, id, releaseId, 'applied', t2);
    expect((await shown(id)).counters).toMatchObject({ applied: 1, failed: 0 });
    // A spool resent out of order: the failure from before is older than the success.
    await report(m!.credential, id, releaseId, 'failed', t0);
    expect((await shown(id)).counters).toMatchObject({ applied: 1, failed: 0 });
    // Reverting counts apart from applying.
    await report(m!.credential, id, releaseId, 'reverted', t2);
    expect((await shown(id)).counters).toMatchObject({ applied: 1, failed: 0, reverted: 1, revertFailed: 0 });
    const [row] = await s.server.context.db
      .select()
      .from(rolloutMachines)
      .where(eq(rolloutMachines.rolloutId, id));
    expect(row).toMatchObject({
      machineId: 'outcome-retry-1',
      applyOutcome: 'applied',
      applyAt: t2,
      revertOutcome: 'reverted',
    });
  });

  it("does not let a report dated in the future hide the machine's later outcomes", async () => {
    const releaseId = await release();
    const id = await rollout(releaseId, 'beta', {
      failureThreshold: { maxFailureRate: 0.9, minReports: 100 },
    });
    const [m] = await machines('beta', ['outcome-future-1']);
    await poll(m!.credential);
    // A clock set years ahead (a reset RTC), or an agent that wants its success to stick.
    await report(m!.credential, id, releaseId, 'applied', new Date('2999-01-01T00:00:00Z'));
    expect((await shown(id)).counters).toMatchObject({ applied: 1, failed: 0 });
    clock.advance(600);
    await report(m!.credential, id, releaseId, 'failed', clock.now());
    expect((await shown(id)).counters).toMatchObject({ applied: 0, failed: 1 });
    // A few minutes of clock skew still order reports by the agent's own time.
    const soon = new Date(clock.now().getTime() + 2 * 60_000);
    await report(m!.credential, id, releaseId, 'applied', soon);
    await report(m!.credential, id, releaseId, 'failed', new Date(clock.now().getTime() + 60_000));
    expect((await shown(id)).counters).toMatchObject({ applied: 1, failed: 0 });
  });

  it('records the offer of a poll once per machine, and counts a report that follows it before the batch is written', async () => {
    const releaseId = await release();
    const id = await rollout(releaseId, 'edge', {
      failureThreshold: { maxFailureRate: 0.9, minReports: 100 },
    });
    const [m] = await machines('edge', ['outcome-quick-1']);
    const first = clock.now();
    await poll(m!.credential);
    // No flush in between: the offer is still in the server's memory when the report arrives.
    await report(m!.credential, id, releaseId, 'applied');
    expect((await shown(id)).counters.applied).toBe(1);
    clock.advance(3600);
    for (let i = 0; i < 3; i++) await poll(m!.credential);
    await s.server.context.offers.flush();
    const rows = await s.server.context.db
      .select()
      .from(rolloutMachines)
      .where(eq(rolloutMachines.rolloutId, id));
    expect(rows).toHaveLength(1);
    expect(rows[0]).toMatchObject({
      machineId: 'outcome-quick-1',
      offeredAt: first,
      applyOutcome: 'applied',
    });
  });

  it("counts a machine of the tier only once the rollout's stage reaches its cohort", async () => {
    const releaseId = await release();
    const id = await rollout(releaseId, 'stable', {
      stages: [
        { percent: 10, minDurationSeconds: 3600 },
        { percent: 100, minDurationSeconds: 0 },
      ],
      failureThreshold: { maxFailureRate: 0.9, minReports: 100 },
    });
    const outside = Array.from({ length: 100 }, (_, i) => `outcome-outside-${i}`).find(
      (mid) => !inStage(cohortBucket(mid, id), 10),
    )!;
    const [m] = await machines('stable', [outside]);
    const offered = async () =>
      (await poll(m!.credential)).body.apply.map((a: { rolloutId: string }) => a.rolloutId);
    expect(await offered()).not.toContain(id);
    await report(m!.credential, id, releaseId, 'failed');
    expect((await shown(id)).counters.failed).toBe(0);
    clock.advance(3600);
    await s.server.tick();
    expect(await offered()).toContain(id);
    await report(m!.credential, id, releaseId, 'failed');
    expect((await shown(id)).counters.failed).toBe(1);
  });

  it("counts nothing of a report about another release than the rollout's", async () => {
    const releaseId = await release();
    const other = await release();
    const id = await rollout(releaseId, 'edge', {
      failureThreshold: { maxFailureRate: 0.9, minReports: 100 },
    });
    const [m] = await machines('edge', ['outcome-other-release-1']);
    await poll(m!.credential);
    await report(m!.credential, id, other, 'failed');
    expect((await shown(id)).counters).toMatchObject({ applied: 0, failed: 0 });
  });

  it('counts a report sent to another server process than the poll that offered it', async () => {
    const releaseId = await release();
    const id = await rollout(releaseId, 'edge', {
      failureThreshold: { maxFailureRate: 0.9, minReports: 100 },
    });
    const [m] = await machines('edge', ['outcome-replica-1']);
    const replica = await createServer(defaultConfig({ dataDir: s.dataDir, logLevel: 'silent' }), {
      database: s.server.context.database,
      clock,
      inspect: jsonInspector,
    });
    const { url } = await replica.listen(0, '127.0.0.1');
    try {
      await poll(m!.credential);
      const res = await fetch(`${url}/v1/agent/reports`, {
        method: 'POST',
        headers: { authorization: `Bearer ${m!.credential}`, 'content-type': 'application/json' },
        body: JSON.stringify({
          reports: [
            {
              id: randomUUID(),
              rolloutId: id,
              releaseId,
              name: 'CLP1270001',
              status: 'failed',
              at: clock.now().toISOString(),
            },
          ],
        }),
      });
      expect(res.status).toBe(200);
      expect((await shown(id)).counters.failed).toBe(1);
    } finally {
      await replica.close();
    }
  });
});
