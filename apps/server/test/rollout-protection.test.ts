import { createHmac, randomUUID } from 'node:crypto';
import { createServer as createHttpServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { webhookDeliveries } from '@clp/db';
import { eq } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  cohortBucket,
  createServer,
  defaultConfig,
  inStage,
  ManualClock,
  SIGNATURE_HEADER,
} from '../src/index.ts';
import { drivers, FACTS, fakeRelease, jsonInspector, type Running, start } from './harness.ts';

const SECRET = 'f3a9c2d17be04e6a8c5d2b91e07f4a6c3d8e1b2a9f0c7d6e5b4a3928171605f4';

/** A webhook receiver that records what it gets and answers the statuses it is told to. */
async function receiver() {
  const got: Array<{ headers: Record<string, string | string[] | undefined>; body: string }> = [];
  const statuses: number[] = [];
  const server: Server = createHttpServer((req, res) => {
    let body = '';
    req.on('data', (c) => {
      body += c;
    });
    req.on('end', () => {
      got.push({ headers: req.headers, body });
      res.statusCode = statuses.shift() ?? 204;
      res.end();
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`;
  return { got, statuses, url, close: () => new Promise<void>((r) => server.close(() => r())) };
}

/**
 * The R bars, for rollouts: a rollout protects the fleet as long as it offers its release. It
 * completes only when every targeted machine answered (or its completion window passed), keeps
 * its threshold once completed, counts silence as failure, advances on evidence and approvals,
 * retries only the failed machines, respects maintenance windows, and tells operators.
 */
describe.each(drivers())('rollout protection on $name', (driver) => {
  let s: Running;
  let hooks: Awaited<ReturnType<typeof receiver>>;
  const clock = new ManualClock('2026-09-01T00:00:00Z');
  let serial = 0;

  beforeAll(async () => {
    hooks = await receiver();
    s = await start({
      driver,
      clock,
      inspect: jsonInspector,
      // Deliveries are driven by the tests (deliverDue), not by a timer.
      config: { webhooks: { urls: [hooks.url], secret: SECRET }, webhookIntervalMs: 3_600_000 },
    });
  });
  afterAll(async () => {
    await s?.close();
    await hooks?.close();
  });

  async function release(): Promise<string> {
    serial++;
    const res = await s.call('POST', '/v1/releases', {
      token: s.admin,
      body: fakeRelease(`CLP12609${String(serial).padStart(2, '0')}`),
      headers: { 'content-type': 'application/octet-stream' },
    });
    expect(res.status).toBe(201);
    return res.body.id as string;
  }

  async function tier(): Promise<string> {
    const name = `t${serial}-${randomUUID().slice(0, 8)}`;
    expect((await s.call('POST', '/v1/tiers', { token: s.admin, json: { name } })).status).toBe(201);
    return name;
  }

  async function machines(tierName: string, count: number, prefix: string, tags: string[] = []) {
    const token = await s.call('POST', '/v1/enrollment-tokens', {
      token: s.admin,
      json: { tier: tierName, uses: count, tags },
    });
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

  async function rollout(releaseId: string, tierName: string, extra: Record<string, unknown> = {}) {
    const res = await s.call('POST', '/v1/rollouts', {
      token: s.admin,
      json: {
        releaseId,
        tier: tierName,
        stages: [{ percent: 100, minDurationSeconds: 0 }],
        failureThreshold: { maxFailureRate: 0.3, minReports: 2 },
        ...extra,
      },
    });
    expect(res.status, JSON.stringify(res.body)).toBe(201);
    return res.body.id as string;
  }

  async function poll(credential: string, installed: unknown[] = []) {
    const res = await s.call('POST', '/v1/agent/poll', {
      token: credential,
      json: { facts: FACTS, installed },
    });
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    return res.body as {
      apply: Array<{ releaseId: string; rolloutId: string; sha256: string; retry?: boolean }>;
      maintenanceWindow?: { spec: string; timeZone: string } | null;
    };
  }

  async function report(
    credential: string,
    rolloutId: string,
    releaseId: string,
    status: string,
    extra: Record<string, unknown> = {},
  ) {
    const res = await s.call('POST', '/v1/agent/reports', {
      token: credential,
      json: {
        reports: [
          {
            id: randomUUID(),
            rolloutId,
            releaseId,
            name: 'CLP1260900',
            status,
            at: clock.now().toISOString(),
            ...extra,
          },
        ],
      },
    });
    expect(res.status, JSON.stringify(res.body)).toBe(200);
  }

  const show = async (id: string) => (await s.call('GET', `/v1/rollouts/${id}`, { token: s.admin })).body;
  const audit = async (id: string) =>
    (await s.call('GET', `/v1/rollouts/${id}/audit`, { token: s.admin })).body.entries as Array<{
      action: string;
      actor: string;
      details: Record<string, unknown>;
    }>;
  /** Offers are written in batches; the silence clock starts from what is written. */
  const settle = async () => {
    await s.server.context.offers.flush();
    await s.server.tick();
  };

  it('halts a one-stage rollout whose first two machines fail, and patches no healthy machine afterwards', async () => {
    const releaseId = await release();
    const t = await tier();
    const fleet = await machines(t, 8, `scenario-${serial}`);
    const id = await rollout(releaseId, t);
    await settle();
    // One stage of 100 % with no minimum time: it does not complete before machines answer.
    expect((await show(id)).state).toBe('active');
    for (const m of fleet.slice(0, 2)) {
      expect((await poll(m.credential)).apply).toHaveLength(1);
      await report(m.credential, id, releaseId, 'failed');
    }
    await settle();
    const halted = await show(id);
    expect(halted.state).toBe('halted');
    expect(halted.haltReason).toMatch(/failure rate 100.0 % \(2 of 2 machines\)/);
    for (const m of fleet.slice(2)) expect((await poll(m.credential)).apply).toHaveLength(0);
    expect((await show(id)).counters.applied).toBe(0);
  });

  it('keeps judging a completed rollout that still offers its release: later failures halt it', async () => {
    const releaseId = await release();
    const t = await tier();
    const early = await machines(t, 2, `completed-${serial}`);
    const id = await rollout(releaseId, t, { failureThreshold: { maxFailureRate: 0.5, minReports: 2 } });
    for (const m of early) {
      await poll(m.credential);
      await report(m.credential, id, releaseId, 'applied');
    }
    await settle();
    const done = await show(id);
    expect(done.state).toBe('completed');
    expect(done.machines).toMatchObject({ targeted: 2, answered: 2, applied: 2, notAnswered: 0 });
    // Machines enrolled after completion are still offered the release, and still judged.
    const late = await machines(t, 2, `completed-late-${serial}`);
    for (const m of late) {
      expect((await poll(m.credential)).apply).toHaveLength(1);
      await report(m.credential, id, releaseId, 'failed');
    }
    await settle();
    expect((await show(id)).state).toBe('halted');
    const actions = (await audit(id)).map((e) => e.action);
    expect(actions.filter((a) => a === 'complete' || a === 'halt')).toEqual(['complete', 'halt']);
    expect((await audit(id)).at(-1)!.details.from).toBe('completed');
  });

  it('completes when the completion window has passed although machines have not answered', async () => {
    const releaseId = await release();
    const t = await tier();
    const fleet = await machines(t, 3, `window-${serial}`);
    const id = await rollout(releaseId, t, { completionWindowSeconds: 3600 });
    await poll(fleet[0]!.credential);
    await report(fleet[0]!.credential, id, releaseId, 'applied');
    await settle();
    const waiting = await show(id);
    expect(waiting).toMatchObject({ state: 'active', gate: { kind: 'answers' } });
    expect(waiting.machines).toMatchObject({ targeted: 3, answered: 1, notAnswered: 2 });
    clock.advance(3600);
    await settle();
    expect((await show(id)).state).toBe('completed');
    const complete = (await audit(id)).find((e) => e.action === 'complete')!;
    expect(complete.details.reason).toMatch(/completion window passed with 2 machines not answered/);
  });

  it('counts an offered machine that stays silent past its timeout as failed, with its own reason in the audit log and in why', async () => {
    const releaseId = await release();
    const t = await tier();
    const fleet = await machines(t, 3, `silent-${serial}`);
    const id = await rollout(releaseId, t, {
      silenceTimeoutSeconds: 3600,
      failureThreshold: { maxFailureRate: 0.5, minReports: 3 },
    });
    for (const m of fleet) await poll(m.credential);
    await report(fleet[0]!.credential, id, releaseId, 'applied');
    await settle();
    clock.advance(3599);
    await settle();
    expect((await show(id)).counters.silent).toBe(0);
    clock.advance(1);
    await settle();
    const halted = await show(id);
    expect(halted.state).toBe('halted');
    expect(halted.counters).toMatchObject({ applied: 1, failed: 0, silent: 2 });
    expect(halted.haltReason).toMatch(/0 reported failed, 2 silent, no outcome within 1 h of the offer/);
    const entries = await audit(id);
    const silent = entries.find((e) => e.action === 'silent')!;
    expect(silent.details).toMatchObject({ count: 2 });
    expect((silent.details.machines as Array<{ machineId: string }>).map((m) => m.machineId)).toEqual([
      fleet[1]!.machineId,
      fleet[2]!.machineId,
    ]);
    const why = await s.call('GET', `/v1/machines/${fleet[1]!.machineId}/explain?release=${releaseId}`, {
      token: s.admin,
    });
    expect(why.body.offers).toEqual([expect.objectContaining({ rolloutId: id, outcome: 'silent' })]);
    expect(why.body.summary).toMatch(
      /silent: offered at \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC and no outcome within the silence timeout of 1 h: counted as failed since \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC/,
    );
  });

  it('does not count a machine waiting for its maintenance window as silent', async () => {
    const releaseId = await release();
    const t = await tier();
    const set = await s.call('PUT', '/v1/maintenance-windows', {
      token: s.admin,
      json: { kind: 'tier', name: t, window: 'Sat 02:00-04:00 Europe/Paris' },
    });
    expect(set.status, JSON.stringify(set.body)).toBe(200);
    const [m] = await machines(t, 1, `waiting-${serial}`);
    const id = await rollout(releaseId, t, { silenceTimeoutSeconds: 3600 });
    const answer = await poll(m!.credential);
    expect(answer.maintenanceWindow).toMatchObject({
      spec: 'Sat 02:00-04:00 Europe/Paris',
      timeZone: 'Europe/Paris',
    });
    await settle();
    const closes = new Date(clock.now().getTime() + 2 * 86_400_000);
    await report(m!.credential, id, releaseId, 'scheduled', { scheduledFor: closes.toISOString() });
    // A day later, far past the silence timeout of an hour: waiting, not silent.
    clock.advance(86_400);
    await settle();
    const waiting = await show(id);
    expect(waiting.counters.silent).toBe(0);
    expect(waiting.machines).toMatchObject({ waitingForWindow: 1, silent: 0 });
    const why = await s.call('GET', `/v1/machines/${m!.machineId}/explain?release=${releaseId}`, {
      token: s.admin,
    });
    expect(why.body.offers[0].outcome).toBe('waiting-for-window');
    expect(why.body.maintenanceWindow).toBe('Sat 02:00-04:00 Europe/Paris');
    // The window closed without an outcome: silent one timeout later.
    clock.advance(86_400);
    await settle();
    expect((await show(id)).counters.silent).toBe(0);
    clock.advance(3600);
    await settle();
    expect((await show(id)).counters.silent).toBe(1);
  });

  it('does not take a wait for a window the machine has not got, nor one past its window closing', async () => {
    const releaseId = await release();
    const t = await tier();
    const [none] = await machines(t, 1, `no-window-${serial}`);
    const id = await rollout(releaseId, t, { silenceTimeoutSeconds: 3600 });
    expect((await poll(none!.credential)).maintenanceWindow ?? null).toBeNull();
    await settle();
    // Seven days of "waiting" claimed by a machine whose tier has no window: silent after an hour.
    const week = new Date(clock.now().getTime() + 7 * 86_400_000);
    await report(none!.credential, id, releaseId, 'scheduled', { scheduledFor: week.toISOString() });
    clock.advance(3700);
    await settle();
    expect((await show(id)).counters.silent).toBe(1);

    // With a window, a claim past its next closing is held to that closing.
    const releaseB = await release();
    const tw = await tier();
    const set = await s.call('PUT', '/v1/maintenance-windows', {
      token: s.admin,
      json: { kind: 'tier', name: tw, window: 'Mon-Sun 00:00-00:30 UTC' },
    });
    expect(set.status, JSON.stringify(set.body)).toBe(200);
    const [m] = await machines(tw, 1, `late-window-${serial}`);
    const idB = await rollout(releaseB, tw, { silenceTimeoutSeconds: 3600 });
    await poll(m!.credential);
    await settle();
    await report(m!.credential, idB, releaseB, 'scheduled', { scheduledFor: week.toISOString() });
    // The next closing is within a day, and the silence timeout an hour after it.
    clock.advance(86_400 + 3700);
    await settle();
    expect((await show(idB)).counters.silent).toBe(1);
  });

  it('advances a stage only once enough of its cohort reported applied, in addition to its minimum time', async () => {
    const releaseId = await release();
    const t = await tier();
    const fleet = await machines(t, 40, `evidence-${serial}`);
    const id = await rollout(releaseId, t, {
      stages: [
        { percent: 50, minDurationSeconds: 60, minAppliedPercent: 50 },
        { percent: 100, minDurationSeconds: 0 },
      ],
      failureThreshold: { maxFailureRate: 0.9, minReports: 100 },
    });
    const cohort = fleet.filter((m) => inStage(cohortBucket(m.machineId, id), 50));
    clock.advance(60);
    await settle();
    const waiting = await show(id);
    expect(waiting).toMatchObject({ currentStage: 0, gate: { kind: 'applied' } });
    expect(waiting.machines.targeted).toBe(cohort.length);
    const needed = Math.ceil(cohort.length / 2);
    for (const m of cohort.slice(0, needed - 1)) {
      await poll(m.credential);
      await report(m.credential, id, releaseId, 'applied');
    }
    await settle();
    expect((await show(id)).currentStage).toBe(0);
    const last = cohort[needed - 1]!;
    await poll(last.credential);
    await report(last.credential, id, releaseId, 'applied');
    await settle();
    expect((await show(id)).currentStage).toBe(1);
    const entries = await audit(id);
    expect(entries.find((e) => e.action === 'gate')!.details).toMatchObject({ stage: 0, gate: 'applied' });
    expect(entries.find((e) => e.action === 'advance')!.details).toMatchObject({
      evidence: { targeted: cohort.length, applied: needed },
    });
  });

  it("waits at an approval gate for an operator's approve, recorded with who and why", async () => {
    const releaseId = await release();
    const t = await tier();
    await machines(t, 2, `approve-${serial}`);
    const id = await rollout(releaseId, t, {
      stages: [
        { percent: 50, minDurationSeconds: 0, requireApproval: true },
        { percent: 100, minDurationSeconds: 0 },
      ],
    });
    await settle();
    expect(await show(id)).toMatchObject({ currentStage: 0, gate: { kind: 'approval' } });
    const bare = await s.call('POST', `/v1/rollouts/${id}/approve`, { token: s.admin, json: {} });
    expect(bare.status).toBe(400);
    expect(bare.body.error).toMatchObject({ code: 'CLP_E_VALIDATION', field: 'body.reason' });
    const ok = await s.call('POST', `/v1/rollouts/${id}/approve`, {
      token: s.admin,
      json: { reason: 'canaries look fine' },
    });
    expect(ok.status, JSON.stringify(ok.body)).toBe(200);
    await settle();
    expect((await show(id)).currentStage).toBe(1);
    const approval = (await audit(id)).find((e) => e.action === 'approve')!;
    expect(approval).toMatchObject({
      actor: 'bootstrap (admin)',
      details: { stage: 0, reason: 'canaries look fine' },
    });
    const again = await s.call('POST', `/v1/rollouts/${id}/approve`, {
      token: s.admin,
      json: { reason: 'x' },
    });
    expect(again.status).toBe(409);
    expect(again.body.error.code).toBe('CLP_E_ROLLOUT_STATE');
  });

  it('halts after a count of failures whatever the rate', async () => {
    const releaseId = await release();
    const t = await tier();
    const fleet = await machines(t, 12, `count-${serial}`);
    const id = await rollout(releaseId, t, {
      failureThreshold: { maxFailureRate: 0.9, minReports: 1000, maxFailures: 2 },
    });
    for (const m of fleet.slice(0, 10)) {
      await poll(m.credential);
      await report(m.credential, id, releaseId, 'applied');
    }
    await poll(fleet[10]!.credential);
    await report(fleet[10]!.credential, id, releaseId, 'failed');
    await settle();
    expect((await show(id)).state).toBe('active');
    await poll(fleet[11]!.credential);
    await report(fleet[11]!.credential, id, releaseId, 'failed');
    await settle();
    const halted = await show(id);
    expect(halted.state).toBe('halted');
    expect(halted.haltReason).toMatch(/2 failures \(2 of 12 machines\) reached the limit of 2 failures/);
  });

  it('offers the release again, as a retry, only to the machines whose last outcome was failed', async () => {
    const releaseId = await release();
    const t = await tier();
    const [bad, good, quiet] = await machines(t, 3, `retry-${serial}`);
    const id = await rollout(releaseId, t, { failureThreshold: { maxFailureRate: 0.3, minReports: 2 } });
    const offer = (await poll(bad!.credential)).apply[0]!;
    await poll(good!.credential);
    await report(bad!.credential, id, releaseId, 'failed');
    await report(good!.credential, id, releaseId, 'applied');
    await settle();
    expect((await show(id)).state).toBe('halted');
    const failedHere = [{ name: 'CLP1260900', sha256: offer.sha256, state: 'failed' }];
    const installed = [{ name: 'CLP1260900', sha256: offer.sha256, state: 'installed' }];
    expect((await poll(bad!.credential, failedHere)).apply).toHaveLength(0);
    const retried = await s.call('POST', `/v1/rollouts/${id}/retry-failed`, {
      token: s.admin,
      json: { reason: 'fixed the precondition' },
    });
    expect(retried.status, JSON.stringify(retried.body)).toBe(200);
    expect(retried.body).toMatchObject({ retried: 1, state: 'active', counters: { applied: 1, failed: 0 } });
    const again = await poll(bad!.credential, failedHere);
    expect(again.apply).toEqual([expect.objectContaining({ rolloutId: id, retry: true })]);
    expect((await poll(good!.credential, installed)).apply).toHaveLength(0);
    expect((await poll(quiet!.credential)).apply).toEqual([expect.not.objectContaining({ retry: true })]);
    await report(bad!.credential, id, releaseId, 'applied');
    await settle();
    expect((await show(id)).counters).toMatchObject({ applied: 2, failed: 0 });
    // Answered: no longer a retry, and a failure it remembers is not offered again unasked.
    await s.server.tick();
    expect((await poll(bad!.credential, failedHere)).apply).toHaveLength(0);
    expect((await audit(id)).find((e) => e.action === 'retry-failed')!.details).toMatchObject({
      failed: 1,
      machines: [bad!.machineId],
      from: 'halted',
      to: 'active',
      reason: 'fixed the precondition',
    });
  });

  it('gives a machine enrolled while the rollout runs the release when its cohort is reached, like any other', async () => {
    const releaseId = await release();
    const t = await tier();
    const before = await machines(t, 40, `fair-a-${serial}`);
    const id = await rollout(releaseId, t, {
      stages: [
        { percent: 30, minDurationSeconds: 3600 },
        { percent: 100, minDurationSeconds: 0 },
      ],
      failureThreshold: { maxFailureRate: 0.9, minReports: 1000 },
    });
    const after = await machines(t, 40, `fair-b-${serial}`);
    for (const group of [before, after]) {
      for (const m of group) {
        const offered = (await poll(m.credential)).apply.some((a) => a.rolloutId === id);
        expect(offered, m.machineId).toBe(inStage(cohortBucket(m.machineId, id), 30));
      }
    }
    const inCohort = [...before, ...after].filter((m) => inStage(cohortBucket(m.machineId, id), 30));
    expect(inCohort.some((m) => after.includes(m))).toBe(true);
    // The server's count of the stage's cohort (in SQL) agrees with the poll's (in code).
    expect((await show(id)).machines.targeted).toBe(inCohort.length);
    clock.advance(3600);
    await settle();
    for (const m of after) expect((await poll(m.credential)).apply.map((a) => a.rolloutId)).toContain(id);
  });

  it('sets maintenance windows per tier and tag, a tag winning over the tier, and refuses a bad one naming the field', async () => {
    const t = await tier();
    const bad = await s.call('PUT', '/v1/maintenance-windows', {
      token: s.admin,
      json: { kind: 'tier', name: t, window: 'Sat 02:00-04:00 Mars/Olympus' },
    });
    expect(bad.status).toBe(400);
    expect(bad.body.error).toMatchObject({ code: 'CLP_E_VALIDATION', field: 'body.window' });
    expect(bad.body.error.message).toMatch(/not a time zone/);
    await s.call('PUT', '/v1/maintenance-windows', {
      token: s.admin,
      json: { kind: 'tier', name: t, window: 'daily 01:00-02:00 UTC' },
    });
    await s.call('PUT', '/v1/maintenance-windows', {
      token: s.admin,
      json: { kind: 'tag', name: `db-${serial}`, window: 'Sun 03:00-05:00 America/New_York' },
    });
    const [plain] = await machines(t, 1, `win-plain-${serial}`);
    const [tagged] = await machines(t, 1, `win-tag-${serial}`, [`db-${serial}`]);
    expect((await poll(plain!.credential)).maintenanceWindow?.spec).toBe('daily 01:00-02:00 UTC');
    expect((await poll(tagged!.credential)).maintenanceWindow?.spec).toBe('Sun 03:00-05:00 America/New_York');
    const cleared = await s.call('DELETE', `/v1/maintenance-windows/tier/${t}`, { token: s.admin });
    expect(cleared.status).toBe(200);
    expect((await poll(plain!.credential)).maintenanceWindow).toBeNull();
    const listed = await s.call('GET', '/v1/maintenance-windows', { token: s.admin });
    expect(listed.body.windows).toEqual(
      expect.arrayContaining([expect.objectContaining({ kind: 'tag', name: `db-${serial}` })]),
    );
    const gone = await s.call('DELETE', `/v1/maintenance-windows/tier/${t}`, { token: s.admin });
    expect(gone.status).toBe(404);
  });

  it('tells operators by signed webhooks, retried with back-off, and counts the events on /metrics', async () => {
    await s.server.context.webhooks.deliverDue();
    hooks.got.length = 0;
    const releaseId = await release();
    const t = await tier();
    const fleet = await machines(t, 6, `hooks-${serial}`);
    const id = await rollout(releaseId, t, { failureThreshold: { maxFailureRate: 0.5, minReports: 4 } });
    for (const [i, m] of fleet.slice(0, 4).entries()) {
      await poll(m.credential);
      await report(m.credential, id, releaseId, i === 0 ? 'failed' : 'applied');
    }
    await settle();
    // 1 of 4: a quarter, half the threshold.
    hooks.statuses.push(500);
    expect(await s.server.context.webhooks.deliverDue()).toBe(0);
    expect(hooks.got).toHaveLength(1);
    // Not again before its back-off (10 s) has passed.
    expect(await s.server.context.webhooks.deliverDue()).toBe(0);
    expect(hooks.got).toHaveLength(1);
    clock.advance(10);
    expect(await s.server.context.webhooks.deliverDue()).toBe(1);
    expect(hooks.got).toHaveLength(2);
    const warning = hooks.got[1]!;
    expect(warning.headers['x-clp-event']).toBe('rollout.failure-warning');
    const expected = `sha256=${createHmac('sha256', SECRET).update(warning.body).digest('hex')}`;
    expect(warning.headers[SIGNATURE_HEADER]).toBe(expected);
    expect(JSON.parse(warning.body)).toMatchObject({ event: 'rollout.failure-warning', rolloutId: id });
    for (const m of fleet.slice(4)) {
      await poll(m.credential);
      await report(m.credential, id, releaseId, 'failed');
    }
    await settle();
    expect((await show(id)).state).toBe('halted');
    expect(await s.server.context.webhooks.deliverDue()).toBe(1);
    const halted = JSON.parse(hooks.got.at(-1)!.body);
    expect(halted).toMatchObject({ event: 'rollout.halted', rolloutId: id, state: 'halted' });
    expect(halted.reason).toMatch(/failure rate 50.0 %/);
    const metrics = await s.call('GET', '/metrics');
    expect(metrics.body).toMatch(/clp_rollout_events_total\{event="halted"\} [1-9]/);
    expect(metrics.body).toMatch(/clp_rollout_events_total\{event="failure_warning"\} [1-9]/);
    expect(metrics.body).toMatch(
      /clp_webhook_deliveries_total\{event="rollout.failure-warning",result="retry"\} 1/,
    );
  });

  it('keeps undelivered webhooks across a restart: another server process on the database sends them', async () => {
    await s.server.context.webhooks.deliverDue();
    hooks.got.length = 0;
    const releaseId = await release();
    const t = await tier();
    const [m] = await machines(t, 1, `restart-${serial}`);
    const id = await rollout(releaseId, t);
    await poll(m!.credential);
    await report(m!.credential, id, releaseId, 'applied');
    await settle();
    expect((await show(id)).state).toBe('completed');
    const queued = await s.server.context.db
      .select()
      .from(webhookDeliveries)
      .where(eq(webhookDeliveries.rolloutId, id));
    expect(queued.map((d) => [d.event, d.deliveredAt])).toEqual([['rollout.completed', null]]);
    const next = await createServer(
      defaultConfig({
        dataDir: s.dataDir,
        logLevel: 'silent',
        webhooks: { urls: [hooks.url], secret: SECRET },
        webhookIntervalMs: 3_600_000,
      }),
      { database: s.server.context.database, clock, inspect: jsonInspector },
    );
    try {
      expect(await next.context.webhooks.deliverDue()).toBe(1);
    } finally {
      await next.close();
    }
    expect(JSON.parse(hooks.got.at(-1)!.body)).toMatchObject({ event: 'rollout.completed', rolloutId: id });
    expect(await s.server.context.webhooks.deliverDue()).toBe(0);
  });
});
