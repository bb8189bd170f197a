import { readdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { EngineError } from '@clp/engine';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { configFile, loadConfig, saveConfig } from '../src/fleet/config.ts';
import { UpdateDaemon } from '../src/fleet/daemon.ts';
import { localEngine } from '../src/fleet/engine-adapter.ts';
import { enrollMachine } from '../src/fleet/enroll.ts';
import { AgentHttpClient } from '../src/fleet/http-client.ts';
import { ReportSpool } from '../src/fleet/spool.ts';
import { runUpdate, type UpdateResult } from '../src/fleet/update.ts';
import {
  deadUrl,
  enrollmentToken,
  FAST_HTTP,
  type FaultProxy,
  faultProxy,
  newRoot,
  type Running,
  releaseKey,
  removeAll,
  rollout,
  type SignedPatch,
  signedPatch,
  start,
  tempDir,
  upload,
} from './fleet-harness.ts';

describe('the fleet loop against the real server', () => {
  let s: Running;
  let proxy: FaultProxy;
  let work: string;
  let key: { keyFile: string; pubFile: string };
  const dirs: string[] = [];

  beforeAll(async () => {
    s = await start();
    proxy = await faultProxy(s.url);
    work = await tempDir('clp-fleet-loop-');
    key = await releaseKey(work, s);
    // One tier per scenario, so that rollouts of one test do not reach the machines of another.
    for (const name of [
      'apply-tier',
      'precondition-tier',
      'revert-tier',
      'daemon-tier',
      'retry-tier',
      'window-tier',
    ]) {
      const res = await s.call('POST', '/v1/tiers', { token: s.admin, json: { name } });
      expect(res.status, JSON.stringify(res.body)).toBe(201);
    }
  });

  afterAll(async () => {
    await proxy?.close();
    await s?.close();
    await removeAll(work, ...dirs);
  });

  /** A fresh machine root enrolled through URL (the proxy by default), with fast retries. */
  async function machine(options: { tags?: string[]; tier?: string; url?: string } = {}): Promise<string> {
    const root = await newRoot({ pubFile: key.pubFile });
    dirs.push(root);
    await enrollMachine({
      root,
      url: options.url ?? proxy.url,
      token: await enrollmentToken(s, options.tier ?? 'stable', 1),
      tags: options.tags ?? [],
    });
    const config = await loadConfig(root);
    await saveConfig(root, { ...config, http: FAST_HTTP });
    return root;
  }

  async function reportsOf(
    machineId: string,
  ): Promise<Array<{ id: string; status: string; errorCode: string | null; log: string | null }>> {
    const res = await s.call('GET', `/v1/reports?machine=${machineId}&limit=1000`, { token: s.admin });
    expect(res.status).toBe(200);
    return res.body.reports;
  }

  async function update(
    root: string,
    extra: Partial<Parameters<typeof runUpdate>[0]> = {},
  ): Promise<UpdateResult> {
    return runUpdate({ root, engine: localEngine, ...extra });
  }

  it('enroll sends the machine facts and writes the credential to agent.json with mode 0600', async () => {
    const root = await newRoot({ hostname: 'db-7', machineId: 'a1b2c3d4e5f60718293a4b5c6d7e8f90' });
    dirs.push(root);
    const result = await enrollMachine({
      root,
      url: `${s.url}/`,
      token: await enrollmentToken(s, 'beta', 1, ['site=lab']),
      tags: ['rack=4'],
    });
    expect(result.machineId).toBe('a1b2c3d4e5f60718293a4b5c6d7e8f90');
    expect(result.tier).toBe('beta');
    expect(result.tags).toEqual(['rack=4', 'site=lab']);
    expect((await stat(configFile(root))).mode & 0o777).toBe(0o600);
    const config = await loadConfig(root);
    expect(config.servers).toEqual([s.url]);
    expect(config.credential).toMatch(/^clp_mch_/);
    const shown = await s.call('GET', `/v1/machines/${result.machineId}`, { token: s.admin });
    expect(shown.status).toBe(200);
    expect(JSON.stringify(shown.body)).toContain('db-7');
    expect(JSON.stringify(shown.body)).toContain('vincent');
    // Enrolling again needs --force; a spent token is the server's refusal, with its message.
    await expect(enrollMachine({ root, url: s.url, token: 'x' })).rejects.toMatchObject({
      code: 'CLP_E_ALREADY_ENROLLED',
    });
    const spent = await enrollMachine({ root, url: s.url, token: 'clp_enr_unknown', force: true }).catch(
      (e: unknown) => e,
    );
    expect(spent).toMatchObject({ code: 'CLP_E_SERVER_REJECTED' });
    expect((spent as Error).message).toContain('enrollment token');
    // --force with a new token keeps the machine's id: its current credential proves it is this machine.
    const before = (await loadConfig(root)).credential;
    const again = await enrollMachine({
      root,
      url: s.url,
      token: await enrollmentToken(s, 'stable', 1),
      force: true,
    });
    expect(again).toMatchObject({ machineId: 'a1b2c3d4e5f60718293a4b5c6d7e8f90', tier: 'stable' });
    expect((await loadConfig(root)).credential).not.toBe(before);
  });

  it('update without enrollment says so with CLP_E_NOT_ENROLLED', async () => {
    const root = await newRoot();
    dirs.push(root);
    await expect(update(root)).rejects.toMatchObject({ code: 'CLP_E_NOT_ENROLLED' });
  });

  it('spooled reports survive the server being down and arrive exactly once afterwards', async () => {
    const root = await machine();
    const config = await loadConfig(root);
    const spool = new ReportSpool(root, join(root, config.spoolDir));
    const sent = await Promise.all(
      ['applied', 'failed', 'reverted'].map((status) =>
        spool.add({
          name: 'CLP1260301',
          status: status as 'applied',
          errorCode: status === 'failed' ? 'CLP_E_PRECONDITION' : undefined,
        }),
      ),
    );
    const client = (servers: string[]) =>
      new AgentHttpClient({ servers, credential: config.credential, http: { ...config.http, retries: 1 } });

    // Server down: nothing is lost.
    const down = await spool.flush(client([await deadUrl()]));
    expect(down.left).toBe(3);
    expect(down.error?.code).toBe('CLP_E_SERVER_UNREACHABLE');
    expect(await spool.count()).toBe(3);

    // The server stores them but its answer is lost: the files stay, and the resend is a duplicate.
    proxy.fault = (req) => (req.url === '/v1/agent/reports' ? 'lose-answer' : 'pass');
    const lost = await spool.flush(client([proxy.url]));
    expect(lost.left).toBe(3);
    proxy.fault = () => 'pass';
    expect(await reportsOf(config.machineId!)).toHaveLength(3);

    const back = await spool.flush(client([proxy.url]));
    expect(back).toMatchObject({ accepted: 0, duplicates: 3, left: 0 });
    expect(await spool.count()).toBe(0);
    const stored = await reportsOf(config.machineId!);
    expect(stored.map((r) => r.id).sort()).toEqual(sent.map((r) => r.id).sort());
    expect(await spool.flush(client([proxy.url]))).toMatchObject({ accepted: 0, duplicates: 0, left: 0 });
  });

  it('a spool larger than one batch is sent in several requests, and a damaged file is set aside', async () => {
    const root = await machine();
    const config = await loadConfig(root);
    const spool = new ReportSpool(root, join(root, config.spoolDir));
    for (let i = 0; i < 520; i++) await spool.add({ name: 'CLP1260301', status: 'skipped' });
    await writeFile(join(spool.dir, '000000000000000-damaged.json'), '{"id": "not a report"');
    proxy.seen.length = 0;
    const lines: string[] = [];
    const client = new AgentHttpClient({
      servers: [proxy.url],
      credential: config.credential,
      http: config.http,
      log: (l) => lines.push(l),
    });
    const result = await spool.flush(client);
    expect(result).toMatchObject({ accepted: 520, duplicates: 0, left: 0 });
    expect(proxy.seen.filter((r) => r.url === '/v1/agent/reports')).toHaveLength(2);
    expect(await readdir(join(spool.dir, 'rejected'))).toEqual(['000000000000000-damaged.json']);
    expect(lines.some((l) => l.includes('not a valid report'))).toBe(true);
    expect(await reportsOf(config.machineId!)).toHaveLength(520);
  });

  let patch: SignedPatch;
  let rolloutId: string;

  it('update downloads, verifies and applies an offered release, and reports it', async () => {
    patch = await signedPatch(work, key.keyFile, 'CLP1260305', { padding: 50_000 });
    const releaseId = await upload(s, patch.file);
    const root = await machine({ tier: 'apply-tier' });
    rolloutId = await rollout(s, releaseId, 'apply-tier');
    // The first download is cut halfway: the same update resumes it.
    proxy.seen.length = 0;
    let cut = false;
    proxy.fault = (req) => {
      if (!cut && req.url?.startsWith('/v1/blobs/')) {
        cut = true;
        return { cutAfter: 20_000 };
      }
      return 'pass';
    };
    const result = await update(root);
    proxy.fault = () => 'pass';
    expect(result.exitCode).toBe(0);
    expect(result.actions).toEqual([
      expect.objectContaining({ name: 'CLP1260305', outcome: 'applied', resumedFrom: expect.any(Number) }),
    ]);
    expect(proxy.seen.filter((r) => r.range !== undefined)).toHaveLength(1);
    expect(await readFile(join(root, patch.adds), 'utf8')).toBe(patch.content);
    expect(result.reports.left).toBe(0);
    const { machineId } = await loadConfig(root);
    const reports = await reportsOf(machineId!);
    expect(reports.map((r) => r.status).sort()).toEqual(['applied', 'downloading']);
    expect(reports.find((r) => r.status === 'applied')?.log).toContain('installed CLP1260305');
    // The machine's log tells the same story: the fleet's lines beside the engine's, once each.
    const machineLog = await readFile(join(root, 'var/log/CLP.log'), 'utf8');
    expect(machineLog).toMatch(/fleet: poll .*: 1 to apply, 0 to revert/);
    expect(machineLog).toMatch(/fleet: downloaded CLP1260305 .*resumed at byte/);
    expect(machineLog.match(/installed CLP1260305/g)).toHaveLength(1);
    // The download is not kept once applied; a second check has nothing to do.
    expect(await readdir(join(root, 'var/lib/clp/spool/downloads'))).toEqual([]);
    const again = await update(root);
    expect(again.actions).toEqual([]);
    expect(again.exitCode).toBe(0);
  });

  it('a corrupted download is never applied, and the next update applies the intact file', async () => {
    const root = await machine({ tier: 'apply-tier' });
    proxy.fault = (req) => (req.url?.startsWith('/v1/blobs/') ? 'corrupt' : 'pass');
    const bad = await update(root);
    proxy.fault = () => 'pass';
    expect(bad.exitCode).toBe(8);
    expect(bad.actions).toEqual([
      expect.objectContaining({ outcome: 'download-failed', code: 'CLP_E_DOWNLOAD_CORRUPT' }),
    ]);
    await expect(stat(join(root, patch.adds))).rejects.toMatchObject({ code: 'ENOENT' });
    const { machineId } = await loadConfig(root);
    expect((await reportsOf(machineId!)).filter((r) => r.status === 'failed')).toEqual([]);
    // A partial download of a release the server no longer offers is cleaned away.
    const stale = join(root, 'var/lib/clp/spool/downloads', `${'0'.repeat(64)}.clp.part`);
    await writeFile(stale, 'partial');
    const good = await update(root);
    expect(good.actions).toEqual([expect.objectContaining({ outcome: 'applied' })]);
    await expect(stat(stale)).rejects.toMatchObject({ code: 'ENOENT' });
    expect(await readFile(join(root, patch.adds), 'utf8')).toBe(patch.content);
  });

  it('a busy system (CLP_E_BUSY) is not a failure: nothing is reported as failed, exit 11, and the next check applies it', async () => {
    const root = await machine({ tier: 'apply-tier' });
    // The engine as it answers while another clpctl or the package manager holds its lock.
    const busyEngine = {
      ...localEngine,
      install: async () => {
        throw new EngineError('CLP_E_BUSY', 'pacman holds /var/lib/pacman/db.lck; try again later');
      },
    };
    const busy = await update(root, { engine: busyEngine });
    expect(busy.exitCode).toBe(11);
    expect(busy.actions).toEqual([expect.objectContaining({ outcome: 'busy', code: 'CLP_E_BUSY' })]);
    await expect(stat(join(root, patch.adds))).rejects.toMatchObject({ code: 'ENOENT' });
    const { machineId } = await loadConfig(root);
    expect((await reportsOf(machineId!)).filter((r) => r.status === 'failed')).toEqual([]);
    const later = await update(root);
    expect(later.exitCode).toBe(0);
    expect(later.actions).toEqual([expect.objectContaining({ outcome: 'applied' })]);
    expect(await readFile(join(root, patch.adds), 'utf8')).toBe(patch.content);
  });

  it('minAgeDays holds a new release back; check-only verifies without applying', async () => {
    const root = await machine({ tier: 'apply-tier' });
    await saveConfig(root, { ...(await loadConfig(root)), minAgeDays: 3 });
    const held = await update(root);
    expect(held.actions).toEqual([expect.objectContaining({ outcome: 'held-back' })]);
    expect(held.actions[0]?.message).toContain('minAgeDays=3');
    const later = await update(root, { now: () => new Date(Date.now() + 4 * 86_400_000) });
    expect(later.actions).toEqual([expect.objectContaining({ outcome: 'applied' })]);

    const checker = await machine({ tier: 'apply-tier' });
    await saveConfig(checker, { ...(await loadConfig(checker)), mode: 'check-only' });
    const checked = await update(checker);
    expect(checked.actions).toEqual([
      expect.objectContaining({ outcome: 'verified', message: 'verified; would apply' }),
    ]);
    await expect(stat(join(checker, patch.adds))).rejects.toMatchObject({ code: 'ENOENT' });
  });

  it('a failed precondition is rolled back, reported with its code and log, exits 6, and is not retried', async () => {
    const needy = await signedPatch(work, key.keyFile, 'CLP1260306', {
      requires: 'the motd some machines have\n',
    });
    const releaseId = await upload(s, needy.file);
    const lucky = await machine({ tier: 'precondition-tier' });
    await writeFile(join(lucky, 'etc/motd'), 'the motd some machines have\n');
    const unlucky = await machine({ tier: 'precondition-tier' });
    await writeFile(join(unlucky, 'etc/motd'), 'something else\n');
    await rollout(s, releaseId, 'precondition-tier');

    const ok = await update(lucky);
    expect(ok.exitCode).toBe(0);
    expect(await readFile(join(lucky, 'etc/motd'), 'utf8')).toBe('motd from CLP1260306\n');

    const failed = await update(unlucky);
    expect(failed.exitCode).toBe(6);
    expect(failed.actions).toEqual([
      expect.objectContaining({ outcome: 'failed', code: 'CLP_E_PRECONDITION' }),
    ]);
    expect(await readFile(join(unlucky, 'etc/motd'), 'utf8')).toBe('something else\n');
    await expect(stat(join(unlucky, needy.adds))).rejects.toMatchObject({ code: 'ENOENT' });
    const { machineId } = await loadConfig(unlucky);
    const report = (await reportsOf(machineId!)).find((r) => r.status === 'failed');
    expect(report?.errorCode).toBe('CLP_E_PRECONDITION');
    expect(report?.log).toContain('/etc/motd');
    // The server no longer offers it to this machine; --retry-failed asks again.
    expect((await update(unlucky)).actions).toEqual([]);
    await writeFile(join(unlucky, 'etc/motd'), 'the motd some machines have\n');
    expect((await update(unlucky, { retryFailed: true })).actions).toEqual([
      expect.objectContaining({ outcome: 'applied' }),
    ]);
  });

  it('a release that failed here is tried again only when the server offers it as a retry (rollout retry-failed)', async () => {
    const needy = await signedPatch(work, key.keyFile, 'CLP1260311', {
      requires: 'the motd some machines have\n',
    });
    const releaseId = await upload(s, needy.file);
    const root = await machine({ tier: 'retry-tier' });
    await writeFile(join(root, 'etc/motd'), 'something else\n');
    const id = await rollout(s, releaseId, 'retry-tier');
    expect((await update(root)).actions).toEqual([expect.objectContaining({ outcome: 'failed' })]);
    await writeFile(join(root, 'etc/motd'), 'the motd some machines have\n');
    // Fixed by hand, but the machine does not retry by itself: the server does not offer it again.
    expect((await update(root)).actions).toEqual([]);
    const retried = await s.call('POST', `/v1/rollouts/${id}/retry-failed`, {
      token: s.admin,
      json: { reason: 'motd fixed' },
    });
    expect(retried.body.retried).toBe(1);
    const again = await update(root);
    expect(again.actions).toEqual([expect.objectContaining({ name: 'CLP1260311', outcome: 'applied' })]);
    expect(await readFile(join(root, 'var/log/CLP.log'), 'utf8')).toMatch(
      /CLP1260311 failed here before; the server offers it again as a retry/,
    );
    const shown = await s.call('GET', `/v1/rollouts/${id}`, { token: s.admin });
    expect(shown.body.counters).toMatchObject({ applied: 1, failed: 0 });
  });

  it('outside its maintenance window a machine downloads and verifies, says it waits, and applies only inside the window', async () => {
    const p = await signedPatch(work, key.keyFile, 'CLP1260312');
    const releaseId = await upload(s, p.file);
    const root = await machine({ tier: 'window-tier' });
    // A daily window that opens three hours from now (UTC) and lasts an hour.
    const opens = new Date(Math.ceil((Date.now() + 3 * 3_600_000) / 60_000) * 60_000);
    const hhmm = (d: Date) => d.toISOString().slice(11, 16);
    const window = `daily ${hhmm(opens)}-${hhmm(new Date(opens.getTime() + 3_600_000))} UTC`;
    const set = await s.call('PUT', '/v1/maintenance-windows', {
      token: s.admin,
      json: { kind: 'tier', name: 'window-tier', window },
    });
    expect(set.status, JSON.stringify(set.body)).toBe(200);
    const id = await rollout(s, releaseId, 'window-tier');
    const early = await update(root);
    expect(early.exitCode).toBe(0);
    expect(early.actions).toEqual([
      expect.objectContaining({ outcome: 'scheduled', opensAt: opens.toISOString() }),
    ]);
    await expect(stat(join(root, p.adds))).rejects.toMatchObject({ code: 'ENOENT' });
    expect((await readdir(join(root, 'var/lib/clp/spool/downloads'))).length).toBe(1);
    const { machineId } = await loadConfig(root);
    expect((await reportsOf(machineId!)).map((r) => r.status)).toContain('scheduled');
    const why = await s.call('GET', `/v1/machines/${machineId}/explain?release=${releaseId}`, {
      token: s.admin,
    });
    expect(why.body.offers).toEqual([
      expect.objectContaining({ rolloutId: id, outcome: 'waiting-for-window' }),
    ]);
    // Inside the window (the daemon wakes at its opening) the same release applies.
    const inside = await update(root, { now: () => new Date(opens.getTime() + 60_000) });
    expect(inside.actions).toEqual([expect.objectContaining({ outcome: 'applied' })]);
    expect(await readFile(join(root, p.adds), 'utf8')).toBe(p.content);
  });

  it('a reverted rollout makes the machine take the patch back and report it', async () => {
    const root = await machine({ tier: 'revert-tier' });
    const releaseId = (await s.call('GET', `/v1/rollouts/${rolloutId}`, { token: s.admin })).body
      .releaseId as string;
    const id = await rollout(s, releaseId, 'revert-tier');
    expect((await update(root)).actions).toEqual([expect.objectContaining({ outcome: 'applied' })]);
    const res = await s.call('POST', `/v1/rollouts/${id}/revert`, {
      token: s.admin,
      json: { reason: 'test' },
    });
    expect(res.status).toBe(200);
    const result = await update(root);
    expect(result.exitCode).toBe(0);
    expect(result.actions).toEqual([expect.objectContaining({ name: 'CLP1260305', outcome: 'reverted' })]);
    await expect(stat(join(root, patch.adds))).rejects.toMatchObject({ code: 'ENOENT' });
    const { machineId } = await loadConfig(root);
    expect((await reportsOf(machineId!)).filter((r) => r.status === 'reverted')).toHaveLength(1);
    expect((await update(root)).actions).toEqual([]);
  });

  it('with every server down, update exits 8 and keeps its reports for the next run', async () => {
    const root = await machine({ tier: 'apply-tier' });
    const config = await loadConfig(root);
    await new ReportSpool(root, join(root, config.spoolDir)).add({ name: 'CLP1260305', status: 'skipped' });
    await saveConfig(root, { ...config, servers: [await deadUrl(), await deadUrl()] });
    const result = await update(root);
    expect(result.exitCode).toBe(8);
    expect(result.error?.code).toBe('CLP_E_SERVER_UNREACHABLE');
    expect(result.reports.left).toBe(1);
    await saveConfig(root, { ...config, servers: [await deadUrl(), proxy.url] });
    const back = await update(root);
    expect(back.exitCode).toBe(0);
    expect(back.server).toBe(proxy.url);
    expect(back.reports).toMatchObject({ left: 0 });
    expect((await reportsOf(config.machineId!)).filter((r) => r.status === 'skipped')).toHaveLength(1);
  });

  it('the daemon flushes the spool on start, runs updates on its schedule, and stops cleanly', async () => {
    const root = await machine({ tier: 'daemon-tier' });
    const config = await loadConfig(root);
    const early = await new ReportSpool(root, join(root, config.spoolDir)).add({
      name: 'CLP1260305',
      status: 'skipped',
    });
    // Every second, no random delay: the test does not wait for noon.
    await saveConfig(root, { ...config, schedule: { cron: '* * * * * *', randomDelayMinutes: 0 } });
    const results: Array<UpdateResult | Error> = [];
    const lines: string[] = [];
    const daemon = new UpdateDaemon({
      root,
      engine: localEngine,
      log: (l) => lines.push(l),
      onUpdate: (r) => results.push(r),
    });
    const next = await daemon.start();
    expect(next).toBeInstanceOf(Date);
    expect((await reportsOf(config.machineId!)).map((r) => r.id)).toContain(early.id);
    const deadline = Date.now() + 10_000;
    while (results.length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    await daemon.stop();
    const count = results.length;
    expect(count).toBeGreaterThanOrEqual(1);
    expect(results[0]).toMatchObject({ exitCode: 0 });
    await new Promise((r) => setTimeout(r, 1_500));
    expect(results.length).toBe(count);
    expect(lines.some((l) => l.includes('daemon started'))).toBe(true);
  });

  it('the daemon waits a random delay within the window before updating', async () => {
    const root = await machine({ tier: 'daemon-tier' });
    const config = await loadConfig(root);
    await saveConfig(root, { ...config, schedule: { cron: '* * * * * *', randomDelayMinutes: 1 } });
    const lines: string[] = [];
    const results: unknown[] = [];
    // random() = 0.5 → 30 s into a 1-minute window; stop() cancels the wait without updating.
    const daemon = new UpdateDaemon({
      root,
      engine: localEngine,
      log: (l) => lines.push(l),
      random: () => 0.5,
      onUpdate: (r) => results.push(r),
    });
    await daemon.start();
    const deadline = Date.now() + 5_000;
    while (!lines.some((l) => l.includes('random delay')) && Date.now() < deadline)
      await new Promise((r) => setTimeout(r, 50));
    await daemon.stop();
    expect(lines.find((l) => l.includes('random delay'))).toContain('update in 30 s');
    expect(results).toEqual([]);
  });
});
