import { createHash, randomUUID } from 'node:crypto';
import { enrollmentTokens, machines } from '@clp/db';
import { eq } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cohortBucket, inStage, ManualClock } from '../src/index.ts';
import { drivers, FACTS, fakeRelease, jsonInspector, type Running, start } from './harness.ts';

const sha256 = (data: Buffer | string) => createHash('sha256').update(data).digest('hex');

describe.each(drivers())('agents, enrollment and the machine record on $name', (driver) => {
  let s: Running;
  const clock = new ManualClock('2026-05-01T00:00:00Z');

  beforeAll(async () => {
    s = await start({ driver, clock, inspect: jsonInspector });
  });
  afterAll(async () => {
    await s?.close();
  });

  async function upload(name: string): Promise<{ id: string; bytes: Buffer }> {
    const bytes = fakeRelease(name);
    const res = await s.call('POST', '/v1/releases', {
      token: s.admin,
      body: bytes,
      headers: { 'content-type': 'application/octet-stream' },
    });
    expect(res.status).toBe(201);
    return { id: res.body.id as string, bytes };
  }

  async function enrollmentToken(json: Record<string, unknown>) {
    const res = await s.call('POST', '/v1/enrollment-tokens', { token: s.admin, json });
    expect(res.status).toBe(201);
    return res.body as { id: string; token: string; usesLeft: number; tier: string; tags: string[] };
  }

  async function enroll(token: string, machineId: string, extra: Record<string, unknown> = {}) {
    const res = await s.call('POST', '/v1/agent/enroll', {
      json: { token, facts: FACTS, machineId, ...extra },
    });
    expect(res.status, JSON.stringify(res.body)).toBe(201);
    return res.body as { machineId: string; credential: string; tier: string; tags: string[] };
  }

  async function rollout(releaseId: string, tier: string, extra: Record<string, unknown> = {}) {
    const res = await s.call('POST', '/v1/rollouts', {
      token: s.admin,
      json: { releaseId, tier, stages: [{ percent: 100, minDurationSeconds: 0 }], ...extra },
    });
    expect(res.status, JSON.stringify(res.body)).toBe(201);
    return res.body.id as string;
  }

  it('enrolls with a token scoped to a tier and tags, spending one use each time', async () => {
    const t = await enrollmentToken({
      tier: 'beta',
      tags: ['dc-west', 'web'],
      uses: 2,
      expiresInSeconds: 3600,
    });
    expect(t).toMatchObject({ tier: 'beta', tags: ['dc-west', 'web'], usesLeft: 2 });
    expect(t.token).toMatch(/^clp_enr_/);
    const a = await enroll(t.token, 'enroll-scope-a', { tags: ['db'] });
    expect(a).toMatchObject({ machineId: 'enroll-scope-a', tier: 'beta', tags: ['db', 'dc-west', 'web'] });
    expect(a.credential).toMatch(/^clp_mch_/);
    await enroll(t.token, 'enroll-scope-b');
    const listed = await s.call('GET', '/v1/enrollment-tokens', { token: s.admin });
    const row = listed.body.tokens.find((x: { id: string }) => x.id === t.id);
    expect(row).toMatchObject({ usesLeft: 0, revoked: false, tier: 'beta' });
    expect(JSON.stringify(listed.body)).not.toContain(t.token);
    const third = await s.call('POST', '/v1/agent/enroll', { json: { token: t.token, facts: FACTS } });
    expect(third.status).toBe(401);
    expect(third.body.error.code).toBe('CLP_E_ENROLLMENT_TOKEN');
  });

  it('stores enrollment tokens and machine credentials only as hashes', async () => {
    const t = await enrollmentToken({ tier: 'edge' });
    const m = await enroll(t.token, 'hash-check-machine');
    const db = s.server.context.db;
    const [tokenRow] = await db.select().from(enrollmentTokens).where(eq(enrollmentTokens.id, t.id));
    expect(tokenRow!.tokenHash).toBe(sha256(t.token));
    expect(JSON.stringify(tokenRow)).not.toContain(t.token);
    const [machineRow] = await db.select().from(machines).where(eq(machines.id, m.machineId));
    expect(machineRow!.credentialHash).toBe(sha256(m.credential));
    expect(JSON.stringify(machineRow)).not.toContain(m.credential);
  });

  it('gives a machine that enrolls again with its current credential a new one, and stops the old one', async () => {
    const t = await enrollmentToken({ tier: 'edge', uses: 2 });
    const first = await enroll(t.token, 'reenroll-machine');
    // Polled once, so its credential sits in the server's credential cache.
    expect(
      (await s.call('POST', '/v1/agent/poll', { token: first.credential, json: { facts: FACTS } })).status,
    ).toBe(200);
    const moved = await enrollmentToken({ tier: 'beta' });
    const second = await enroll(moved.token, 'reenroll-machine', { credential: first.credential });
    expect(second).toMatchObject({ machineId: 'reenroll-machine', tier: 'beta' });
    expect(second.credential).not.toBe(first.credential);
    const old = await s.call('POST', '/v1/agent/poll', { token: first.credential, json: { facts: FACTS } });
    expect(old.status).toBe(401);
    const fresh = await s.call('POST', '/v1/agent/poll', {
      token: second.credential,
      json: { facts: FACTS },
    });
    expect(fresh.status).toBe(200);
  });

  it("refuses an enrollment under another machine's id with 409, and the machine keeps its tier, name, credential and the token its use", async () => {
    const own = await enrollmentToken({ tier: 'stable', tags: ['db'] });
    const victim = await enroll(own.token, 'victim-machine-1');
    const before = (await s.call('GET', '/v1/machines/victim-machine-1', { token: s.admin })).body;
    const attacker = await enrollmentToken({ tier: 'edge', uses: 3 });
    const attempts = [
      { token: attacker.token, facts: { ...FACTS, hostname: 'evil' }, machineId: 'victim-machine-1' },
      // A made-up credential proves nothing either.
      {
        token: attacker.token,
        facts: FACTS,
        machineId: 'victim-machine-1',
        credential: `clp_mch_${'A'.repeat(43)}`,
      },
    ];
    for (const json of attempts) {
      const res = await s.call('POST', '/v1/agent/enroll', { json });
      expect(res.status, JSON.stringify(res.body)).toBe(409);
      expect(res.body.error).toMatchObject({ code: 'CLP_E_CONFLICT', field: 'body.machineId' });
      expect(res.body.error.message).toContain('clpctl admin machines rekey victim-machine-1');
    }
    const after = (await s.call('GET', '/v1/machines/victim-machine-1', { token: s.admin })).body;
    expect(after).toEqual(before);
    expect(after).toMatchObject({ tier: 'stable', tags: ['db'], hostname: 'web-1', revoked: false });
    const poll = await s.call('POST', '/v1/agent/poll', { token: victim.credential, json: { facts: FACTS } });
    expect(poll.status).toBe(200);
    const tokens = await s.call('GET', '/v1/enrollment-tokens', { token: s.admin });
    expect(tokens.body.tokens.find((x: { id: string }) => x.id === attacker.id).usesLeft).toBe(3);
    // Without a valid token the answer says nothing about which ids exist.
    const stranger = await s.call('POST', '/v1/agent/enroll', {
      json: { token: 'clp_enr_nothing', facts: FACTS, machineId: 'victim-machine-1' },
    });
    expect(stranger.status).toBe(401);
    expect(stranger.body.error.code).toBe('CLP_E_ENROLLMENT_TOKEN');
  });

  it('refuses an id that differs from an enrolled one only in case, naming the enrolled one', async () => {
    const t = await enrollmentToken({ tier: 'stable', uses: 3 });
    await enroll(t.token, 'case-machine-1');
    const res = await s.call('POST', '/v1/agent/enroll', {
      json: { token: t.token, facts: { ...FACTS, hostname: 'look-alike' }, machineId: 'CASE-Machine-1' },
    });
    expect(res.status, JSON.stringify(res.body)).toBe(409);
    expect(res.body.error).toMatchObject({ code: 'CLP_E_CONFLICT', field: 'body.machineId' });
    expect(res.body.error.message).toContain('case-machine-1');
    const listed = await s.call('GET', '/v1/machines?q=case-machine', { token: s.admin });
    expect(listed.body.machines.map((m: { id: string }) => m.id)).toEqual(['case-machine-1']);
  });

  it('lets one of two enrollments racing for a new id in, and answers the other 409', async () => {
    // Tokens of their own: enrollments with one token wait for each other on its row.
    const tokens = await Promise.all(
      Array.from({ length: 4 }, () => enrollmentToken({ tier: 'stable', uses: 4 })),
    );
    for (let round = 0; round < 4; round++) {
      const machineId = `race-machine-${round}`;
      const answers = await Promise.all(
        tokens.map((t, i) =>
          s.call('POST', '/v1/agent/enroll', {
            json: { token: t.token, facts: { ...FACTS, hostname: `racer-${i}` }, machineId },
          }),
        ),
      );
      const won = answers.filter((a) => a.status === 201);
      expect(answers.map((a) => a.status).sort(), JSON.stringify(answers.map((a) => a.body))).toEqual([
        201, 409, 409, 409,
      ]);
      // The one let in keeps its credential: a later enrollment did not replace it unseen.
      const poll = await s.call('POST', '/v1/agent/poll', {
        token: won[0]!.body.credential,
        json: { facts: FACTS },
      });
      expect(poll.status).toBe(200);
    }
  });

  it('lets one of enrollments racing with ids that differ only in case in, and answers the others 409 naming it', async () => {
    const tokens = await Promise.all(
      Array.from({ length: 4 }, () => enrollmentToken({ tier: 'stable', uses: 1 })),
    );
    const ids = ['look-alike-7', 'LOOK-alike-7', 'Look-Alike-7', 'look-ALIKE-7'];
    const answers = await Promise.all(
      tokens.map((t, i) =>
        s.call('POST', '/v1/agent/enroll', {
          json: { token: t.token, facts: { ...FACTS, hostname: `alike-${i}` }, machineId: ids[i] },
        }),
      ),
    );
    expect(answers.map((a) => a.status).sort(), JSON.stringify(answers.map((a) => a.body))).toEqual([
      201, 409, 409, 409,
    ]);
    const won = ids[answers.findIndex((a) => a.status === 201)]!;
    for (const refused of answers.filter((a) => a.status === 409))
      expect(refused.body.error.message).toContain(`enrolled machine ${won}`);
    const listed = await s.call('GET', '/v1/machines?q=alike-7', { token: s.admin });
    expect(listed.body.machines.map((m: { id: string }) => m.id)).toEqual([won]);
  });

  it('lets a re-keyed machine enroll again once within its window, without its old credential', async () => {
    const t = await enrollmentToken({ tier: 'edge', uses: 5 });
    const old = await enroll(t.token, 'rekey-machine-1');
    expect(
      (await s.call('POST', '/v1/agent/poll', { token: old.credential, json: { facts: FACTS } })).status,
    ).toBe(200);
    const rekeyed = await s.call('POST', '/v1/machines/rekey-machine-1/rekey', {
      token: s.admin,
      json: { expiresInSeconds: 3600, reason: 'reinstalled' },
    });
    expect(rekeyed.status).toBe(200);
    expect(rekeyed.body).toMatchObject({
      id: 'rekey-machine-1',
      revoked: true,
      rekeyUntil: new Date(clock.now().getTime() + 3_600_000).toISOString(),
    });
    const refused = await s.call('POST', '/v1/agent/poll', { token: old.credential, json: { facts: FACTS } });
    expect(refused.status).toBe(401);
    const fresh = await enroll(t.token, 'rekey-machine-1');
    expect(
      (await s.call('POST', '/v1/agent/poll', { token: fresh.credential, json: { facts: FACTS } })).status,
    ).toBe(200);
    const shown = (await s.call('GET', '/v1/machines/rekey-machine-1', { token: s.admin })).body;
    expect(shown).toMatchObject({ revoked: false, rekeyUntil: null });
    // The window was for one enrollment: the id is closed again.
    const second = await s.call('POST', '/v1/agent/enroll', {
      json: { token: t.token, facts: FACTS, machineId: 'rekey-machine-1' },
    });
    expect(second.status).toBe(409);
    // A window that has passed lets nobody in.
    await s.call('POST', '/v1/machines/rekey-machine-1/rekey', {
      token: s.admin,
      json: { expiresInSeconds: 60 },
    });
    clock.advance(61);
    const late = await s.call('POST', '/v1/agent/enroll', {
      json: { token: t.token, facts: FACTS, machineId: 'rekey-machine-1' },
    });
    expect(late.status).toBe(409);
    const unknown = await s.call('POST', '/v1/machines/no-such-machine/rekey', { token: s.admin, json: {} });
    expect(unknown.status).toBe(404);
    expect(unknown.body.error.code).toBe('CLP_E_NOT_FOUND');
  });

  it('offers releases with a download URL whose bytes match the sha256', async () => {
    const release = await upload('CLP1260601');
    const t = await enrollmentToken({ tier: 'stable' });
    const m = await enroll(t.token, 'download-machine');
    const rolloutId = await rollout(release.id, 'stable');
    const res = await s.call('POST', '/v1/agent/poll', { token: m.credential, json: { facts: FACTS } });
    expect(res.status).toBe(200);
    expect(res.body.machineId).toBe('download-machine');
    const offer = res.body.apply.find((a: { rolloutId: string }) => a.rolloutId === rolloutId);
    expect(offer).toMatchObject({
      releaseId: release.id,
      name: 'CLP1260601',
      sha256: sha256(release.bytes),
      size: release.bytes.length,
      url: `/v1/blobs/${sha256(release.bytes)}`,
    });
    const blob = await fetch(s.url + offer.url);
    expect(sha256(Buffer.from(await blob.arrayBuffer()))).toBe(offer.sha256);
  });

  it('keeps the machine record: OS, architecture, agent version, tags, last seen, installed patches', async () => {
    const t = await enrollmentToken({ tier: 'edge', tags: ['lab'] });
    const m = await enroll(t.token, 'record-machine');
    const before = await s.call('GET', `/v1/machines/${m.machineId}`, { token: s.admin });
    expect(before.body).toMatchObject({
      hostname: 'web-1',
      arch: 'x86_64',
      os: FACTS.os,
      agentVersion: '0.1.0',
      tags: ['lab'],
      tier: 'edge',
      lastSeenAt: null,
      installed: [],
      revoked: false,
    });
    clock.advance(90);
    const installed = [
      { name: 'CLP1260601', sha256: 'c'.repeat(64), series: 'CLP260601', state: 'installed' },
      { name: 'CLP1260602', sha256: 'd'.repeat(64), series: 'CLP260602', state: 'failed' },
    ];
    const facts = {
      hostname: 'web-1b',
      os: { id: 'vincent', version: '2026.02' },
      arch: 'aarch64',
      agentVersion: '0.2.0',
    };
    expect(
      (await s.call('POST', '/v1/agent/poll', { token: m.credential, json: { facts, installed } })).status,
    ).toBe(200);
    const after = await s.call('GET', `/v1/machines/${m.machineId}`, { token: s.admin });
    expect(after.body).toMatchObject({
      hostname: 'web-1b',
      arch: 'aarch64',
      os: { id: 'vincent', version: '2026.02' },
      agentVersion: '0.2.0',
      lastSeenAt: clock.now().toISOString(),
      installed,
    });
    const found = await s.call('GET', `/v1/machines?installed=${'c'.repeat(64)}`, { token: s.admin });
    expect(found.body.machines.map((x: { id: string }) => x.id)).toEqual(['record-machine']);
    const failedHere = await s.call('GET', `/v1/machines?installed=${'d'.repeat(64)}`, { token: s.admin });
    expect(failedHere.body.machines).toEqual([]);
    const rolledBack = await s.call('GET', `/v1/machines?failed=${'d'.repeat(64)}`, { token: s.admin });
    expect(rolledBack.body.machines.map((x: { id: string }) => x.id)).toEqual(['record-machine']);
    const byTag = await s.call('GET', '/v1/machines?tag=lab&arch=aarch64', { token: s.admin });
    expect(byTag.body.total).toBe(1);
  });

  it('promotes a release from tier to tier, and lists releases by tier', async () => {
    const release = await upload('CLP1260606');
    for (const tier of ['edge', 'beta']) {
      const res = await s.call('POST', `/v1/releases/${release.id}/promote`, {
        token: s.admin,
        json: { tier },
      });
      expect(res.status).toBe(200);
    }
    const shown = await s.call('GET', `/v1/releases/${release.id}`, { token: s.admin });
    expect(shown.body.tiers).toEqual(['edge', 'beta']);
    const inBeta = await s.call('GET', '/v1/releases?tier=beta', { token: s.admin });
    expect(inBeta.body.releases.map((r: { id: string }) => r.id)).toContain(release.id);
    const inStable = await s.call('GET', '/v1/releases?tier=stable', { token: s.admin });
    expect(inStable.body.releases.map((r: { id: string }) => r.id)).not.toContain(release.id);
    const nowhere = await s.call('POST', `/v1/releases/${release.id}/promote`, {
      token: s.admin,
      json: { tier: 'nowhere' },
    });
    expect(nowhere.status).toBe(404);
    expect(nowhere.body.error.field).toBe('tier');
    await s.call('POST', `/v1/releases/${release.id}/yank`, { token: s.admin, json: {} });
    const yanked = await s.call('POST', `/v1/releases/${release.id}/promote`, {
      token: s.admin,
      json: { tier: 'stable' },
    });
    expect(yanked.status).toBe(409);
    expect(yanked.body.error.code).toBe('CLP_E_RELEASE_YANKED');
  });

  it('keeps last seen to the minute, and writes any change of facts or installed patches at once', async () => {
    const t = await enrollmentToken({ tier: 'edge' });
    const m = await enroll(t.token, 'last-seen-machine');
    const poll = (installed: unknown[] = []) =>
      s.call('POST', '/v1/agent/poll', { token: m.credential, json: { facts: FACTS, installed } });
    const seen = async () => (await s.call('GET', `/v1/machines/${m.machineId}`, { token: s.admin })).body;
    await poll();
    const first = clock.now().toISOString();
    expect((await seen()).lastSeenAt).toBe(first);
    clock.advance(30);
    await poll();
    expect((await seen()).lastSeenAt).toBe(first);
    const installed = [{ name: 'CLP1260601', sha256: 'd'.repeat(64), state: 'installed' }];
    await poll(installed);
    expect(await seen()).toMatchObject({ lastSeenAt: clock.now().toISOString(), installed });
    clock.advance(61);
    await poll(installed);
    expect((await seen()).lastSeenAt).toBe(clock.now().toISOString());
  });

  it('lists a release as installed when its machine reports it applied, before the next poll, and drops it when reverted', async () => {
    const release = await upload('CLP1260607');
    const t = await enrollmentToken({ tier: 'edge' });
    const m = await enroll(t.token, 'installed-by-report');
    const rolloutId = await rollout(release.id, 'edge');
    const report = (status: string) =>
      s.call('POST', '/v1/agent/reports', {
        token: m.credential,
        json: {
          reports: [
            {
              id: randomUUID(),
              rolloutId,
              releaseId: release.id,
              name: 'CLP1260607',
              sha256: release.id,
              status,
              at: clock.now().toISOString(),
            },
          ],
        },
      });
    const record = async () => (await s.call('GET', `/v1/machines/${m.machineId}`, { token: s.admin })).body;
    // The poll before the apply is still waiting in the batch of polls when the report arrives.
    s.server.context.seen.record(m.machineId, {
      at: clock.now(),
      installed: [],
      facts: FACTS as unknown as Record<string, unknown>,
    });
    clock.advance(5);
    expect((await report('applied')).status).toBe(200);
    const applied = { name: 'CLP1260607', sha256: release.id, series: 'CLP260607', state: 'installed' };
    expect(await record()).toMatchObject({ installed: [applied], lastSeenAt: clock.now().toISOString() });
    const listed = await s.call('GET', `/v1/machines?installed=${release.id}`, { token: s.admin });
    expect(listed.body.machines.map((x: { id: string }) => x.id)).toEqual([m.machineId]);

    clock.advance(5);
    await report('reverted');
    expect((await record()).installed).toEqual([]);
    clock.advance(5);
    await report('failed');
    expect((await record()).installed).toEqual([{ ...applied, state: 'failed' }]);

    // A later poll is the machine's own word again.
    clock.advance(5);
    await s.call('POST', '/v1/agent/poll', { token: m.credential, json: { facts: FACTS, installed: [] } });
    expect((await record()).installed).toEqual([]);
  });

  it('stores each report once by its id, within a batch and across resends, with error code and log', async () => {
    const release = await upload('CLP1260602');
    const t = await enrollmentToken({ tier: 'beta' });
    const m = await enroll(t.token, 'report-machine');
    const rolloutId = await rollout(release.id, 'beta');
    const failed = {
      id: randomUUID(),
      rolloutId,
      releaseId: release.id,
      name: 'CLP1260602',
      status: 'failed',
      errorCode: 'CLP_E_HEALTH_CHECK',
      log: 'health check /usr/bin/true exited 1\nrolled back',
      at: clock.now().toISOString(),
    };
    const downloading = {
      ...failed,
      id: randomUUID(),
      status: 'downloading',
      errorCode: undefined,
      log: undefined,
    };
    const first = await s.call('POST', '/v1/agent/reports', {
      token: m.credential,
      json: { reports: [downloading, failed, failed] },
    });
    expect(first.status).toBe(200);
    expect(first.body.accepted).toEqual([downloading.id, failed.id]);
    expect(first.body.duplicates).toEqual([failed.id]);
    const resend = await s.call('POST', '/v1/agent/reports', {
      token: m.credential,
      json: { reports: [failed, { ...downloading, id: downloading.id.toUpperCase() }] },
    });
    expect(resend.body.accepted).toEqual([]);
    expect(resend.body.duplicates).toHaveLength(2);
    const shown = await s.call('GET', `/v1/rollouts/${rolloutId}`, { token: s.admin });
    expect(shown.body.counters).toMatchObject({ failed: 1, applied: 0 });
    const listed = await s.call('GET', `/v1/reports?machine=report-machine&status=failed`, {
      token: s.admin,
    });
    expect(listed.body.reports).toEqual([
      expect.objectContaining({ id: failed.id, errorCode: 'CLP_E_HEALTH_CHECK', log: failed.log, rolloutId }),
    ]);
    const machine = await s.call('GET', '/v1/machines/report-machine', { token: s.admin });
    expect(machine.body.recentReports).toHaveLength(2);
  });

  it("moves rollout counters by each machine's latest outcome, under concurrent batches", async () => {
    const a = await upload('CLP1260604');
    const b = await upload('CLP1260605');
    const t = await enrollmentToken({ tier: 'stable', uses: 8 });
    const fleet = await Promise.all(
      Array.from({ length: 8 }, (_, i) => enroll(t.token, `counter-machine-${i}`)),
    );
    const ra = await rollout(a.id, 'stable', {
      failureThreshold: { maxFailureRate: 1, minReports: 1_000_000 },
    });
    const rb = await rollout(b.id, 'stable', {
      failureThreshold: { maxFailureRate: 1, minReports: 1_000_000 },
    });
    // In the past: a time further ahead than clock skew explains is ordered by its arrival.
    const base = clock.now().getTime() - 100_000_000;
    const latest = new Map<string, { at: number; status: string }>();
    const batches = Array.from({ length: 40 }, (_, i) => {
      const m = fleet[i % fleet.length]!;
      const reports = Array.from({ length: 10 }, (_, j) => {
        const rolloutId = (i + j) % 2 === 0 ? ra : rb;
        // Distinct agent times, so that which outcome is a machine's latest is not left to chance.
        const at = base + ((i * 7919 + j * 104_729) % 100_000) * 1000;
        const status = (i + 3 * j) % 5 === 0 ? 'failed' : 'applied';
        const key = `${rolloutId} ${m.machineId}`;
        if ((latest.get(key)?.at ?? -1) < at) latest.set(key, { at, status });
        return { id: randomUUID(), rolloutId, name: 'CLP1260604', status, at: new Date(at).toISOString() };
      });
      return { m, reports };
    });
    const sent = await Promise.all(
      batches.map(({ m, reports }) =>
        s.call('POST', '/v1/agent/reports', { token: m.credential, json: { reports } }),
      ),
    );
    expect(sent.map((r) => r.status)).toEqual(Array(40).fill(200));
    for (const id of [ra, rb]) {
      const stored = await s.call('GET', `/v1/reports?rollout=${id}&limit=1000`, { token: s.admin });
      // Every report is kept as the machines' history…
      expect(stored.body.reports).toHaveLength(200);
      // …and each machine counts once, by its latest outcome.
      const mine = [...latest].filter(([key]) => key.startsWith(`${id} `)).map(([, v]) => v.status);
      expect(mine).toHaveLength(8);
      const counters = (await s.call('GET', `/v1/rollouts/${id}`, { token: s.admin })).body.counters;
      expect(counters).toMatchObject({
        applied: mine.filter((x) => x === 'applied').length,
        failed: mine.filter((x) => x === 'failed').length,
      });
    }
  });

  it('stores a report sent by several requests at the same moment once, accepted by exactly one', async () => {
    const t = await enrollmentToken({ tier: 'edge' });
    const m = await enroll(t.token, 'same-moment-machine');
    const report = { id: randomUUID(), name: 'CLP1260601', status: 'applied', at: clock.now().toISOString() };
    const answers = await Promise.all(
      Array.from({ length: 6 }, (_, i) =>
        s.call('POST', '/v1/agent/reports', {
          token: m.credential,
          json: {
            reports: [report, { ...report, id: randomUUID(), status: i % 2 ? 'downloading' : 'skipped' }],
          },
        }),
      ),
    );
    expect(answers.map((a) => a.status)).toEqual(Array(6).fill(200));
    expect(answers.filter((a) => a.body.accepted.includes(report.id))).toHaveLength(1);
    expect(answers.filter((a) => a.body.duplicates.includes(report.id))).toHaveLength(5);
    for (const a of answers)
      expect(a.body.accepted).toHaveLength(a.body.accepted.includes(report.id) ? 2 : 1);
    const listed = await s.call('GET', '/v1/reports?machine=same-moment-machine', { token: s.admin });
    expect(listed.body.reports).toHaveLength(7);
  });

  it('answers many machines polling at once, each as itself, and refuses the stranger among them', async () => {
    const t = await enrollmentToken({ tier: 'edge', uses: 30 });
    const fleet = await Promise.all(
      Array.from({ length: 30 }, (_, i) => enroll(t.token, `burst-machine-${i}`)),
    );
    const callers = [...fleet.map((m) => m.credential), 'clp_mch_stranger'];
    const answers = await Promise.all(
      callers.map((token) => s.call('POST', '/v1/agent/poll', { token, json: { facts: FACTS } })),
    );
    expect(answers.map((a) => a.status)).toEqual([...Array(30).fill(200), 401]);
    expect(answers.slice(0, 30).map((a) => a.body.machineId)).toEqual(fleet.map((m) => m.machineId));
  });

  it('refuses a revoked machine, even with its old credential, until an operator re-keys it', async () => {
    const t = await enrollmentToken({ tier: 'edge', uses: 3 });
    const m = await enroll(t.token, 'revoked-machine-1');
    expect(
      (await s.call('POST', '/v1/agent/poll', { token: m.credential, json: { facts: FACTS } })).status,
    ).toBe(200);
    expect((await s.call('POST', `/v1/machines/${m.machineId}/revoke`, { token: s.admin })).status).toBe(200);
    const refused = await s.call('POST', '/v1/agent/reports', {
      token: m.credential,
      json: {
        reports: [{ id: randomUUID(), name: 'CLP1260602', status: 'applied', at: clock.now().toISOString() }],
      },
    });
    expect(refused.status).toBe(401);
    const withOld = await s.call('POST', '/v1/agent/enroll', {
      json: { token: t.token, facts: FACTS, machineId: 'revoked-machine-1', credential: m.credential },
    });
    expect(withOld.status).toBe(409);
    expect(
      (await s.call('POST', '/v1/machines/revoked-machine-1/rekey', { token: s.admin, json: {} })).status,
    ).toBe(200);
    const again = await enroll(t.token, 'revoked-machine-1');
    expect(
      (await s.call('POST', '/v1/agent/poll', { token: again.credential, json: { facts: FACTS } })).status,
    ).toBe(200);
    expect((await s.call('GET', '/v1/machines/revoked-machine-1', { token: s.admin })).body.revoked).toBe(
      false,
    );
  });

  describe('why a machine was or was not offered a release', () => {
    let releaseId: string;
    let rolloutId: string;
    let inside: string;
    let outside: string;
    let untagged: string;
    const explain = async (machine: string, query = '') => {
      const res = await s.call('GET', `/v1/machines/${machine}/explain?release=${releaseId}${query}`, {
        token: s.admin,
      });
      expect(res.status, JSON.stringify(res.body)).toBe(200);
      return res.body;
    };

    beforeAll(async () => {
      releaseId = (await upload('CLP1260603')).id;
      const tagged = await enrollmentToken({ tier: 'edge', tags: ['canary'], uses: 40 });
      const ids = Array.from({ length: 30 }, (_, i) => `explain2-${i}`);
      for (const id of ids) await enroll(tagged.token, id);
      const plain = await enrollmentToken({ tier: 'edge' });
      untagged = (await enroll(plain.token, 'explain2-untagged')).machineId;
      rolloutId = await rollout(releaseId, 'edge', {
        selector: { tags: ['canary'] },
        stages: [
          { percent: 40, minDurationSeconds: 3600 },
          { percent: 100, minDurationSeconds: 0 },
        ],
      });
      inside = ids.find((id) => inStage(cohortBucket(id, rolloutId), 40))!;
      outside = ids.find((id) => !inStage(cohortBucket(id, rolloutId), 40))!;
    });

    it('names the cohort and stage', async () => {
      expect(await explain(inside)).toMatchObject({ verdict: 'offered', cutoff: null });
      const no = await explain(outside);
      expect(no.verdict).toBe('not-offered');
      expect(no.rollouts[0]).toMatchObject({
        rolloutId,
        rule: 'cohort',
        percent: 40,
        bucket: cohortBucket(outside, rolloutId),
      });
    });

    it('names the selector', async () => {
      const no = await explain(untagged);
      expect(no.verdict).toBe('not-offered');
      expect(no.rollouts[0].rule).toBe('selector');
      expect(no.summary).toContain('canary');
    });

    it("names the machine's cut-off: a delay in days, then a date", async () => {
      const held = await explain(inside, '&cutoff=7d');
      expect(held.verdict).toBe('held');
      expect(held.cutoff).toMatchObject({ setting: '7d', held: true });
      expect(held.summary).toContain('cut-off');
      const before = await explain(inside, '&cutoff=2020-01-01');
      expect(before.verdict).toBe('held');
      const after = await explain(inside, '&cutoff=2099-01-01');
      expect(after.verdict).toBe('offered');
      const bad = await s.call('GET', `/v1/machines/${inside}/explain?release=${releaseId}&cutoff=soon`, {
        token: s.admin,
      });
      expect(bad.status).toBe(400);
      expect(bad.body.error.field).toBe('query.cutoff');
    });

    it('names a paused or halted rollout', async () => {
      await s.call('POST', `/v1/rollouts/${rolloutId}/pause`, {
        token: s.admin,
        json: { reason: 'looking' },
      });
      const paused = await explain(inside);
      expect(paused.verdict).toBe('not-offered');
      expect(paused.rollouts[0]).toMatchObject({ rule: 'paused', state: 'paused' });
      await s.call('POST', `/v1/rollouts/${rolloutId}/resume`, { token: s.admin });
      // Ten failures, the minimum number of reports, from machines the rollout offered it to.
      const t = await enrollmentToken({ tier: 'edge', tags: ['canary'], uses: 20 });
      const reached = Array.from({ length: 200 }, (_, i) => `explain2-fail-${i}`)
        .filter((id) => inStage(cohortBucket(id, rolloutId), 40))
        .slice(0, 10);
      for (const id of reached) {
        const m = await enroll(t.token, id);
        const offer = await s.call('POST', '/v1/agent/poll', { token: m.credential, json: { facts: FACTS } });
        expect(offer.body.apply.map((a: { rolloutId: string }) => a.rolloutId)).toContain(rolloutId);
        await s.call('POST', '/v1/agent/reports', {
          token: m.credential,
          json: {
            reports: [
              {
                id: randomUUID(),
                rolloutId,
                releaseId,
                name: 'CLP1260603',
                status: 'failed',
                at: clock.now().toISOString(),
              },
            ],
          },
        });
      }
      const halted = await explain(inside);
      expect(halted.verdict).toBe('not-offered');
      expect(halted.rollouts[0]).toMatchObject({ rule: 'halted', state: 'halted' });
      expect(halted.rollouts[0].reason).toMatch(/halted: failure rate/);
      // The cut-off after a week no longer holds, but a halted rollout still offers nothing.
      clock.advance(8 * 86_400);
      const week = await explain(inside, '&cutoff=7d');
      expect(week.cutoff).toMatchObject({ held: false });
      expect(week.verdict).toBe('not-offered');
    });
  });
});
