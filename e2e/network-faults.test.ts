import { readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildRelease, GOOD_MOTD, Machine } from './support/agents.ts';
import { FaultProxy } from './support/fault-proxy.ts';
import { missingBuild } from './support/paths.ts';
import { type ServerProcess, startServerProcess } from './support/server-process.ts';

/*
 * Bar R4: agents talk to the real server through a proxy that refuses connections, answers 5xx,
 * delays, cuts downloads and corrupts bytes. The agents retry, resume, reject bad bytes, and every
 * spooled report arrives exactly once when the way is clear again.
 */

const missing = missingBuild();
if (missing) console.warn(`skipped: needs ${missing}`);

const RELEASE = 'CLP1261121';
const BLOB_BYTES = 2 * 1024 * 1024;

interface Report {
  id: string;
  machineId: string;
  status: string;
}

describe.skipIf(missing !== undefined)('agents through network faults', () => {
  let server: ServerProcess;
  let proxy: FaultProxy;
  let release: Awaited<ReturnType<typeof buildRelease>>;
  let rolloutId = '';
  const machines: Machine[] = [];

  const reportsOf = async (m: Machine): Promise<Report[]> => {
    const r = await server.call('GET', `/v1/reports?rollout=${rolloutId}&machine=${m.machineId}&limit=1000`);
    expect(r.status).toBe(200);
    return r.body.reports as Report[];
  };
  const expectPatched = async (m: Machine) => {
    expect(await m.read('/etc/clp-e2e.conf'), m.name).toBe(release.conf);
    expect(await m.read('/etc/motd'), m.name).toBe(release.newMotd);
    const blob = await readFile(join(m.root, 'opt', 'clp-e2e', 'blob.bin'));
    expect(blob.equals(release.blob), `${m.name} blob.bin is the released one`).toBe(true);
  };
  const expectUntouched = async (m: Machine) => {
    expect(await m.read('/etc/clp-e2e.conf'), m.name).toBeUndefined();
    expect(await m.read('/opt/clp-e2e/blob.bin'), m.name).toBeUndefined();
    expect(await m.read('/etc/motd'), m.name).toBe(GOOD_MOTD);
  };
  /** The reports waiting in the machine's spool (one JSON file each). */
  const spooled = async (m: Machine): Promise<Report[]> => {
    const dir = join(m.root, 'var', 'lib', 'clp', 'spool');
    const names = (await readdir(dir).catch(() => [] as string[])).filter((n) => n.endsWith('.json'));
    return Promise.all(names.map(async (n) => JSON.parse(await readFile(join(dir, n), 'utf8')) as Report));
  };
  const show = (r: { code: number; stdout: string; stderr: string }) =>
    `exit ${r.code}\n${r.stdout}\n${r.stderr}`;

  beforeAll(async () => {
    [server, release] = await Promise.all([startServerProcess(), buildRelease(RELEASE, BLOB_BYTES)]);
    await writeFile(join(server.keysDir, 'e2e-release.pub'), await readFile(release.pub));
    proxy = new FaultProxy(server.url);
    await proxy.up();
    const token = await server.call('POST', '/v1/enrollment-tokens', { json: { tier: 'stable', uses: 10 } });
    expect(token.status).toBe(201);
    for (let i = 0; i < 6; i++) machines.push(await Machine.create(`net${i + 1}`, release.pub));
    await Promise.all(machines.map((m) => m.enroll(proxy.url, token.body.token)));
    // Short time limits and back-off, so that retries happen within the test.
    await Promise.all(machines.map((m) => m.fastNetwork()));
    const upload = await server.call('POST', '/v1/releases', { body: release.bytes });
    expect(upload.status, JSON.stringify(upload.body)).toBe(201);
    const rollout = await server.call('POST', '/v1/rollouts', {
      json: {
        releaseId: upload.body.id,
        tier: 'stable',
        stages: [{ percent: 100, minDurationSeconds: 0 }],
        // Faults are not the patch's fault: keep the rollout going whatever the agents report.
        failureThreshold: { maxFailureRate: 1, minReports: 1_000_000 },
      },
    });
    expect(rollout.status, JSON.stringify(rollout.body)).toBe(201);
    rolloutId = rollout.body.id;
  }, 120_000);

  afterAll(async () => {
    await proxy?.down();
    await server?.stop();
    await Promise.all(machines.map((m) => m.remove()));
    if (release) await rm(release.dir, { recursive: true, force: true });
  }, 60_000);

  it('retries polls answered with 5xx, with growing back-off, and then applies', async () => {
    const m = machines[0]!;
    const before = proxy.log.length;
    let polls = 0;
    proxy.setRule((req) =>
      req.url === '/v1/agent/poll' && ++polls <= 3 ? { kind: 'status', status: 503 } : { kind: 'pass' },
    );
    const r = await m.update();
    expect(r.code, show(r)).toBe(0);
    const seen = proxy.log.slice(before).filter((x) => x.url === '/v1/agent/poll');
    expect(seen.map((x) => x.status)).toEqual([503, 503, 503, 200]);
    // Equal-jitter back-off from 100 ms: at least 50, 100 and 200 ms between the attempts.
    const gaps = seen.slice(1).map((x, i) => x.at - seen[i]!.at);
    expect(gaps[0]).toBeGreaterThanOrEqual(45);
    expect(gaps[1]).toBeGreaterThanOrEqual(95);
    expect(gaps[2]).toBeGreaterThanOrEqual(195);
    await expectPatched(m);
  });

  it('falls back to the next server when the first one refuses connections', async () => {
    const m = machines[5]!;
    proxy.passAll();
    // Port 9 (discard) on loopback: nothing listens, so connections are refused.
    const set = await m.run(['config', 'set', 'servers', `http://127.0.0.1:9,${proxy.url}`]);
    expect(set.code, show(set)).toBe(0);
    const before = proxy.log.length;
    const r = await m.update();
    expect(r.code, show(r)).toBe(0);
    expect(proxy.log.slice(before).some((x) => x.url === '/v1/agent/poll' && x.status === 200)).toBe(true);
    await expectPatched(m);
  });

  it('gives up on a response slower than its time limit, retries, and applies', async () => {
    const m = machines[1]!;
    let polls = 0;
    proxy.setRule((req) =>
      req.url === '/v1/agent/poll' && ++polls === 1
        ? { kind: 'delay', ms: 3500 }
        : { kind: 'delay', ms: 200 },
    );
    const r = await m.update();
    expect(r.code, show(r)).toBe(0);
    expect(polls).toBeGreaterThanOrEqual(2);
    await expectPatched(m);
  });

  it('resumes a download cut halfway with Range', async () => {
    const m = machines[2]!;
    const before = proxy.log.length;
    let downloads = 0;
    proxy.setRule((req) =>
      req.method === 'GET' && req.url?.startsWith('/v1/blobs/') && ++downloads === 1
        ? { kind: 'cut', bytes: release.bytes.length >> 1 }
        : { kind: 'pass' },
    );
    const r = await m.update();
    expect(r.code, show(r)).toBe(0);
    const gets = proxy.log.slice(before).filter((x) => x.method === 'GET' && x.url.startsWith('/v1/blobs/'));
    expect(gets.length, JSON.stringify(gets)).toBeGreaterThanOrEqual(2);
    expect(gets[0]!.fault).toBe('cut');
    const resumed = gets.slice(1).find((x) => x.range !== undefined);
    expect(resumed, `a later request asks for the rest: ${JSON.stringify(gets)}`).toBeDefined();
    const start = Number(/^bytes=(\d+)-/.exec(resumed!.range!)?.[1]);
    expect(start).toBeGreaterThan(0);
    expect(start).toBeLessThanOrEqual(release.bytes.length >> 1);
    expect(resumed!.status).toBe(206);
    await expectPatched(m);
  });

  it('rejects corrupted bytes by their sha256 and applies nothing until a clean copy arrives', async () => {
    const m = machines[3]!;
    proxy.setRule((req) =>
      req.method === 'GET' && req.url?.startsWith('/v1/blobs/') ? { kind: 'corrupt' } : { kind: 'pass' },
    );
    const bad = await m.update();
    // 8: the download failed (it is retried at the next check); nothing is reported against the rollout.
    expect(bad.code, show(bad)).toBe(8);
    expect(`${bad.stdout}\n${bad.stderr}`).toMatch(/CLP_E_DOWNLOAD_CORRUPT|sha256/);
    await expectUntouched(m);
    expect((await reportsOf(m)).filter((x) => x.status === 'applied')).toEqual([]);
    proxy.passAll();
    const good = await m.update();
    expect(good.code, show(good)).toBe(0);
    await expectPatched(m);
  });

  it('spools reports while the server is unreachable and delivers each exactly once afterwards', async () => {
    const m = machines[4]!;
    // The server never sees the reports: 503 on every attempt.
    proxy.setRule((req) =>
      req.url === '/v1/agent/reports' ? { kind: 'status', status: 503 } : { kind: 'pass' },
    );
    const first = await m.update();
    await expectPatched(m);
    expect(await reportsOf(m), show(first)).toEqual([]);
    const waiting = await spooled(m);
    expect(waiting.map((x) => x.status)).toContain('applied');

    // The server is down: connections are refused.
    await proxy.down();
    const down = await m.update();
    expect(down.code, show(down)).toBe(8);
    await expectPatched(m);
    await proxy.up();

    // Back, but the first delivery's answer is lost after the server stored it: the agent sends
    // the same reports again and the server recognises them.
    let posts = 0;
    proxy.setRule((req) =>
      req.url === '/v1/agent/reports' && ++posts === 1 ? { kind: 'cut', bytes: 0 } : { kind: 'pass' },
    );
    let again = await m.update();
    if (posts < 2) again = await m.update();
    expect(again.code, show(again)).toBe(0);
    expect(posts, 'the reports were sent again after the lost answer').toBeGreaterThanOrEqual(2);
    const stored = await reportsOf(m);
    expect(new Set(stored.map((x) => x.id)).size).toBe(stored.length);
    expect(stored.filter((x) => x.status === 'applied')).toHaveLength(1);
    // Exactly the reports that waited in the spool reached the server, and the spool is empty.
    expect(new Set(stored.map((x) => x.id))).toEqual(new Set(waiting.map((x) => x.id)));
    expect(await spooled(m)).toEqual([]);
  });

  it('counts every machine once in the rollout, whatever the network did', async () => {
    proxy.passAll();
    const list = await server.call('GET', `/v1/reports?rollout=${rolloutId}&limit=1000`);
    const reports = list.body.reports as Report[];
    expect(new Set(reports.map((r) => r.id)).size).toBe(reports.length);
    for (const m of machines) {
      expect(
        reports.filter((r) => r.machineId === m.machineId && r.status === 'applied'),
        m.name,
      ).toHaveLength(1);
    }
    const rollout = await server.call('GET', `/v1/rollouts/${rolloutId}`);
    expect(rollout.body.counters.applied).toBe(machines.length);
  });
});
