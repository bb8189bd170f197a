import { createHash, randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readdir, rm, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { machines, rollouts } from '@clp/db';
import { eq } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  CHUNK_BYTES,
  cleanUploads,
  createServer,
  defaultConfig,
  PostgresBlobStore,
  type ReleaseInspector,
} from '../src/index.ts';
import { drivers, FACTS, fakeRelease, jsonInspector, type Running, start } from './harness.ts';

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe.each(drivers())('one truth for every server process, on $name', (driver) => {
  let s: Running;
  /** Holds each inspection until `hold` more have arrived: lets two uploads pass the name check together. */
  let waiting: Array<() => void> = [];
  let hold = 0;
  const racingInspector: ReleaseInspector = async (file) => {
    if (hold > 0) {
      hold--;
      await new Promise<void>((resolve) => {
        waiting.push(resolve);
        if (hold === 0) for (const w of waiting.splice(0)) w();
      });
    }
    return jsonInspector(file);
  };

  beforeAll(async () => {
    s = await start({
      driver,
      inspect: racingInspector,
      config: { credentialCacheMs: 300, rolloutCacheMs: 300, stageTickMs: 100 },
    });
  });
  afterAll(async () => {
    await s?.close();
  });

  const upload = (bytes: Buffer) =>
    s.call('POST', '/v1/releases', {
      token: s.admin,
      body: bytes,
      headers: { 'content-type': 'application/octet-stream' },
    });

  async function enrolled(machineId: string): Promise<string> {
    const token = await s.call('POST', '/v1/enrollment-tokens', { token: s.admin, json: { tier: 'edge' } });
    const res = await s.call('POST', '/v1/agent/enroll', {
      json: { token: token.body.token, facts: FACTS, machineId },
    });
    expect(res.status, JSON.stringify(res.body)).toBe(201);
    return res.body.credential;
  }

  it('answers 409 to the second of two different files uploaded under one name at once, and the name keeps the first', async () => {
    const a = fakeRelease('CLP1260901', { arch: 'x86_64' });
    const b = fakeRelease('CLP1260901', { arch: 'aarch64' });
    hold = 2;
    waiting = [];
    const [ra, rb] = await Promise.all([upload(a), upload(b)]);
    expect([ra.status, rb.status].sort()).toEqual([201, 409]);
    const loser = ra.status === 409 ? ra : rb;
    const winner = ra.status === 201 ? ra : rb;
    expect(loser.body.error.code).toBe('CLP_E_CONFLICT');
    expect(loser.body.error.message).toContain(winner.body.sha256);
    const named = await s.call('GET', '/v1/releases?name=CLP1260901', { token: s.admin });
    expect(named.body.releases.map((r: { id: string }) => r.id)).toEqual([winner.body.id]);
    const loserSha = sha(ra.status === 409 ? a : b);
    expect((await s.call('GET', `/v1/blobs/${loserSha}`)).status).toBe(404);
    expect(await s.server.context.blobs.size(loserSha)).toBeUndefined();
  });

  it('serves no blob whose release row is missing, so a blob and its release are found together or not at all', async () => {
    const orphan = Buffer.from('a blob whose release row never committed');
    const file = join(s.server.context.blobs.tempDir, 'upload-orphan');
    await writeFile(file, orphan);
    await s.server.context.blobs.put(sha(orphan), file);
    expect(await s.server.context.blobs.size(sha(orphan))).toBe(orphan.length);
    const res = await s.call('GET', `/v1/blobs/${sha(orphan)}`);
    expect(res.status).toBe(404);
    expect(res.body.error.code).toBe('CLP_E_NOT_FOUND');
  });

  it('refuses a machine credential revoked behind its back once the credential cache bound has passed', async () => {
    const credential = await enrolled('cache-bound-machine');
    const poll = () => s.call('POST', '/v1/agent/poll', { token: credential, json: { facts: FACTS } });
    expect((await poll()).status).toBe(200);
    // As another server process would: straight in the database, with no word to this process's cache.
    const changed = performance.now();
    await s.server.context.db
      .update(machines)
      .set({ revokedAt: new Date() })
      .where(eq(machines.id, 'cache-bound-machine'));
    await sleep(300 - (performance.now() - changed) + 20);
    const refused = await poll();
    expect(refused.status).toBe(401);
    expect(refused.body.error.code).toBe('CLP_E_UNAUTHORIZED');
  });

  it('answers a poll from a rollout cache no older than its bound, even after a long idle time', async () => {
    const release = await upload(fakeRelease('CLP1260902'));
    expect(release.status).toBe(201);
    const created = await s.call('POST', '/v1/rollouts', {
      token: s.admin,
      json: {
        releaseId: release.body.id,
        tier: 'edge',
        stages: [{ percent: 100, minDurationSeconds: 3600 }],
      },
    });
    expect(created.status, JSON.stringify(created.body)).toBe(201);
    const credential = await enrolled('idle-cache-machine');
    const offered = async () => {
      const res = await s.call('POST', '/v1/agent/poll', { token: credential, json: { facts: FACTS } });
      return (res.body.apply as Array<{ releaseId: string }>).some((a) => a.releaseId === release.body.id);
    };
    expect(await offered()).toBe(true);
    await sleep(800);
    const changed = performance.now();
    await s.server.context.db
      .update(rollouts)
      .set({ state: 'aborted' })
      .where(eq(rollouts.id, created.body.id));
    await sleep(300 - (performance.now() - changed) + 20);
    expect(await offered()).toBe(false);
  });

  it('moves a rollout to its next stage on time when nothing reads it', async () => {
    const release = await upload(fakeRelease('CLP1260903'));
    const created = await s.call('POST', '/v1/rollouts', {
      token: s.admin,
      json: {
        releaseId: release.body.id,
        tier: 'stable',
        stages: [
          { percent: 10, minDurationSeconds: 1 },
          { percent: 50, minDurationSeconds: 3600 },
        ],
      },
    });
    expect(created.status).toBe(201);
    await sleep(1600);
    // Read the row itself: any API read would move the stages along by itself.
    const [row] = await s.server.context.db.select().from(rollouts).where(eq(rollouts.id, created.body.id));
    expect(row?.currentStage).toBe(1);
  });
});

