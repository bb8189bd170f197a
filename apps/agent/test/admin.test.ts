import { execFile, spawnSync } from 'node:child_process';
import { createHash, randomUUID } from 'node:crypto';
import { copyFile, cp, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
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

describe('clpctl admin says what happened, and names what exists', () => {
  let second: string;
  let secondId: string;

  beforeAll(async () => {
    // A second release (revision 2 of the example), so that these tests do not lean on the walk above.
    const dir = join(work, 'CLP2251123');
    await cp(EXAMPLE, dir, { recursive: true });
    const meta = await readFile(join(dir, 'PKGINFO.meta'), 'utf8');
    await writeFile(
      join(dir, 'PKGINFO.meta'),
      meta.replace('<Name>CLP1251123</Name>', '<Name>CLP2251123</Name>'),
    );
    second = join(work, 'CLP2251123.clp');
    const made = await clpctl(['create', dir, '-o', second, '--sign', join(work, 'keys/release.key')]);
    expect(made.code, made.stderr).toBe(0);
    secondId = createHash('sha256')
      .update(await readFile(second))
      .digest('hex');
  });

  it('uploading the same file again says it was already uploaded, and exits 0', async () => {
    const first = await adminJson(['upload', second]);
    expect(first).toMatchObject({ id: secondId, alreadyUploaded: false });
    const again = await admin(['upload', second]);
    expect(again.code, again.stderr).toBe(0);
    expect(again.stdout).toMatch(
      /^CLP2251123 was already uploaded at \d{4}-\d\d-\d\d \d\d:\d\d by .*; nothing changed/,
    );
    expect(await adminJson(['upload', second])).toMatchObject({ id: secondId, alreadyUploaded: true });
  });

  it('a rollout to a tier the release was never promoted to promotes it and says so; an identical second one is refused naming the first', async () => {
    const created = await admin(['rollout', 'create', 'CLP2251123', '--tier', 'beta', '--stages', '100']);
    expect(created.code, created.stderr).toBe(0);
    expect(created.stdout).toContain('CLP2251123 was not in tier beta; this rollout promoted it there');
    const id = /^rollout (\S+) started/.exec(created.stdout)?.[1];
    expect((await adminJson(['releases', 'show', 'CLP2251123'])).tiers).toContain('beta');

    const twin = await admin([
      '--json',
      'rollout',
      'create',
      'CLP2251123',
      '--tier',
      'beta',
      '--stages',
      '10,100',
    ]);
    expect(twin.code).toBe(8);
    expect(JSON.parse(twin.stderr).error).toMatchObject({
      code: 'CLP_E_CONFLICT',
      message: expect.stringContaining(`rollout ${id} of CLP2251123 to beta`),
    });

    // Another selector is another rollout; the release is in the tier already, so nothing is promoted.
    const narrower = await adminJson([
      'rollout',
      'create',
      'CLP2251123',
      '--tier',
      'beta',
      '--tag',
      'site=lab',
    ]);
    expect(narrower).toMatchObject({ tier: 'beta', selector: { tags: ['site=lab'] }, promoted: false });
  });

  it('rollouts are named by a unique id prefix; a prefix shared by several says how many', async () => {
    const listed = await adminJson(['rollout', 'list', '--release', 'CLP2251123']);
    const id = listed.rollouts[0].id as string;
    const shown = await adminJson(['rollout', 'show', id.slice(0, 8)]);
    expect(shown.id).toBe(id);
    const paused = await admin(['rollout', 'pause', id.slice(0, 8)]);
    expect(paused.code, paused.stderr).toBe(0);
    expect(paused.stdout).toContain(`rollout ${id} (CLP2251123 to beta) is now paused`);

    // Seventeen rollouts: two of them must share their first hex digit.
    for (let i = 0; i < 15; i++) {
      const r = await server.call('POST', '/v1/rollouts', {
        token: server.admin,
        json: {
          releaseId: secondId,
          tier: 'edge',
          selector: { tags: [`n=${i}`] },
          stages: [{ percent: 100, minDurationSeconds: 0 }],
        },
      });
      expect(r.status, JSON.stringify(r.body)).toBe(201);
    }
    const ids = ((await adminJson(['rollout', 'list'])).rollouts as Array<{ id: string }>).map((r) => r.id);
    const shared = ids.map((x) => x[0]!).find((c, i, all) => all.indexOf(c) !== i)!;
    const count = ids.filter((x) => x.startsWith(shared)).length;
    const ambiguous = await admin(['--json', 'rollout', 'show', shared]);
    expect(ambiguous.code).toBe(2);
    expect(JSON.parse(ambiguous.stderr).error).toMatchObject({
      code: 'CLP_E_ADMIN_AMBIGUOUS',
      message: expect.stringContaining(`${shared} is the start of ${count} rollout ids`),
      matches: count,
    });
    const none = await admin(['--json', 'rollout', 'show', 'ffffffff-ffff']);
    expect(none.code).toBe(10);
    expect(JSON.parse(none.stderr).error.message).toContain("'clpctl admin rollout list'");
  });

  it("'rollout why' says its verdict once", async () => {
    const t = await adminJson(['tokens', 'create', '--tier', 'beta']);
    const m = await server.call('POST', '/v1/agent/enroll', { json: { token: t.token, facts: FACTS } });
    expect(m.status).toBe(201);
    const why = await admin(['rollout', 'why', m.body.machineId, 'CLP2251123']);
    expect(why.code, why.stderr).toBe(0);
    const first = why.stdout.split('\n')[0]!;
    expect(first).toMatch(/^(offered|not offered): /);
    expect(first).not.toMatch(/^(offered: offered|not-offered: not offered)/);
  });

  it('yanking a yanked release says nothing changed, and exits 0', async () => {
    expect(await adminJson(['releases', 'yank', 'CLP2251123'])).toMatchObject({
      yanked: true,
      alreadyYanked: false,
    });
    const again = await admin(['releases', 'yank', 'CLP2251123']);
    expect(again.code, again.stderr).toBe(0);
    expect(again.stdout).toMatch(/^CLP2251123 was already yanked at .*; nothing changed/);
    expect(await adminJson(['releases', 'yank', 'CLP2251123'])).toMatchObject({ alreadyYanked: true });
  });

  it('filters are checked: a word outside the list is a usage error, an unknown tier is not found', async () => {
    const cases: Array<[string[], string]> = [
      [['reports', '--status', 'bogus'], '--status bogus: expected one of downloading, applied, failed'],
      [['rollout', 'list', '--state', 'bogus'], '--state bogus: expected one of active, paused'],
      [['machines', '--arch', 'sparc'], '--arch sparc: expected one of x86_64, aarch64'],
    ];
    for (const [args, message] of cases) {
      const r = await admin(['--json', ...args]);
      expect(r.code, args.join(' ')).toBe(2);
      expect(JSON.parse(r.stderr).error).toMatchObject({
        code: 'CLP_E_ADMIN_BAD_OPTION',
        message: expect.stringContaining(message),
      });
    }
    for (const args of [
      ['machines', '--tier', 'stabel'],
      ['rollout', 'list', '--tier', 'stabel'],
    ]) {
      const r = await admin(args);
      expect(r.code, args.join(' ')).toBe(10);
      expect(r.stderr).toMatch(
        /^error CLP_E_NOT_FOUND: no tier named stabel; list them with 'clpctl admin tiers'/,
      );
    }
    // The server checks them as well, for every other caller of the API.
    const direct = await server.call('GET', '/v1/reports?status=bogus', { token: server.admin });
    expect(direct.status).toBe(400);
    expect(direct.body.error.field).toBe('query.status');
  });

  it('hints name the clpctl admin command that exists, not raw HTTP', async () => {
    const machine = await admin(['machines', 'show', 'no-such-machine']);
    expect(machine.code).toBe(10);
    expect(machine.stderr).toContain("list them with 'clpctl admin machines'");
    const tier = await admin(['tokens', 'create', '--tier', 'nowhere']);
    expect(tier.stderr).toContain("list them with 'clpctl admin tiers'");
    const token = await server.call('POST', '/v1/agent/enroll', {
      json: { token: 'clp_enr_unknown', facts: FACTS },
    });
    expect(token.body.error.message).toContain("'clpctl admin tokens create --tier TIER'");
    const rekey = await admin(['machines', 'rekey', 'no-such-machine']);
    expect(rekey.stderr).toContain("list them with 'clpctl admin machines'");
    const window = await admin(['windows', 'clear', '--tier', 'edge']);
    expect(window.code).toBe(10);
    expect(window.stderr).toContain("list them with 'clpctl admin windows'");
    for (const r of [machine, tier, rekey, window]) expect(r.stderr).not.toMatch(/(GET|POST) \/v1\//);
  });

  it('reports that arrived together are listed last event first, to the second', async () => {
    const t = await adminJson(['tokens', 'create', '--tier', 'edge', '--uses', '1']);
    const m = await server.call('POST', '/v1/agent/enroll', { json: { token: t.token, facts: FACTS } });
    const base = Date.now() - 60_000;
    for (let round = 0; round < 5; round++) {
      const report = (status: string, ms: number) => ({
        id: randomUUID(),
        name: 'CLP2251123',
        releaseId: secondId,
        sha256: secondId,
        status,
        at: new Date(base + round * 10_000 + ms).toISOString(),
      });
      const sent = await server.call('POST', '/v1/agent/reports', {
        token: m.body.credential,
        json: { reports: [report('downloading', 0), report('applied', 5)] },
      });
      expect(sent.status).toBe(200);
    }
    const listed = await adminJson(['reports', '--machine', m.body.machineId]);
    expect(listed.reports.map((r: { status: string }) => r.status)).toEqual(
      Array.from({ length: 5 }, () => ['applied', 'downloading']).flat(),
    );
    const text = await admin(['reports', '--machine', m.body.machineId]);
    expect(text.stdout.split('\n')[1]).toMatch(/^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\s/);
  });
});

/** clpctl with its stdin fed (passwords are read from stdin, never from the command line). */
function clpctlWithInput(args: string[], input: string, env: Record<string, string> = {}): Promise<Run> {
  return new Promise((done) => {
    const child = execFile(
      process.execPath,
      [BIN, ...args],
      { cwd: work, timeout: 30_000, env: { PATH: process.env.PATH ?? '', HOME: work, ...env } },
      (error, stdout, stderr) => {
        const code = error ? (typeof error.code === 'number' ? error.code : null) : 0;
        done({ code, stdout, stderr });
      },
    );
    child.stdin?.end(input);
  });
}

describe('clpctl admin does what the console does', () => {
  let releaseId: string;
  const machineIds: string[] = [];

  beforeAll(async () => {
    const dir = join(work, 'CLP3251123');
    await cp(EXAMPLE, dir, { recursive: true });
    const meta = await readFile(join(dir, 'PKGINFO.meta'), 'utf8');
    await writeFile(
      join(dir, 'PKGINFO.meta'),
      meta.replace('<Name>CLP1251123</Name>', '<Name>CLP3251123</Name>'),
    );
    const file = join(work, 'CLP3251123.clp');
    const made = await clpctl(['create', dir, '-o', file, '--sign', join(work, 'keys/release.key')]);
    expect(made.code, made.stderr).toBe(0);
    releaseId = (await adminJson(['upload', file])).id;
    expect((await admin(['tiers', 'create', 'console-views'])).code).toBe(0);
    const t = await adminJson(['tokens', 'create', '--tier', 'console-views', '--uses', '20']);
    for (let i = 0; i < 20; i++) {
      const id = `views-cli-${String(i).padStart(2, '0')}`;
      const m = await server.call('POST', '/v1/agent/enroll', {
        json: { token: t.token, facts: { ...FACTS, hostname: `cli-host-${i}` }, machineId: id },
      });
      expect(m.status).toBe(201);
      machineIds.push(id);
      // Half of them poll, so that they count as seen.
      if (i % 2 === 0) {
        await server.call('POST', '/v1/agent/poll', {
          token: m.body.credential,
          json: { facts: { ...FACTS, hostname: `cli-host-${i}` } },
        });
      }
    }
  });

  it('manages console users, and a user changes their own password without a token', async () => {
    const created = await clpctlWithInput(
      [
        'admin',
        '--server',
        server.url,
        '--token',
        server.admin,
        'users',
        'create',
        'carol',
        '--role',
        'viewer',
      ],
      'carols long passphrase\n',
    );
    expect(created.code, created.stderr).toBe(0);
    expect(created.stdout).toMatch(/created user carol \(viewer\)/);
    expect(created.stdout + created.stderr).not.toContain('carols long passphrase');
    const listed = await adminJson(['users']);
    expect(listed.users.map((u: { username: string }) => u.username)).toContain('carol');
    expect((await adminJson(['users', 'set', 'carol', '--role', 'operator'])).role).toBe('operator');
    const nothing = await admin(['users', 'set', 'carol']);
    expect(nothing.code).toBe(2);
    expect(errorCode(nothing)).toBe('CLP_E_ADMIN_BAD_OPTION');

    const changePassword = (input: string) =>
      clpctlWithInput(['admin', '--server', server.url, 'password', 'carol'], input);
    const wrong = await changePassword('not her passphrase\nanother long passphrase\n');
    expect(errorCode(wrong)).toBe('CLP_E_UNAUTHORIZED');
    const short = await changePassword('carols long passphrase\n');
    expect(errorCode(short)).toBe('CLP_E_ADMIN_BAD_OPTION');
    expect(short.stderr).toMatch(/stdin ended before the new password/);
    const changed = await changePassword('carols long passphrase\ncarols newer passphrase\n');
    expect(changed.code, changed.stderr).toBe(0);
    expect(changed.stdout).toMatch(/password of carol changed; every session of carol ended/);
    const signIn = await server.call('POST', '/v1/session', {
      json: { username: 'carol', password: 'carols newer passphrase' },
    });
    expect(signIn.status).toBe(201);

    const disabled = await adminJson(['users', 'set', 'carol', '--disable']);
    expect(disabled.disabled).toBe(true);
  });

  it('shows the overview the console shows', async () => {
    const o = await adminJson(['overview']);
    const direct = await server.call('GET', '/v1/overview', { token: server.admin });
    expect(o.machines).toEqual(direct.body.machines);
    expect(o.machines.enrolled).toBeGreaterThanOrEqual(20);
    const text = await admin(['overview']);
    expect(text.code, text.stderr).toBe(0);
    expect(text.stdout).toMatch(/^machines: \d+ enrolled, \d+ seen in the last day/);
    expect(text.stdout).toMatch(/^rollouts in progress$/m);
  });

  it('previews a rollout, creates it with the previewed id, and shows its timeline', async () => {
    const args = ['CLP3251123', '--tier', 'console-views', '--stages', '30,100', '--stage-min-minutes', '60'];
    const preview = await adminJson(['rollout', 'preview', ...args]);
    expect(preview).toMatchObject({ inTier: 20, matching: 20 });
    expect(preview.stages[1]).toEqual({ percent: 100, machines: 20 });
    const text = await admin(['rollout', 'preview', ...args]);
    // Each preview proposes an id of its own (a machine's cohort depends on it).
    expect(text.stdout).toMatch(/^create it with --id [0-9a-f-]{36} to reach exactly these machines$/m);
    expect(text.stdout).toMatch(/^2\s+100%\s+20$/m);
    const created = await adminJson(['rollout', 'create', ...args, '--id', preview.rolloutId]);
    expect(created.id).toBe(preview.rolloutId);
    expect(created.releaseId).toBe(releaseId);
    const timeline = await adminJson(['rollout', 'timeline', created.id.slice(0, 8)]);
    expect(timeline).toMatchObject({ rolloutId: created.id, maxFailureRate: 0.05 });
    expect(timeline.points.at(-1)).toMatchObject({ appliedTotal: 0, failedTotal: 0, silentTotal: 0 });
    const rows = await admin(['rollout', 'timeline', created.id, '--all', '--buckets', '3']);
    expect(rows.code, rows.stderr).toBe(0);
    expect(rows.stdout).toMatch(/^FROM\s+APPLIED\s+FAILED\s+SILENT/);
    const listed = await adminJson(['rollout', 'list', '--state', 'active,paused', '--limit', '1']);
    expect(listed.rollouts).toHaveLength(1);
    expect(listed.total).toBeGreaterThanOrEqual(1);
    await admin(['rollout', 'abort', created.id]);
  });

  it('searches and filters machines as the console does, paged with the total', async () => {
    const found = await adminJson(['machines', '--search', 'CLI-HOST-1', '--sort', 'hostname']);
    expect(found.machines.map((m: { hostname: string }) => m.hostname)).toEqual([
      'cli-host-1',
      ...Array.from({ length: 10 }, (_, i) => `cli-host-1${i}`),
    ]);
    const seen = await adminJson(['machines', '--tier', 'console-views', '--seen', 'day', '--limit', '3']);
    expect(seen.total).toBe(10);
    expect(seen.machines).toHaveLength(3);
    const never = await adminJson(['machines', '--tier', 'console-views', '--seen', 'never', '--active']);
    expect(never.total).toBe(10);
    const text = await admin(['machines', '--tier', 'console-views', '--limit', '5']);
    expect(text.stdout).toMatch(/^5 of 20 machines$/m);
    const bad = await admin(['--json', 'machines', '--seen', 'yesterday']);
    expect(bad.code).toBe(2);
    expect(JSON.parse(bad.stderr).error.message).toContain(
      '--seen yesterday: expected one of day, week, stale, never',
    );
  });
});
