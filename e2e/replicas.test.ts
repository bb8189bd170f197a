import { randomBytes, randomUUID } from 'node:crypto';
import { readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createTestDatabase, type TestDatabase } from '@clp/db';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildRelease, sha256 } from './support/agents.ts';
import { missingBuild } from './support/paths.ts';
import { type ServerProcess, startServerProcess } from './support/server-process.ts';

/*
 * Three real server processes on one PostgreSQL database (a database of their own), with release
 * files in PostgreSQL (CLP_BLOB_STORE=postgres): what one replica is told, every other one acts
 * on within a second, whether it is idle or busy.
 */

const missing = missingBuild() ?? (process.env.DATABASE_URL ? undefined : 'PostgreSQL (DATABASE_URL)');
if (missing) console.warn(`skipped: needs ${missing}`);

const REPLICAS = 3;
const PROPAGATION_BOUND_MS = 1000;
const FACTS = {
  hostname: 'replica-m',
  os: { id: 'vincent', version: '2025.11' },
  arch: 'x86_64',
  agentVersion: '0.1.0',
};

/** Polls `probe` until it is true; answers how long that took (ms), or fails after `limitMs`. */
async function timeUntil(probe: () => Promise<boolean>, limitMs = 10_000): Promise<number> {
  const started = performance.now();
  while (performance.now() - started < limitMs) {
    if (await probe()) return performance.now() - started;
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new Error(`not true within ${limitMs} ms`);
}

describe.skipIf(missing !== undefined)('several server processes on one PostgreSQL', () => {
  let database: TestDatabase;
  const replicas: ServerProcess[] = [];
  let first: Awaited<ReturnType<typeof buildRelease>>;
  let rival: Awaited<ReturnType<typeof buildRelease>>;
  const admin = `clp_adm_replicas${randomBytes(16).toString('hex')}`;

  beforeAll(async () => {
    database = await createTestDatabase(process.env.DATABASE_URL!, 'clp_replicas');
    [first, rival] = await Promise.all([
      buildRelease('CLP1261201', 64 * 1024),
      buildRelease('CLP1261201', 64 * 1024),
    ]);
    // The first replica migrates the fresh database; the others start on it together.
    replicas.push(
      await startServerProcess({ databaseUrl: database.url, admin, env: { CLP_BLOB_STORE: 'postgres' } }),
    );
    replicas.push(
      ...(await Promise.all(
        Array.from({ length: REPLICAS - 1 }, () =>
          startServerProcess({ databaseUrl: database.url, admin, env: { CLP_BLOB_STORE: 'postgres' } }),
        ),
      )),
    );
    for (const r of replicas) {
      await writeFile(join(r.keysDir, 'first.pub'), await readFile(first.pub));
      await writeFile(join(r.keysDir, 'rival.pub'), await readFile(rival.pub));
    }
  }, 180_000);

  afterAll(async () => {
    await Promise.all(replicas.map((r) => r.stop()));
    await database?.drop();
    for (const r of [first, rival]) if (r) await rm(r.dir, { recursive: true, force: true });
  }, 60_000);

  async function enroll(via: ServerProcess, machineId: string): Promise<string> {
    const token = await via.call('POST', '/v1/enrollment-tokens', { json: { tier: 'edge', uses: 1 } });
    expect(token.status, JSON.stringify(token.body)).toBe(201);
    const res = await via.call('POST', '/v1/agent/enroll', {
      token: '',
      json: { token: token.body.token, machineId, facts: FACTS },
    });
    expect(res.status, JSON.stringify(res.body)).toBe(201);
    return res.body.credential as string;
  }

  const offers = async (via: ServerProcess, credential: string, releaseId: string): Promise<boolean> => {
    const res = await via.call('POST', '/v1/agent/poll', { token: credential, json: { facts: FACTS } });
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    return (res.body.apply as Array<{ releaseId: string }>).some((a) => a.releaseId === releaseId);
  };

  it('stores one of two different files uploaded under one name at once through two replicas, and answers 409 to the other', async () => {
    const [a, b] = await Promise.all([
      replicas[0]!.call('POST', '/v1/releases', { body: first.bytes }),
      replicas[1]!.call('POST', '/v1/releases', { body: rival.bytes }),
    ]);
    expect([a.status, b.status].sort()).toEqual([201, 409]);
    const loser = a.status === 409 ? a : b;
    expect(loser.body.error.code).toBe('CLP_E_CONFLICT');
    const winner = a.status === 201 ? a : b;
    const byName = await replicas[2]!.call('GET', '/v1/releases?name=CLP1261201');
    expect(byName.body.releases.map((r: { id: string }) => r.id)).toEqual([winner.body.id]);
    // The loser's bytes are served by no replica.
    const loserSha = sha256(a.status === 409 ? first.bytes : rival.bytes);
    for (const r of replicas) expect((await r.call('GET', `/v1/blobs/${loserSha}`)).status).toBe(404);
  });

  it('serves a release uploaded through one replica from every other, with the same Range and ETag answers', async () => {
    const [list] = [await replicas[0]!.call('GET', '/v1/releases?name=CLP1261201')];
    const id: string = list.body.releases[0].id;
    const bytes = sha256(first.bytes) === id ? first.bytes : rival.bytes;
    for (const r of replicas) {
      const whole = await fetch(`${r.url}/v1/blobs/${id}`);
      expect(whole.status).toBe(200);
      expect(whole.headers.get('etag')).toBe(`"${id}"`);
      expect(sha256(Buffer.from(await whole.arrayBuffer()))).toBe(id);
      const part = await fetch(`${r.url}/v1/blobs/${id}`, { headers: { range: 'bytes=100-299' } });
      expect(part.status).toBe(206);
      expect(part.headers.get('content-range')).toBe(`bytes 100-299/${bytes.length}`);
      expect(Buffer.from(await part.arrayBuffer()).equals(bytes.subarray(100, 300))).toBe(true);
      const again = await fetch(`${r.url}/v1/blobs/${id}`, { headers: { 'if-none-match': `"${id}"` } });
      expect(again.status).toBe(304);
    }
  });

  it('stops offering a halted, paused or aborted rollout, or a yanked release, on every replica within a second, idle or busy', async () => {
    const [list] = [await replicas[0]!.call('GET', '/v1/releases?name=CLP1261201')];
    const releaseId: string = list.body.releases[0].id;
    const credential = await enroll(replicas[0]!, 'replica-machine-1');
    const busyCredential = await enroll(replicas[0]!, 'replica-machine-2');
    const measured: Record<string, number> = {};
    // Replica 1 is kept busy polling all along; replica 2 gets nothing between the change and the probe.
    let busy = true;
    const load = (async () => {
      while (busy) await offers(replicas[1]!, busyCredential, releaseId).catch(() => false);
    })();
    try {
      for (const action of ['halt', 'pause', 'abort', 'yank'] as const) {
        const created = await replicas[0]!.call('POST', '/v1/rollouts', {
          json: {
            releaseId,
            tier: 'edge',
            stages: [{ percent: 100, minDurationSeconds: 3600 }],
            failureThreshold: { maxFailureRate: 0.5, minReports: 1 },
          },
        });
        expect(created.status, JSON.stringify(created.body)).toBe(201);
        for (const r of replicas.slice(1)) await timeUntil(() => offers(r, credential, releaseId));
        // Idle for longer than any cache lives: the old answer must not come back from memory.
        await new Promise((r) => setTimeout(r, 2500));
        const changed =
          action === 'halt'
            ? // The machine's failure report, through replica 0, halts the rollout by itself.
              await replicas[0]!.call('POST', '/v1/agent/reports', {
                token: credential,
                json: {
                  reports: [
                    {
                      id: randomUUID(),
                      releaseId,
                      rolloutId: created.body.id,
                      name: 'CLP1261201',
                      sha256: releaseId,
                      status: 'failed',
                      errorCode: 'CLP_E_TEST',
                      at: new Date().toISOString(),
                    },
                  ],
                },
              })
            : action === 'yank'
              ? await replicas[0]!.call('POST', `/v1/releases/${releaseId}/yank`, { json: {} })
              : await replicas[0]!.call('POST', `/v1/rollouts/${created.body.id}/${action}`, { json: {} });
        expect(changed.status, JSON.stringify(changed.body)).toBe(200);
        const acknowledged = performance.now();
        const ms = await timeUntil(async () => !(await offers(replicas[1]!, credential, releaseId)));
        measured[action] = Math.round(ms);
        expect(ms, `${action} reached the busy replica after ${ms} ms`).toBeLessThan(PROPAGATION_BOUND_MS);
        // The idle replica's first answer once the bound has passed must already know: a cache
        // that aged while idle may not answer first and reload afterwards.
        await new Promise((r) => setTimeout(r, PROPAGATION_BOUND_MS - (performance.now() - acknowledged)));
        expect(await offers(replicas[2]!, credential, releaseId), `${action} on the idle replica`).toBe(
          false,
        );
        if (action === 'halt') {
          const halted = await replicas[2]!.call('GET', `/v1/rollouts/${created.body.id}`);
          expect(halted.body.state).toBe('halted');
        }
        // A halted or paused twin of the next rollout would be refused (409): end it first.
        if (action === 'halt' || action === 'pause') {
          const ended = await replicas[0]!.call('POST', `/v1/rollouts/${created.body.id}/abort`, {
            json: {},
          });
          expect(ended.status, JSON.stringify(ended.body)).toBe(200);
        }
      }
    } finally {
      busy = false;
      await load;
    }
    console.info(`propagation to a busy replica (ms): ${JSON.stringify(measured)}`);
  }, 120_000);

  it('refuses a revoked machine credential on every replica within a second', async () => {
    const credential = await enroll(replicas[0]!, 'replica-machine-3');
    for (const r of replicas) {
      const ok = await r.call('POST', '/v1/agent/poll', { token: credential, json: { facts: FACTS } });
      expect(ok.status).toBe(200);
    }
    const revoked = await replicas[0]!.call('POST', '/v1/machines/replica-machine-3/revoke', { json: {} });
    expect(revoked.status, JSON.stringify(revoked.body)).toBe(200);
    for (const r of replicas.slice(1)) {
      const ms = await timeUntil(async () => {
        const res = await r.call('POST', '/v1/agent/poll', { token: credential, json: { facts: FACTS } });
        return res.status === 401;
      });
      console.info(`revocation reached ${r.url} after ${Math.round(ms)} ms`);
      expect(ms).toBeLessThan(PROPAGATION_BOUND_MS);
    }
  });

  it('moves a rollout to its next stage on time with no traffic at all', async () => {
    const rel = await buildRelease('CLP1261202', 1024);
    try {
      for (const r of replicas) await writeFile(join(r.keysDir, 'tick.pub'), await readFile(rel.pub));
      const up = await replicas[0]!.call('POST', '/v1/releases', { body: rel.bytes });
      expect(up.status, JSON.stringify(up.body)).toBe(201);
      const created = await replicas[0]!.call('POST', '/v1/rollouts', {
        json: {
          releaseId: up.body.id,
          tier: 'beta',
          stages: [
            { percent: 10, minDurationSeconds: 2 },
            { percent: 100, minDurationSeconds: 0 },
          ],
        },
      });
      expect(created.status, JSON.stringify(created.body)).toBe(201);
      // Read straight from the database's audit, which no API read refreshes: only the tick can move it.
      const { queryOnce } = await import('@clp/db');
      await new Promise((r) => setTimeout(r, 6000));
      const audit = await queryOnce<{ action: string; actor: string }>(
        database.url,
        'select action, actor from rollout_audit where rollout_id = $1 order by id',
        [created.body.id],
      );
      // Three ticking replicas, one step: the conditional update let exactly one of them take it.
      expect(audit.map((a) => a.action)).toEqual(['create', 'advance', 'complete']);
      expect(audit.slice(1).every((a) => a.actor === 'system')).toBe(true);
    } finally {
      await rm(rel.dir, { recursive: true, force: true });
    }
  });
});
