import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig, saveConfig } from '../src/fleet/config.ts';
import {
  deadUrl,
  enrollmentToken,
  FAST_HTTP,
  newRoot,
  type Running,
  removeAll,
  start,
} from './fleet-harness.ts';

const REPO = resolve(import.meta.dirname, '../../..');
const BUNDLE = join(REPO, 'apps/agent/dist/clpctl.mjs');
const NODE = join(REPO, 'node_modules/.bin/node');
const missing = !existsSync(BUNDLE);
if (missing) console.warn('skipped: needs the built clpctl bundle (npm run build)');

interface Ran {
  code: number | null;
  stdout: string;
  stderr: string;
}

function clpctl(args: string[]): Promise<Ran> {
  return new Promise((done) => {
    const child = spawn(NODE, [BUNDLE, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => {
      stdout += d;
    });
    child.stderr.on('data', (d: Buffer) => {
      stderr += d;
    });
    child.on('close', (code) => done({ code, stdout, stderr }));
  });
}

describe.skipIf(missing)('clpctl enroll, config, update and daemon as processes', () => {
  let s: Running;
  let root: string;

  beforeAll(async () => {
    s = await start();
    root = await newRoot();
  });
  afterAll(async () => {
    await s?.close();
    await removeAll(root);
  });

  it('enroll, then config get / set, then update with exit codes', async () => {
    const token = await enrollmentToken(s, 'stable', 1);
    const enrolled = await clpctl(['enroll', s.url, token, '--tag', 'site=lab', '--root', root, '--json']);
    expect(enrolled.code, enrolled.stderr).toBe(0);
    expect(JSON.parse(enrolled.stdout)).toMatchObject({
      tier: 'stable',
      tags: ['site=lab'],
      servers: [s.url],
    });

    const set = await clpctl(['config', 'set', 'minAgeDays', '2', '--root', root]);
    expect(set.code, set.stderr).toBe(0);
    expect(set.stdout.trim()).toBe('minAgeDays = 2');
    const got = await clpctl(['config', 'get', 'minAgeDays', '--root', root, '--json']);
    expect(JSON.parse(got.stdout)).toEqual({ key: 'minAgeDays', value: 2 });
    const all = await clpctl(['config', 'get', '--root', root]);
    expect(all.stdout).toContain('"credential": "********"');
    const bad = await clpctl(['config', 'set', 'colour', 'blue', '--root', root]);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/^error CLP_E_CONFIG_KEY: unknown configuration key "colour"/);

    const updated = await clpctl(['update', '--root', root, '--json']);
    expect(updated.code, updated.stderr).toBe(0);
    expect(JSON.parse(updated.stdout)).toMatchObject({ server: s.url, actions: [], exitCode: 0 });

    const config = await loadConfig(root);
    await saveConfig(root, { ...config, servers: [await deadUrl()], http: FAST_HTTP });
    const down = await clpctl(['update', '--root', root]);
    expect(down.code).toBe(8);
    expect(down.stdout).toContain('no server answered');
    await saveConfig(root, { ...config, http: FAST_HTTP });
  });

  it('the daemon runs on its schedule and SIGTERM stops it with exit 0', async () => {
    const config = await loadConfig(root);
    await saveConfig(root, { ...config, schedule: { cron: '* * * * * *', randomDelayMinutes: 0 } });
    const child: ChildProcess = spawn(NODE, [BUNDLE, 'daemon', '--root', root], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stderr = '';
    child.stderr?.on('data', (d: Buffer) => {
      stderr += d;
    });
    const exited = new Promise<number | null>((done) => child.on('close', done));
    const deadline = Date.now() + 15_000;
    while (!stderr.includes('update done') && Date.now() < deadline)
      await new Promise((r) => setTimeout(r, 100));
    expect(stderr).toContain('daemon started: schedule "* * * * * *"');
    expect(stderr).toMatch(/update done \(exit 0\)/);
    child.kill('SIGTERM');
    expect(await exited).toBe(0);
    expect(stderr).toContain('SIGTERM: stopping');
    expect(stderr).toContain('daemon stopped');
  });
});
