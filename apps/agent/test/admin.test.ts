import { execFile, spawnSync } from 'node:child_process';
import { createHash, randomUUID } from 'node:crypto';
import { copyFile, mkdir, mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FACTS, type Running, start } from '../../server/test/harness.ts';

const REPO = resolve(import.meta.dirname, '../../..');
const BIN = join(REPO, 'apps/agent/bin/clpctl.mjs');
const EXAMPLE = join(REPO, 'examples/CLP1251123');

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/**
 * Runs the built clpctl as its own process. Asynchronous on purpose: the server answers from
 * this same process, so a synchronous spawn would wait for itself.
 */
function clpctl(args: string[], env: Record<string, string> = {}): Promise<Run> {
  return new Promise((done) => {
    execFile(
      process.execPath,
      [BIN, ...args],
      { cwd: work, timeout: 30_000, env: { PATH: process.env.PATH ?? '', HOME: work, ...env } },
      (error, stdout, stderr) => {
        const code = error ? (typeof error.code === 'number' ? error.code : null) : 0;
        done({ code, stdout, stderr });
      },
    );
  });
}

/** clpctl admin against the test server with the bootstrap admin token. */
function admin(args: string[], token = server.admin): Promise<Run> {
  return clpctl(['admin', '--server', server.url, '--token', token, ...args]);
}

async function adminJson<T = any>(args: string[], token?: string): Promise<T> {
  const r = await admin(['--json', ...args], token);
  expect(r.code, r.stderr).toBe(0);
  return JSON.parse(r.stdout) as T;
}

/** The `CODE` of an `error CODE: message` line. */
function errorCode(r: Run): string | undefined {
  return /^error (CLP_E_[A-Z_]+):/m.exec(r.stderr)?.[1];
}

let work: string;
let server: Running;
let signed: string;
let unsigned: string;

beforeAll(async () => {
  const build = spawnSync(process.execPath, [join(REPO, 'scripts/build.mjs')], {
    cwd: REPO,
    encoding: 'utf8',
  });
  if (build.status !== 0) throw new Error(`build failed: ${build.stderr}`);
  work = await mkdtemp(join(tmpdir(), 'clp-admin-'));
  server = await start();
  const key = await clpctl(['--json', 'keygen', '--name', 'release', '--out', join(work, 'keys')]);
  expect(key.code, key.stderr).toBe(0);
  const { keyFile, pubFile } = JSON.parse(key.stdout) as { keyFile: string; pubFile: string };
  await mkdir(join(server.dataDir, 'keys'), { recursive: true });
  await copyFile(pubFile, join(server.dataDir, 'keys', 'release.pub'));
  signed = join(work, 'CLP1251123.clp');
  const made = await clpctl(['create', EXAMPLE, '-o', signed, '--sign', keyFile]);
  expect(made.code, made.stderr).toBe(0);
  unsigned = join(work, 'unsigned.clp');
  const plain = await clpctl(['create', EXAMPLE, '-o', unsigned]);
  expect(plain.code, plain.stderr).toBe(0);
});

afterAll(async () => {
  await server?.close();
  if (work) await rm(work, { recursive: true, force: true });
});

