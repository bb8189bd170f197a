import { randomUUID } from 'node:crypto';
import { ROLLOUT_STATES as DB_ROLLOUT_STATES } from '@clp/db';
import { ROLLOUT_STATES } from '@clp/protocol';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cohortBucket, inStage, ManualClock } from '../src/index.ts';
import { drivers, FACTS, fakeRelease, jsonInspector, type Running, start } from './harness.ts';

describe.each(drivers())('rollouts and agents on $name', (driver) => {
  let s: Running;
  const clock = new ManualClock('2026-03-01T00:00:00Z');

  beforeAll(async () => {
    s = await start({ driver, clock, inspect: jsonInspector });
  });
  afterAll(async () => {
    await s?.close();
  });

  async function upload(name: string, options?: Parameters<typeof fakeRelease>[1]): Promise<string> {
    const res = await s.call('POST', '/v1/releases', {
      token: s.admin,
      body: fakeRelease(name, options),
      headers: { 'content-type': 'application/octet-stream' },
    });
    expect(res.status).toBe(201);
    return res.body.id as string;
  }

  async function enrollToken(tier: string, uses: number, tags: string[] = []): Promise<string> {
    const res = await s.call('POST', '/v1/enrollment-tokens', { token: s.admin, json: { tier, uses, tags } });
    expect(res.status).toBe(201);
    return res.body.token as string;
  }

  async function enroll(token: string, machineId: string, tags: string[] = []) {
    const res = await s.call('POST', '/v1/agent/enroll', { json: { token, facts: FACTS, machineId, tags } });
    expect(res.status).toBe(201);
    return res.body as { machineId: string; credential: string; tier: string; tags: string[] };
  }

  async function poll(credential: string, installed: unknown[] = []) {
    const res = await s.call('POST', '/v1/agent/poll', {
      token: credential,
      json: { facts: FACTS, installed },
    });
    expect(res.status).toBe(200);
    return res.body as {
      apply: Array<{ releaseId: string; rolloutId: string; sha256: string; url: string }>;
      revert: Array<{ releaseId: string }>;
    };
  }

  async function report(
    credential: string,
    rolloutId: string,
    releaseId: string,
    status: string,
    id = randomUUID(),
  ) {
    return s.call('POST', '/v1/agent/reports', {
      token: credential,
      json: {
        reports: [{ id, rolloutId, releaseId, name: 'CLP1260301', status, at: clock.now().toISOString() }],
      },
    });
  }

  it('offers a release only to the machines in the current stage and grows without moving anyone out', async () => {
    const releaseId = await upload('CLP1260301');
    const token = await enrollToken('beta', 200);
    const fleet = await Promise.all(
      Array.from({ length: 60 }, (_, i) => enroll(token, `machine-stage-${i}`)),
    );
    const created = await s.call('POST', '/v1/rollouts', {
      token: s.admin,
      json: {
        releaseId,
        tier: 'beta',
        stages: [
          { percent: 20, minDurationSeconds: 3600 },
          { percent: 60, minDurationSeconds: 3600 },
          { percent: 100, minDurationSeconds: 0 },
        ],
        failureThreshold: { maxFailureRate: 0.5, minReports: 1000 },
      },
    });
    expect(created.status).toBe(201);
    const rolloutId = created.body.id as string;
    const offeredAt = async () => {
      const got = new Set<string>();
      for (const m of fleet)
        if ((await poll(m.credential)).apply.some((a) => a.rolloutId === rolloutId)) got.add(m.machineId);
      return got;
    };
    const stage1 = await offeredAt();
    for (const m of fleet)
      expect(stage1.has(m.machineId)).toBe(inStage(cohortBucket(m.machineId, rolloutId), 20));
    clock.advance(3599);
    await s.server.tick();
    expect((await s.call('GET', `/v1/rollouts/${rolloutId}`, { token: s.admin })).body.currentStage).toBe(0);
    clock.advance(1);
    await s.server.tick();
    const shown = await s.call('GET', `/v1/rollouts/${rolloutId}`, { token: s.admin });
    expect(shown.body.currentStage).toBe(1);
    expect(shown.body.percent).toBe(60);
    const stage2 = await offeredAt();
    for (const id of stage1) expect(stage2.has(id)).toBe(true);
    for (const m of fleet)
      expect(stage2.has(m.machineId)).toBe(inStage(cohortBucket(m.machineId, rolloutId), 60));
    clock.advance(3600);
    await s.server.tick();
    await s.server.tick();
    // The last stage lasts until every targeted machine has answered.
    const waiting = await s.call('GET', `/v1/rollouts/${rolloutId}`, { token: s.admin });
    expect(waiting.body.state).toBe('active');
    expect(waiting.body.machines).toMatchObject({
      targeted: fleet.length,
      answered: 0,
      notAnswered: fleet.length,
    });
    expect(waiting.body.gate.kind).toBe('answers');
    expect((await offeredAt()).size).toBe(fleet.length);
    for (const m of fleet) await report(m.credential, rolloutId, releaseId, 'applied');
    await s.server.tick();
    const done = await s.call('GET', `/v1/rollouts/${rolloutId}`, { token: s.admin });
    expect(done.body.state).toBe('completed');
    expect(done.body.machines).toMatchObject({
      targeted: fleet.length,
      answered: fleet.length,
      applied: fleet.length,
      notAnswered: 0,
    });
    const audit = await s.call('GET', `/v1/rollouts/${rolloutId}/audit`, { token: s.admin });
    expect(audit.body.entries.map((e: { action: string }) => e.action)).toEqual([
      'create',
      'advance',
      'advance',
      'gate',
      'complete',
    ]);
  });

  it('halts by itself when failures reach the threshold, and then offers nothing', async () => {
    const releaseId = await upload('CLP1260302');
    const token = await enrollToken('edge', 50);
    const fleet = await Promise.all(Array.from({ length: 10 }, (_, i) => enroll(token, `machine-halt-${i}`)));
    const created = await s.call('POST', '/v1/rollouts', {
      token: s.admin,
      json: {
        releaseId,
        tier: 'edge',
        stages: [{ percent: 100, minDurationSeconds: 86_400 }],
        failureThreshold: { maxFailureRate: 0.3, minReports: 4 },
      },
    });
    const rolloutId = created.body.id as string;
    expect((await poll(fleet[0]!.credential)).apply).toHaveLength(1);
    await report(fleet[0]!.credential, rolloutId, releaseId, 'applied');
    await report(fleet[1]!.credential, rolloutId, releaseId, 'failed');
    await report(fleet[2]!.credential, rolloutId, releaseId, 'applied');
    // 1 of 3: under the minimum number of reports, still active.
    expect((await s.call('GET', `/v1/rollouts/${rolloutId}`, { token: s.admin })).body.state).toBe('active');
    await report(fleet[3]!.credential, rolloutId, releaseId, 'failed');
    const halted = await s.call('GET', `/v1/rollouts/${rolloutId}`, { token: s.admin });
    expect(halted.body.state).toBe('halted');
    expect(halted.body.haltReason).toMatch(/failure rate 50.0 %/);
    expect((await poll(fleet[5]!.credential)).apply).toHaveLength(0);
    const resume = await s.call('POST', `/v1/rollouts/${rolloutId}/resume`, { token: s.admin, json: {} });
    expect(resume.status).toBe(409);
    expect(resume.body.error.code).toBe('CLP_E_ROLLOUT_STATE');
  });

  it('stores a report sent twice only once and counts it once', async () => {
    const releaseId = await upload('CLP1260303');
    const token = await enrollToken('edge', 1);
    const m = await enroll(token, 'machine-idem');
    const created = await s.call('POST', '/v1/rollouts', {
      token: s.admin,
      json: { releaseId, tier: 'edge', stages: [{ percent: 100, minDurationSeconds: 0 }] },
    });
    const rolloutId = created.body.id as string;
    const id = randomUUID();
    const first = await report(m.credential, rolloutId, releaseId, 'applied', id);
    const second = await report(m.credential, rolloutId, releaseId, 'applied', id);
    expect(first.body).toEqual({ accepted: [id], duplicates: [] });
    expect(second.body).toEqual({ accepted: [], duplicates: [id] });
    const listed = await s.call('GET', `/v1/reports?rollout=${rolloutId}`, { token: s.admin });
    expect(listed.body.reports).toHaveLength(1);
    expect((await s.call('GET', `/v1/rollouts/${rolloutId}`, { token: s.admin })).body.counters.applied).toBe(
      1,
    );
  });

  it('tells machines that have the release installed to revert it after a revert', async () => {
    const releaseId = await upload('CLP1260304');
    const token = await enrollToken('stable', 2);
    const a = await enroll(token, 'machine-revert-a');
    const b = await enroll(token, 'machine-revert-b');
    const created = await s.call('POST', '/v1/rollouts', {
      token: s.admin,
      json: { releaseId, tier: 'stable', stages: [{ percent: 100, minDurationSeconds: 0 }] },
    });
    const rolloutId = created.body.id as string;
    const offer = (await poll(a.credential)).apply[0]!;
    const installed = [{ name: 'CLP1260304', sha256: offer.sha256, state: 'installed' }];
    expect((await poll(a.credential, installed)).apply).toHaveLength(0);
    const reverted = await s.call('POST', `/v1/rollouts/${rolloutId}/revert`, {
      token: s.admin,
      json: { reason: 'bad' },
    });
    expect(reverted.status).toBe(200);
    expect(reverted.body.state).toBe('reverted');
    const answer = await poll(a.credential, installed);
    expect(answer.revert).toEqual([{ releaseId, rolloutId, name: 'CLP1260304', sha256: offer.sha256 }]);
    expect(answer.apply).toHaveLength(0);
    const other = await poll(b.credential);
    expect(other.revert).toHaveLength(0);
    expect(other.apply).toHaveLength(0);
    const audit = await s.call('GET', `/v1/rollouts/${rolloutId}/audit`, { token: s.admin });
    expect(audit.body.entries.at(-1)).toMatchObject({
      action: 'revert',
      details: { reason: 'bad', to: 'reverted' },
    });
  });

  it('explains why a machine has or has not been offered a release', async () => {
    const releaseId = await upload('CLP1260305');
    const token = await enrollToken('beta', 40, ['rack-1']);
    const fleet = await Promise.all(
      Array.from({ length: 30 }, (_, i) => enroll(token, `machine-explain-${i}`)),
    );
    const created = await s.call('POST', '/v1/rollouts', {
      token: s.admin,
      json: {
        releaseId,
        tier: 'beta',
        selector: { tags: ['rack-1'] },
        stages: [
          { percent: 30, minDurationSeconds: 60 },
          { percent: 100, minDurationSeconds: 0 },
        ],
      },
    });
    const rolloutId = created.body.id as string;
    const inside = fleet.find((m) => inStage(cohortBucket(m.machineId, rolloutId), 30))!;
    const outside = fleet.find((m) => !inStage(cohortBucket(m.machineId, rolloutId), 30))!;
    const yes = await s.call('GET', `/v1/machines/${inside.machineId}/explain?release=${releaseId}`, {
      token: s.admin,
    });
    expect(yes.status).toBe(200);
    expect(yes.body.verdict).toBe('offered');
    const no = await s.call('GET', `/v1/machines/${outside.machineId}/explain?release=${releaseId}`, {
      token: s.admin,
    });
    expect(no.body.verdict).toBe('not-offered');
    expect(no.body.rollouts[0]).toMatchObject({ rule: 'cohort', percent: 30 });
    expect(no.body.summary).toMatch(/bucket \d+ of 10000/);
    const edgeToken = await enrollToken('edge', 1);
    const elsewhere = await enroll(edgeToken, 'machine-explain-edge');
    const tier = await s.call('GET', `/v1/machines/${elsewhere.machineId}/explain?release=${releaseId}`, {
      token: s.admin,
    });
    expect(tier.body.rollouts[0]).toMatchObject({ rule: 'tier' });
    await s.call('POST', `/v1/releases/${releaseId}/yank`, { token: s.admin, json: {} });
    const yanked = await s.call('GET', `/v1/machines/${inside.machineId}/explain?release=${releaseId}`, {
      token: s.admin,
    });
    expect(yanked.body).toMatchObject({ verdict: 'not-offered', yanked: true });
    expect(yanked.body.rollouts[0].rule).toBe('yanked');
  });

  it('promotes a release to the tier it is rolled out to, and refuses an identical second running rollout, also when sent at once', async () => {
    const releaseId = await upload('CLP1260311');
    const create = (selector: Record<string, string[]>) =>
      s.call('POST', '/v1/rollouts', {
        token: s.admin,
        json: {
          releaseId,
          tier: 'stable',
          selector,
          stages: [
            { percent: 50, minDurationSeconds: 3600 },
            { percent: 100, minDurationSeconds: 0 },
          ],
        },
      });
    const answers = await Promise.all(Array.from({ length: 5 }, () => create({ tags: ['b', 'a'] })));
    expect(answers.map((a) => a.status).sort()).toEqual([201, 409, 409, 409, 409]);
    const first = answers.find((a) => a.status === 201)!.body;
    expect(first.selector).toEqual({ tags: ['a', 'b'] });
    for (const refused of answers.filter((a) => a.status === 409)) {
      expect(refused.body.error).toMatchObject({
        code: 'CLP_E_CONFLICT',
        field: 'tier',
        message: expect.stringContaining(
          `rollout ${first.id} of CLP1260311 to stable (tags a,b) exists already and is`,
        ),
      });
    }
    const release = await s.call('GET', `/v1/releases/${releaseId}`, { token: s.admin });
    expect(release.body.tiers).toEqual(['stable']);
    const audit = await s.call('GET', `/v1/rollouts/${first.id}/audit`, { token: s.admin });
    expect(audit.body.entries[0].details).toMatchObject({ promoted: true });

    // The same selector written another way is the same selector; another selector is another rollout.
    expect((await create({ tags: ['a', 'b', 'a'] })).status).toBe(409);
    expect((await create({ tags: ['c'] })).status).toBe(201);
    // Once the first is aborted, it may be rolled out again.
    await s.call('POST', `/v1/rollouts/${first.id}/abort`, { token: s.admin, json: {} });
    const again = await create({ tags: ['a', 'b'] });
    expect(again.status).toBe(201);
    const auditAgain = await s.call('GET', `/v1/rollouts/${again.body.id}/audit`, { token: s.admin });
    expect(auditAgain.body.entries[0].details).toMatchObject({ promoted: false });
  });

  it('checks list filters: an unknown state or status is a 400, an unknown tier a 404', async () => {
    const state = await s.call('GET', '/v1/rollouts?state=bogus', { token: s.admin });
    expect(state.status).toBe(400);
    expect(state.body.error.field).toBe('query.state');
    const tier = await s.call('GET', '/v1/machines?tier=stabel', { token: s.admin });
    expect(tier.status).toBe(404);
    expect(tier.body.error).toMatchObject({
      field: 'query.tier',
      message: expect.stringContaining('clpctl admin tiers'),
    });
    expect(ROLLOUT_STATES).toEqual([...DB_ROLLOUT_STATES]);
  });

  it('pauses and resumes a rollout, recording who did it', async () => {
    const releaseId = await upload('CLP1260306');
    const token = await enrollToken('edge', 1);
    const m = await enroll(token, 'machine-pause');
    const created = await s.call('POST', '/v1/rollouts', {
      token: s.admin,
      json: { releaseId, tier: 'edge', stages: [{ percent: 100, minDurationSeconds: 10 }] },
    });
    const rolloutId = created.body.id as string;
    expect((await s.call('POST', `/v1/rollouts/${rolloutId}/pause`, { token: s.admin })).body.state).toBe(
      'paused',
    );
    expect((await poll(m.credential)).apply.filter((a) => a.rolloutId === rolloutId)).toHaveLength(0);
    expect((await s.call('POST', `/v1/rollouts/${rolloutId}/resume`, { token: s.admin })).body.state).toBe(
      'active',
    );
    expect((await poll(m.credential)).apply.filter((a) => a.rolloutId === rolloutId)).toHaveLength(1);
    const aborted = await s.call('POST', `/v1/rollouts/${rolloutId}/abort`, { token: s.admin });
    expect(aborted.body.state).toBe('aborted');
    const audit = await s.call('GET', `/v1/rollouts/${rolloutId}/audit`, { token: s.admin });
    expect(audit.body.entries.map((e: { action: string; actor: string }) => [e.action, e.actor])).toEqual([
      ['create', 'bootstrap (admin)'],
      ['pause', 'bootstrap (admin)'],
      ['resume', 'bootstrap (admin)'],
      ['abort', 'bootstrap (admin)'],
    ]);
  });

  it('refuses a used-up, expired or revoked enrollment token', async () => {
    const once = await enrollToken('edge', 1);
    await enroll(once, 'machine-once-1');
    const again = await s.call('POST', '/v1/agent/enroll', { json: { token: once, facts: FACTS } });
    expect(again.status).toBe(401);
    expect(again.body.error.code).toBe('CLP_E_ENROLLMENT_TOKEN');
    const short = await s.call('POST', '/v1/enrollment-tokens', {
      token: s.admin,
      json: { tier: 'edge', expiresInSeconds: 60 },
    });
    clock.advance(61);
    const late = await s.call('POST', '/v1/agent/enroll', {
      json: { token: short.body.token, facts: FACTS },
    });
    expect(late.body.error.code).toBe('CLP_E_ENROLLMENT_TOKEN');
    const revoked = await s.call('POST', '/v1/enrollment-tokens', { token: s.admin, json: { tier: 'edge' } });
    await s.call('POST', `/v1/enrollment-tokens/${revoked.body.id}/revoke`, { token: s.admin });
    const refused = await s.call('POST', '/v1/agent/enroll', {
      json: { token: revoked.body.token, facts: FACTS },
    });
    expect(refused.body.error.code).toBe('CLP_E_ENROLLMENT_TOKEN');
  });

  it('treats SQL-injection-looking inputs as plain data', async () => {
    const hostile = "x' OR '1'='1'; drop table machines; --";
    const list = await s.call(
      'GET',
      `/v1/machines?hostname=${encodeURIComponent(hostile)}&tag=${encodeURIComponent(hostile)}`,
      { token: s.admin },
    );
    expect(list.status).toBe(200);
    expect(list.body.machines).toEqual([]);
    const reports = await s.call('GET', `/v1/reports?rollout=${encodeURIComponent(hostile)}`, {
      token: s.admin,
    });
    expect(reports.status).toBe(200);
    const show = await s.call('GET', `/v1/rollouts/${encodeURIComponent(hostile)}`, { token: s.admin });
    expect(show.status).toBe(400);
    expect(show.body.error).toMatchObject({ code: 'CLP_E_VALIDATION', field: 'params.id' });
    const tier = await s.call('POST', '/v1/tiers', { token: s.admin, json: { name: hostile } });
    expect(tier.status).toBe(400);
    expect(tier.body.error).toMatchObject({ code: 'CLP_E_VALIDATION', field: 'body.name' });
    const all = await s.call('GET', '/v1/machines?limit=1000', { token: s.admin });
    expect(all.body.total).toBeGreaterThan(0);
  });

  it('answers a bad body with 400 CLP_E_VALIDATION naming the field', async () => {
    const res = await s.call('POST', '/v1/rollouts', {
      token: s.admin,
      json: { releaseId: 'a'.repeat(64), tier: 'edge', stages: [{ percent: 150, minDurationSeconds: 0 }] },
    });
    expect(res.status).toBe(400);
    expect(res.body.error).toMatchObject({ code: 'CLP_E_VALIDATION', field: 'body.stages.0.percent' });
    const notJson = await s.call('POST', '/v1/tiers', {
      token: s.admin,
      body: '{nope',
      headers: { 'content-type': 'application/json' },
    });
    expect(notJson.status).toBe(400);
    expect(notJson.body.error.code).toBe('CLP_E_VALIDATION');
  });

  it('edits and reorders tiers', async () => {
    expect((await s.call('POST', '/v1/tiers', { token: s.admin, json: { name: 'canary' } })).status).toBe(
      201,
    );
    const order = await s.call('PUT', '/v1/tiers/order', {
      token: s.admin,
      json: { order: ['canary', 'edge', 'beta', 'stable'] },
    });
    expect(order.body.tiers.map((t: { name: string }) => t.name)).toEqual([
      'canary',
      'edge',
      'beta',
      'stable',
    ]);
    const edited = await s.call('PATCH', '/v1/tiers/canary', {
      token: s.admin,
      json: { description: 'lab machines' },
    });
    expect(edited.body).toMatchObject({ name: 'canary', position: 0, description: 'lab machines' });
    const dup = await s.call('POST', '/v1/tiers', { token: s.admin, json: { name: 'canary' } });
    expect(dup.status).toBe(409);
  });
});
