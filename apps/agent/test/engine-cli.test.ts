/** clpctl's machine commands, run as the built program against a temporary root. */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { cp, mkdir, mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';

const repo = join(import.meta.dirname, '../../..');
const bundle = join(repo, 'apps/agent/dist/clpctl.mjs');

function clpctl(args: string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [bundle, ...args], { cwd: repo, encoding: 'utf8', timeout: 60_000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

describe('clpctl install / list / status / history / show / explain / uninstall / recover', () => {
  let work: string;
  let root: string;
  let patch: string;
  let unsigned: string;

  beforeAll(async () => {
    if (!existsSync(bundle)) {
      const built = spawnSync(process.execPath, [join(repo, 'scripts/build.mjs')], {
        cwd: repo,
        encoding: 'utf8',
      });
      if (built.status !== 0) throw new Error(built.stderr);
    }
    work = await mkdtemp(join(tmpdir(), 'clp-engine-cli-'));
    root = join(work, 'root');
    await cp(join(repo, 'examples/demo-root'), root, { recursive: true });
    expect(clpctl(['keygen', '--name', 'rel', '--out', join(work, 'keys')]).status).toBe(0);
    await mkdir(join(root, 'etc/clp/keys.d'), { recursive: true });
    await cp(join(work, 'keys/rel.pub'), join(root, 'etc/clp/keys.d/rel.pub'));
    patch = join(work, 'CLP1251123.clp');
    unsigned = join(work, 'CLP1251123-unsigned.clp');
    const created = clpctl([
      'create',
      join(repo, 'examples/CLP1251123'),
      '-o',
      patch,
      '--sign',
      join(work, 'keys/rel.key'),
    ]);
    expect(created.status, created.stderr).toBe(0);
    expect(clpctl(['create', join(repo, 'examples/CLP1251123'), '-o', unsigned]).status).toBe(0);
  });

  it('installs the example patch, lists, shows and uninstalls it, with --json everywhere', async () => {
    const motd = await readFile(join(root, 'etc/motd'), 'utf8');
    const explained = clpctl(['--root', root, 'explain', patch]);
    expect(explained.status).toBe(0);
    expect(explained.stdout).toMatch(
      /applies here; installing it would:\n {2}add \/etc\/clp-demo.conf\n {2}replace \/etc\/motd/,
    );

    const installed = clpctl(['--root', root, '--json', 'install', patch]);
    expect(installed.status, installed.stderr).toBe(0);
    // Not a terminal: no progress lines on stderr.
    expect(installed.stderr).toBe('');
    expect(JSON.parse(installed.stdout)).toMatchObject({
      name: 'CLP1251123',
      steps: [{ kind: 'file' }, { kind: 'file' }],
    });
    expect(await readFile(join(root, 'etc/motd'), 'utf8')).toMatch(/Core LivePatch/);

    expect(clpctl(['--root', root, 'list']).stdout).toMatch(/^NAME\s+SERIES.*\nCLP1251123 /);
    expect(
      JSON.parse(clpctl(['--root', root, '--json', 'list']).stdout).map((p: { name: string }) => p.name),
    ).toEqual(['CLP1251123']);
    expect(clpctl(['--root', root, 'show', 'CLP1251123']).stdout).toMatch(
      /steps:\n {2}1\. add \/etc\/clp-demo.conf\n {2}2\. replace \/etc\/motd/,
    );
    const status = JSON.parse(clpctl(['--root', root, '--json', 'status']).stdout);
    expect(status).toMatchObject({
      installed: [{ name: 'CLP1251123' }],
      trustedKeys: 1,
      lastEvent: { op: 'install', result: 'installed' },
    });

    const again = clpctl(['--root', root, 'install', patch]);
    expect(again.status).toBe(5);
    expect(again.stderr).toMatch(/^error CLP_E_NOT_APPLICABLE: .*\n.*\[installed\] CLP_E_ALREADY_INSTALLED/);

    const removed = clpctl(['--root', root, 'rollback', 'CLP1251123']);
    expect(removed.status, removed.stderr).toBe(0);
    expect(removed.stdout).toMatch(/uninstalled CLP1251123/);
    expect(await readFile(join(root, 'etc/motd'), 'utf8')).toBe(motd);
    expect(existsSync(join(root, 'etc/clp-demo.conf'))).toBe(false);

    const history = JSON.parse(clpctl(['--root', root, '--json', 'history']).stdout) as Array<{
      op: string;
      result: string;
    }>;
    expect(history.map((h) => `${h.op}:${h.result}`)).toEqual([
      'install:installed',
      'install:refused',
      'uninstall:uninstalled',
    ]);
    expect(await readFile(join(root, 'var/log/CLP.log'), 'utf8')).toMatch(
      /install: replace \/etc\/motd[\s\S]*uninstall: restore \/etc\/motd/,
    );
    expect(clpctl(['--root', root, 'recover']).stdout).toMatch(/nothing to recover/);
  });

  it('maps refusals to exit codes: unsigned 4, drift 9, not installed 10, explain of a refused patch 5', async () => {
    const plain = clpctl(['--root', root, 'install', unsigned]);
    expect(plain.status).toBe(4);
    expect(plain.stderr).toMatch(/^error CLP_E_UNSIGNED/);

    const insecure = clpctl(['--root', root, 'install', '--insecure', unsigned]);
    expect(insecure.status, insecure.stderr).toBe(0);
    expect(insecure.stderr).toMatch(/WARNING: installing CLP1251123 WITHOUT checking its signature/);
    expect(insecure.stdout).toMatch(/UNSIGNED: --insecure/);

    await writeFile(join(root, 'etc/motd'), 'edited by hand\n');
    const drift = clpctl(['--root', root, '--json', 'uninstall', 'CLP1251123']);
    expect(drift.status).toBe(9);
    const error = JSON.parse(drift.stderr).error;
    expect(error.code).toBe('CLP_E_DRIFT');
    expect(error.drift).toEqual([{ path: '/etc/motd', problem: expect.stringMatching(/^has sha256 /) }]);
    expect(clpctl(['--root', root, 'uninstall', '--force', 'CLP1251123']).status).toBe(0);
    // Not installed: exit 10, and the list it points to is of this root, not of the host.
    for (const command of ['uninstall', 'show']) {
      const gone = clpctl(['--root', root, command, 'CLP1251123']);
      expect(gone.status, command).toBe(10);
      expect(gone.stderr).toBe(
        `error CLP_E_NOT_INSTALLED: CLP1251123 is not installed under ${root}; 'clpctl list --root ${root}' shows what is\n`,
      );
    }

    // /etc/motd no longer has the content the patch expects, and the signature is missing.
    await writeFile(join(root, 'etc/motd'), 'edited by hand\n');
    const explained = clpctl(['--root', root, '--json', 'explain', unsigned]);
    expect(explained.status).toBe(5);
    const rules = (JSON.parse(explained.stdout).refusals as Array<{ rule: string }>)
      .map((r) => r.rule)
      .sort();
    expect(rules).toEqual(['precondition', 'trust']);
  });

  const hasScript = spawnSync('sh', ['-c', 'command -v script'], { stdio: 'ignore' }).status === 0;
  if (!hasScript) console.warn('skipped: needs script(1) from util-linux (progress on a terminal)');

  it.skipIf(!hasScript)('shows progress on a terminal', async () => {
    const tty = join(work, 'tty-root');
    await cp(join(repo, 'examples/demo-root'), tty, { recursive: true });
    const command = [process.execPath, bundle, '--root', tty, 'install', '--insecure', unsigned]
      .map((a) => `'${a}'`)
      .join(' ');
    const r = spawnSync('script', ['-qec', command, '/dev/null'], {
      cwd: repo,
      encoding: 'utf8',
      timeout: 60_000,
    });
    expect(r.status, r.stdout).toBe(0);
    expect(r.stdout).toMatch(/\[1\/1\] add \/etc\/clp-demo.conf, replace \/etc\/motd/);
  });
});
