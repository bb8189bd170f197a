/**
 * What a newcomer met on the command line, each checked as the built program: exit codes, the
 * `error CODE: message` line, and the `{"error":{…}}` shape with --json.
 */
import { spawnSync } from 'node:child_process';
import { cp, mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const REPO = resolve(import.meta.dirname, '../../..');
const CLI = join(REPO, 'apps/agent/dist/clpctl.mjs');

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

function clpctl(args: string[], env: Record<string, string> = {}): Run {
  const r = spawnSync(process.execPath, [CLI, ...args], {
    cwd: work,
    encoding: 'utf8',
    timeout: 60_000,
    env: { PATH: process.env.PATH ?? '', HOME: work, ...env },
  });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** The parsed `{"error":{…}}` of a --json run. */
function jsonError(r: Run): { code: string; message: string } & Record<string, unknown> {
  return JSON.parse(r.stderr).error;
}

let work: string;
let keyFile: string;
let pubFile: string;

beforeAll(async () => {
  const build = spawnSync(process.execPath, [join(REPO, 'scripts/build.mjs')], {
    cwd: REPO,
    encoding: 'utf8',
  });
  if (build.status !== 0) throw new Error(`build failed: ${build.stderr}`);
  work = await mkdtemp(join(tmpdir(), 'clp-surprises-'));
  const key = clpctl(['--json', 'keygen', '--name', 'release', '--out', join(work, 'keys')]);
  expect(key.code, key.stderr).toBe(0);
  ({ keyFile, pubFile } = JSON.parse(key.stdout));
});

afterAll(async () => {
  if (work) await rm(work, { recursive: true, force: true });
});

describe('usage errors', () => {
  it('an unknown command, a missing argument and an unknown option are CLP_E_USAGE, exit 2, and JSON with --json', () => {
    const unknown = clpctl(['instal', 'x.clp']);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toMatch(/^error CLP_E_USAGE: unknown command 'instal'/);
    expect(unknown.stderr).toContain('install');

    const cases: Array<[string[], RegExp]> = [
      [['--json', 'frobnicate'], /unknown command 'frobnicate'/],
      [['--json', 'install'], /missing required argument 'file'/],
      [['--json', 'list', '--colour'], /unknown option '--colour'/],
      [
        ['admin', '--json', 'rollout', 'create', 'CLP1251123'],
        /required option '--tier <tier>' not specified/,
      ],
    ];
    for (const [args, message] of cases) {
      const r = clpctl(args);
      expect(r.code, args.join(' ')).toBe(2);
      expect(r.stdout).toBe('');
      expect(jsonError(r)).toEqual({ code: 'CLP_E_USAGE', message: expect.stringMatching(message) });
    }
  });

  it('a usage error names the --help of the command it came from', () => {
    const cases: Array<[string[], string]> = [
      [['instal', 'x.clp'], "unknown command 'instal' (Did you mean install?); see 'clpctl --help'"],
      [['install'], "missing required argument 'file'; see 'clpctl install --help'"],
      [['list', '--colour'], "unknown option '--colour'; see 'clpctl list --help'"],
      [
        ['admin', 'rollot', 'list'],
        "unknown command 'rollot' (Did you mean rollout?); see 'clpctl admin --help'",
      ],
      [
        ['admin', 'rollout', 'create', 'CLP1251123'],
        "required option '--tier <tier>' not specified; see 'clpctl admin rollout create --help'",
      ],
    ];
    for (const [args, message] of cases) {
      const r = clpctl(args);
      expect(r.code, args.join(' ')).toBe(2);
      expect(r.stderr).toBe(`error CLP_E_USAGE: ${message}\n`);
    }
    expect(jsonError(clpctl(['--json', 'install'])).message).toBe(
      "missing required argument 'file'; see 'clpctl install --help'",
    );
  });

  it('help for a command that does not exist ends with a usage error naming it, not with the help alone', () => {
    const typo = clpctl(['help', 'instal']);
    expect(typo.code).toBe(2);
    expect(typo.stderr.trimEnd().split('\n').at(-1)).toBe(
      "error CLP_E_USAGE: unknown command 'instal' for 'clpctl help'; 'clpctl --help' lists the commands",
    );
    const nested = clpctl(['admin', 'help', 'rollot']);
    expect(nested.code).toBe(2);
    expect(nested.stderr).toContain("unknown command 'rollot' for 'clpctl admin help'");
    const found = clpctl(['help', 'install']);
    expect(found.code).toBe(0);
    expect(found.stdout).toContain('Usage: clpctl install');
    expect(found.stderr).toBe('');
  });

  it('a word that is not a subcommand of a listing command says so, instead of "too many arguments"', () => {
    const r = clpctl(['admin', 'releases', 'frobnicate']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(
      /^error CLP_E_USAGE: unknown subcommand 'frobnicate' of 'clpctl admin releases'; it has: list, show, yank/,
    );
    expect(r.stderr).not.toContain('too many arguments');
    const json = clpctl(['admin', '--json', 'machines', 'shw', 'm-1']);
    expect(json.code).toBe(2);
    expect(jsonError(json)).toMatchObject({
      code: 'CLP_E_USAGE',
      message: expect.stringContaining("unknown subcommand 'shw' of 'clpctl admin machines'"),
      subcommand: 'shw',
    });
    // The listing itself still runs without a subcommand (and then needs a server).
    const bare = clpctl(['admin', 'releases']);
    expect(bare.code).toBe(2);
    expect(bare.stderr).toMatch(/^error CLP_E_ADMIN_NO_SERVER/);
  });

  it('a bad patch name on the create command line is a usage error (2), not a malformed archive', () => {
    const r = clpctl(['--json', 'create', join(REPO, 'examples/CLP1251123'), 'CLPX']);
    expect(r.code).toBe(2);
    expect(jsonError(r)).toMatchObject({
      code: 'CLP_E_USAGE',
      message: expect.stringContaining('CLP + revision + YYMMDD'),
      name: 'CLPX',
    });
  });
});

describe('keys folders', () => {
  it('a --keys folder that does not exist is CLP_E_NOT_FOUND (exit 10) for verify and inspect', async () => {
    const file = join(work, 'keys-check.clp');
    expect(clpctl(['create', join(REPO, 'examples/CLP1251123'), '-o', file, '--sign', keyFile]).code).toBe(0);
    for (const command of ['verify', 'inspect']) {
      const r = clpctl(['--json', command, file, '--keys', join(work, 'no-such-keys')]);
      expect(r.code, command).toBe(10);
      expect(jsonError(r)).toMatchObject({
        code: 'CLP_E_NOT_FOUND',
        message: expect.stringContaining('no-such-keys'),
      });
    }
    // A root without etc/clp/keys.d trusts nothing: that is a signature problem, exit 4.
    await mkdir(join(work, 'empty-root'), { recursive: true });
    const bareRoot = clpctl(['--root', join(work, 'empty-root'), 'verify', file]);
    expect(bareRoot.code).toBe(4);
    expect(bareRoot.stderr).toMatch(/^error CLP_E_UNKNOWN_KEY/);
  });
});

describe('the machine commands', () => {
  it('enroll against a server that does not answer says the server is unreachable and how to retry (exit 8)', async () => {
    const root = join(work, 'enroll-root');
    await mkdir(root, { recursive: true });
    const r = clpctl(['--root', root, 'enroll', 'http://127.0.0.1:9', 'some-token']);
    expect(r.code).toBe(8);
    expect(r.stderr).toMatch(
      /^error CLP_E_SERVER_UNREACHABLE: the server at http:\/\/127\.0\.0\.1:9 is unreachable/,
    );
    expect(r.stderr).toContain("run 'clpctl enroll http://127.0.0.1:9 TOKEN' again");
    expect(r.stderr).not.toContain('the next check will try again');
    const json = clpctl(['--json', '--root', root, 'enroll', 'http://127.0.0.1:9', 'some-token']);
    expect(json.code).toBe(8);
    expect(jsonError(json)).toMatchObject({ code: 'CLP_E_SERVER_UNREACHABLE', url: 'http://127.0.0.1:9' });
  });

  it('list has a header row and shows when each patch was installed in local time', async () => {
    const root = join(work, 'list-root');
    await cp(join(REPO, 'examples/demo-root'), root, { recursive: true });
    await mkdir(join(root, 'etc/clp/keys.d'), { recursive: true });
    await cp(pubFile, join(root, 'etc/clp/keys.d/release.pub'));
    const file = join(work, 'list.clp');
    expect(clpctl(['create', join(REPO, 'examples/CLP1251123'), '-o', file, '--sign', keyFile]).code).toBe(0);
    expect(clpctl(['--root', root, 'install', file]).code).toBe(0);

    // Five and a half hours east of UTC, so that a UTC time would show.
    const tz = { TZ: 'Asia/Kolkata' };
    const [patch] = JSON.parse(clpctl(['--root', root, '--json', 'list'], tz).stdout) as Array<{
      installedAt: string;
    }>;
    const at = new Date(new Date(patch!.installedAt).getTime() + 330 * 60_000).toISOString();
    const local = `${at.slice(0, 10)} ${at.slice(11, 16)}`;
    const listed = clpctl(['--root', root, 'list'], tz);
    expect(listed.code).toBe(0);
    const [header, row] = listed.stdout.split('\n');
    expect(header).toMatch(/^NAME\s+SERIES\s+VERSION\s+INSTALLED\s+SIGNED BY\s+DESCRIPTION$/);
    expect(row).toMatch(new RegExp(`^CLP1251123\\s+CLP251123\\s+1\\s+${local}\\s+[0-9a-f]{16}\\s+Demo`));
  });

  it('explain says that the historic example needs PowerShell (pwsh) before an install is tried', async () => {
    const root = join(work, 'historic-root');
    await mkdir(join(root, 'etc/clp/keys.d'), { recursive: true });
    await cp(pubFile, join(root, 'etc/clp/keys.d/release.pub'));
    const file = join(work, 'CLP1250101.clp');
    expect(
      clpctl(['create', join(REPO, 'examples/CLP1250101-historic'), '-o', file, '--sign', keyFile]).code,
    ).toBe(0);
    const hasPwsh = spawnSync('sh', ['-c', 'command -v pwsh']).status === 0;
    // Under --root, a patch's scripts would run on this host: allowed here, to see the interpreter check.
    const r = clpctl(['--root', root, '--run-scripts-on-host', '--json', 'explain', file]);
    const e = JSON.parse(r.stdout) as {
      applies: boolean;
      refusals: Array<{ code: string; message: string }>;
      plan: string[];
    };
    if (hasPwsh) {
      expect(r.code).toBe(0);
      expect(e.plan).toContain('run Install-Patch.ps1 (PowerShell (pwsh))');
    } else {
      expect(r.code).toBe(5);
      expect(e.refusals).toEqual([
        expect.objectContaining({
          code: 'CLP_E_INTERPRETER_MISSING',
          message: expect.stringContaining('pwsh'),
        }),
      ]);
      expect(clpctl(['--root', root, 'history']).stdout).toBe('no history yet\n');
    }
  });
});