describe('clpctl admin against a running server', () => {
  it('walks a release from upload through a paused and resumed rollout to an enrolled machine', async () => {
    const sha256 = createHash('sha256')
      .update(await readFile(signed))
      .digest('hex');

    const uploaded = await adminJson(['upload', signed]);
    expect(uploaded).toMatchObject({ id: sha256, name: 'CLP1251123', yanked: false });

    const listed = await admin(['releases']);
    expect(listed.code, listed.stderr).toBe(0);
    expect(listed.stdout).toMatch(/^ID\s+NAME\s+ARCH/m);
    expect(listed.stdout).toContain(`${sha256}  CLP1251123`);

    // A release is named by its patch name or a prefix of its id, not only the full sha256.
    const promoted = await adminJson(['promote', 'CLP1251123', '--to', 'edge']);
    expect(promoted.tiers).toEqual(['edge']);
    const refused = await admin(['promote', sha256.slice(0, 10), '--from', 'beta', '--to', 'stable']);
    expect(refused.code).toBe(2);
    expect(errorCode(refused)).toBe('CLP_E_ADMIN_BAD_OPTION');

    const rollout = await adminJson([
      'rollout',
      'create',
      'CLP1251123',
      '--tier',
      'edge',
      '--stages',
      '100',
      '--stage-min-minutes',
      '30',
      '--failure-threshold',
      '0.2',
      '--min-reports',
      '5',
      '--tag',
      'site=paris',
    ]);
    expect(rollout).toMatchObject({
      releaseId: sha256,
      tier: 'edge',
      state: 'active',
      stages: [{ percent: 100, minDurationSeconds: 1800 }],
      selector: { tags: ['site=paris'] },
      failureThreshold: { maxFailureRate: 0.2, minReports: 5 },
    });

    const paused = await admin(['rollout', 'pause', rollout.id, '--reason', 'checking the first machines']);
    expect(paused.code, paused.stderr).toBe(0);
    expect(paused.stdout).toContain('is now paused');
    const again = await admin(['rollout', 'pause', rollout.id]);
    expect(again.code).toBe(8);
    expect(errorCode(again)).toBe('CLP_E_ROLLOUT_STATE');
    const resumed = await adminJson(['rollout', 'resume', rollout.id]);
    expect(resumed.state).toBe('active');
    const audit = await adminJson(['rollout', 'audit', rollout.id]);
    expect(audit.entries.map((e: { action: string }) => e.action)).toEqual(['create', 'pause', 'resume']);

    const shown = await admin(['rollout', 'list']);
    expect(shown.stdout).toMatch(new RegExp(`^${rollout.id}\\s+CLP1251123\\s+edge\\s+active`, 'm'));

    const token = await adminJson([
      'tokens',
      'create',
      '--tier',
      'edge',
      '--tags',
      'site=paris',
      '--expires',
      '2h',
      '--uses',
      '2',
    ]);
    expect(token).toMatchObject({ tier: 'edge', tags: ['site=paris'], usesLeft: 2 });
    expect(typeof token.token).toBe('string');
    const expiresIn = Date.parse(token.expiresAt) - Date.now();
    expect(expiresIn).toBeGreaterThan(7100_000);
    expect(expiresIn).toBeLessThanOrEqual(7200_000);

    // A machine enrolls with that token and polls: the rollout offers it the release.
    const enrolled = await server.call('POST', '/v1/agent/enroll', {
      json: { token: token.token, facts: FACTS },
    });
    expect(enrolled.status).toBe(201);
    const polled = await server.call('POST', '/v1/agent/poll', {
      token: enrolled.body.credential,
      json: { facts: FACTS, installed: [] },
    });
    expect(polled.body.apply.map((a: { sha256: string }) => a.sha256)).toEqual([sha256]);
    const report = await server.call('POST', '/v1/agent/reports', {
      token: enrolled.body.credential,
      json: {
        reports: [
          {
            id: randomUUID(),
            releaseId: sha256,
            rolloutId: rollout.id,
            name: 'CLP1251123',
            sha256,
            status: 'applied',
            at: new Date().toISOString(),
          },
        ],
      },
    });
    expect(report.status).toBe(200);

    const machines = await adminJson(['machines', '--tier', 'edge']);
    expect(machines.total).toBe(1);
    expect(machines.machines[0]).toMatchObject({
      id: enrolled.body.machineId,
      hostname: 'web-1',
      tags: ['site=paris'],
    });
    const table = await admin(['machines', 'list']);
    expect(table.stdout).toMatch(new RegExp(`^${enrolled.body.machineId}\\s+web-1\\s+edge\\s+x86_64`, 'm'));
    expect(table.stdout).toContain('1 of 1 machines');

    const why = await adminJson(['rollout', 'why', enrolled.body.machineId, 'CLP1251123']);
    expect(why).toMatchObject({ machineId: enrolled.body.machineId, releaseId: sha256 });
    expect(why.rollouts[0].rolloutId).toBe(rollout.id);

    const reports = await adminJson(['reports', '--release', 'CLP1251123']);
    expect(reports.reports).toHaveLength(1);
    expect(reports.reports[0]).toMatchObject({ status: 'applied', rolloutId: rollout.id });
    const counted = await adminJson(['rollout', 'show', rollout.id]);
    expect(counted.counters.applied).toBe(1);

    const tokens = await admin(['tokens']);
    expect(tokens.stdout).toMatch(new RegExp(`^${token.id}\\s+edge\\s+site=paris\\s+1\\s`, 'm'));
    expect(tokens.stdout).not.toContain(token.token);
  });

  it('revokes and re-keys a machine, so that it enrolls again under its id only after the re-key', async () => {
    const token = await adminJson(['tokens', 'create', '--tier', 'edge', '--uses', '3']);
    const enroll = (machineId: string) =>
      server.call('POST', '/v1/agent/enroll', { json: { token: token.token, facts: FACTS, machineId } });
    expect((await enroll('cli-rekey-machine')).status).toBe(201);
    const revoked = await admin(['machines', 'revoke', 'cli-rekey-machine']);
    expect(revoked.code, revoked.stderr).toBe(0);
    expect(revoked.stdout).toMatch(/^revoked the credential of cli-rekey-machine \(web-1\)$/m);
    expect((await enroll('cli-rekey-machine')).status).toBe(409);
    const rekeyed = await adminJson(['machines', 'rekey', 'cli-rekey-machine', '--expires', '2h']);
    expect(rekeyed).toMatchObject({ id: 'cli-rekey-machine', revoked: true });
    expect(Date.parse(rekeyed.rekeyUntil) - Date.now()).toBeGreaterThan(7000_000);
    expect((await enroll('cli-rekey-machine')).status).toBe(201);
    const bad = await admin(['machines', 'rekey', 'cli-rekey-machine', '--expires', '90d']);
    expect(bad.code).toBe(2);
    expect(errorCode(bad)).toBe('CLP_E_ADMIN_BAD_OPTION');
    const missing = await admin(['machines', 'rekey', 'no-such-machine']);
    expect(missing.code).toBe(10);
    expect(errorCode(missing)).toBe('CLP_E_NOT_FOUND');
  });

  it('prints the server code and message of a 4xx and exits with its code', async () => {
    const wrong = await admin(['releases'], 'clp_adm_not-a-real-token');
    expect(wrong.code).toBe(8);
    expect(wrong.stderr).toMatch(/^error CLP_E_UNAUTHORIZED: the API token is unknown, expired or revoked/m);

    const viewer = await adminJson(['api-tokens', 'create', '--role', 'viewer', '--name', 'dashboard']);
    expect(viewer.role).toBe('viewer');
    const seen = await admin(['tiers'], viewer.token);
    expect(seen.code, seen.stderr).toBe(0);
    expect(seen.stdout).toMatch(/^0\s+edge/m);
    const forbidden = await admin(['tokens', 'create', '--tier', 'edge'], viewer.token);
    expect(forbidden.code).toBe(8);
    expect(errorCode(forbidden)).toBe('CLP_E_FORBIDDEN');

    const invalid = await admin(['tokens', 'create', '--tier', 'Not A Tier']);
    expect(invalid.code).toBe(2);
    expect(invalid.stderr).toMatch(/^error CLP_E_VALIDATION: body\.tier: /m);

    const json = await admin(['--json', 'rollout', 'show', 'no-such-rollout']);
    expect(json.code).toBe(10);
    expect(JSON.parse(json.stderr).error.code).toBe('CLP_E_NOT_FOUND');
  });

  it('refuses an unsigned release with the trust error, exit 4', async () => {
    const r = await admin(['upload', unsigned]);
    expect(r.code).toBe(4);
    expect(errorCode(r)).toBe('CLP_E_UNSIGNED');
  });

  it('exits 8 when the server cannot be reached, and 2 without a server or token', async () => {
    const down = await clpctl(['admin', '--server', 'http://127.0.0.1:9', '--token', 't', 'releases']);
    expect(down.code).toBe(8);
    expect(errorCode(down)).toBe('CLP_E_ADMIN_UNREACHABLE');

    const none = await clpctl(['admin', 'releases']);
    expect(none.code).toBe(2);
    expect(errorCode(none)).toBe('CLP_E_ADMIN_NO_SERVER');
    const noToken = await clpctl(['admin', 'releases'], { CLP_SERVER: server.url });
    expect(noToken.code).toBe(2);
    expect(errorCode(noToken)).toBe('CLP_E_ADMIN_NO_TOKEN');

    const fromEnv = await clpctl(['admin', '--json', 'tiers'], {
      CLP_SERVER: server.url,
      CLP_TOKEN: server.admin,
    });
    expect(fromEnv.code, fromEnv.stderr).toBe(0);
    expect(JSON.parse(fromEnv.stdout).tiers.map((t: { name: string }) => t.name)).toEqual([
      'edge',
      'beta',
      'stable',
    ]);
  });

  it('edits tiers, and a yanked release can no longer be rolled out', async () => {
    const created = await adminJson([
      'tiers',
      'create',
      'canary',
      '--position',
      '0',
      '--description',
      'lab machines',
    ]);
    expect(created).toMatchObject({ name: 'canary', description: 'lab machines' });
    const edited = await adminJson(['tiers', 'set', 'canary', '--description', 'lab machines first']);
    expect(edited.description).toBe('lab machines first');
    const ordered = await adminJson(['tiers', 'order', 'canary,edge,beta,stable']);
    expect(ordered.tiers.map((t: { name: string }) => t.name)).toEqual(['canary', 'edge', 'beta', 'stable']);
    const listed = await admin(['tiers']);
    expect(listed.stdout.split('\n')[1]).toMatch(/^\d+\s+canary\s+lab machines first$/);

    const yanked = await adminJson(['releases', 'yank', 'CLP1251123', '--reason', 'bad motd']);
    expect(yanked.yanked).toBe(true);
    const refused = await admin(['rollout', 'create', 'CLP1251123', '--tier', 'canary']);
    expect(refused.code).toBe(8);
    expect(errorCode(refused)).toBe('CLP_E_RELEASE_YANKED');
    const onlyYanked = await adminJson(['releases', '--yanked', 'yes']);
    expect(onlyYanked.releases.map((r: { name: string }) => r.name)).toEqual(['CLP1251123']);
  });

  it('checks options before calling the server', async () => {
    const r = await admin(['tokens', 'create', '--tier', 'edge', '--expires', 'soon']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/^error CLP_E_ADMIN_BAD_OPTION: --expires soon: not a duration/m);
    const stages = await admin(['rollout', 'create', 'CLP1251123', '--tier', 'edge', '--stages', '50,10']);
    expect(stages.code).toBe(2);
    expect(stages.stderr).toContain('percentages must not decrease');
  });
});