describe.each(drivers())('the PostgreSQL blob store on $name', (driver) => {
  let handle: Awaited<ReturnType<typeof driver.open>>;
  let dir: string;
  beforeAll(async () => {
    handle = await driver.open();
    const { migrate } = await import('@clp/db');
    await migrate(handle.handle);
    dir = await mkdtemp(join(tmpdir(), 'clp-pgblobs-'));
  });
  afterAll(async () => {
    await handle?.handle.close();
    await handle?.drop();
    await rm(dir, { recursive: true, force: true });
  });

  async function read(stream: NodeJS.ReadableStream): Promise<Buffer> {
    const parts: Buffer[] = [];
    for await (const part of stream) parts.push(part as Buffer);
    return Buffer.concat(parts);
  }

  it('keeps a blob in pieces and answers any byte range across their edges', async () => {
    const store = new PostgresBlobStore(handle.handle.db, dir, 7);
    const bytes = Buffer.from(Array.from({ length: 50 }, (_, i) => i));
    const file = join(dir, 'upload-a');
    await writeFile(file, bytes);
    await store.put(sha(bytes), file);
    expect(await readdir(dir)).toEqual([]);
    expect(await store.size(sha(bytes))).toBe(50);
    expect((await read(store.read(sha(bytes)))).equals(bytes)).toBe(true);
    for (const [start, end] of [
      [0, 0],
      [6, 7],
      [7, 13],
      [3, 45],
      [49, 49],
      [14, 20],
    ] as const) {
      const got = await read(store.read(sha(bytes), { start, end }));
      expect(got.equals(bytes.subarray(start, end + 1)), `${start}-${end}`).toBe(true);
    }
  });

  it('stores the same bytes put twice once, and answers no size for a blob it does not hold', async () => {
    const store = new PostgresBlobStore(handle.handle.db, dir, CHUNK_BYTES);
    const bytes = Buffer.from('twice');
    for (const name of ['upload-b', 'upload-c']) {
      await writeFile(join(dir, name), bytes);
      await store.put(sha(bytes), join(dir, name));
    }
    expect(await store.size(sha(bytes))).toBe(5);
    expect(await store.size('f'.repeat(64))).toBeUndefined();
    await store.remove(sha(bytes));
    expect(await store.size(sha(bytes))).toBeUndefined();
  });
});

describe('the data folder of the embedded database', () => {
  it('refuses a second server on one CLP_DATA_DIR with PGlite, naming the folder, and frees it when the first stops', async () => {
    const dataDir = await mkdtemp(join(tmpdir(), 'clp-lock-'));
    const config = defaultConfig({
      dataDir,
      logLevel: 'silent',
      bootstrapToken: `clp_adm_${randomBytes(32).toString('hex')}`,
    });
    const quiet = { logStream: { write: () => undefined } };
    try {
      const first = await createServer(config, quiet);
      const second = await createServer(config, quiet).then(
        () => undefined,
        (e: { code?: string; message?: string }) => e,
      );
      expect(second?.code).toBe('CLP_E_DATA_DIR_IN_USE');
      expect(second?.message).toContain(dataDir);
      expect(second?.message).toContain(`pid ${process.pid}`);
      expect(second?.message).toContain('DATABASE_URL');
      await first.close();
      const third = await createServer(config, quiet);
      await third.close();
    } finally {
      await rm(dataDir, { recursive: true, force: true });
    }
  }, 60_000);

  it('removes abandoned uploads at start: all of them in a folder it owns, only old ones in a shared one', async () => {
    const tmp = await mkdtemp(join(tmpdir(), 'clp-uploads-'));
    try {
      await mkdir(tmp, { recursive: true });
      await writeFile(join(tmp, 'upload-fresh'), 'x');
      await writeFile(join(tmp, 'upload-old'), 'x');
      const twoHoursAgo = new Date(Date.now() - 2 * 3600_000);
      await utimes(join(tmp, 'upload-old'), twoHoursAgo, twoHoursAgo);
      expect(await cleanUploads(tmp, false)).toBe(1);
      expect(await readdir(tmp)).toEqual(['upload-fresh']);
      expect(await cleanUploads(tmp, true)).toBe(1);
      expect(await readdir(tmp)).toEqual([]);
    } finally {
      await rm(tmp, { recursive: true, force: true });
    }
  });
});
