/**
 * Scripts run as root: each gets a clean environment and its own process group, is done when it
 * exits (not when the last holder of its output lets go), and whatever it leaves running is ended
 * when its transaction is rolled back: after a failure, a timeout, or a kill -9 of clpctl (then by
 * recover, before it undoes anything). Under --root, scripts run only when allowed.
 */
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { installPatch, uninstallPatch } from '../src/index.ts';
import { SCRIPT_PATH } from '../src/process.ts';
import { buildPatch, fileAction, makeRoot, snapshotRoot, tempDir, trustedKey } from './engine-fixtures.ts';
import { CLPCTL, clpctl, ensureBundle } from './run-clpctl.ts';

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  // A zombie is dead, only not yet reaped.
  return !/^\S+ \(.*\) Z/.test(readProcStat(pid));
}

function readProcStat(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return '';
  }
}

async function until(what: string, ready: () => Promise<boolean>, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await ready())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

const leftovers: number[] = [];
afterEach(() => {
  for (const pid of leftovers.splice(0)) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // gone
    }
  }
});

describe('scripts are contained', () => {
  async function patchWith(script: string, extra: { timeoutMs?: number; name?: string } = {}) {
    const root = await makeRoot({ 'etc/app.conf': 'v1\n' });
    const key = await trustedKey(root);
    const file = await buildPatch(
      await tempDir('script-patch'),
      {
        name: extra.name ?? 'CLP1251220',
        actions: [
          fileAction('replace', '/etc/app.conf', 'payload/app.conf', 'v2\n'),
          {
            type: 'script',
            when: 'post',
            path: 'post.sh',
            ...(extra.timeoutMs === undefined ? {} : { timeoutMs: extra.timeoutMs }),
          },
        ],
        entries: { 'payload/app.conf': 'v2\n', 'post.sh': script },
      },
      key,
    );
    return { root, file };
  }

  it("sees PATH, LANG and clp's own CLP_* variables only: nothing of the caller's environment", async () => {
    const { root, file } = await patchWith('#!/bin/sh\nenv > "$CLP_ROOT/etc/script-env"\n');
    const saved = { ...process.env };
    process.env.AWS_SECRET_ACCESS_KEY = 'hunter2';
    process.env.CLP_TOKEN = 'clp_adm_secret';
    process.env.PATH = `/tmp/not-for-scripts:${process.env.PATH}`;
    try {
      await installPatch(file, { root, runScriptsOnHost: true });
    } finally {
      process.env = saved;
    }
    const env = Object.fromEntries(
      (await readFile(join(root, 'etc/script-env'), 'utf8'))
        .trim()
        .split('\n')
        .map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]),
    );
    // sh itself adds PWD (and some shells SHLVL, _).
    const shells = new Set(['PWD', 'OLDPWD', 'SHLVL', '_']);
    expect(
      Object.keys(env)
        .filter((k) => !shells.has(k))
        .sort(),
    ).toEqual(['CLP_PATCH_DIR', 'CLP_ROOT', 'CLP_TX', 'LANG', 'PATH']);
    expect(env.PATH).toBe(SCRIPT_PATH);
    expect(env.CLP_ROOT).toBe(root);
    expect(JSON.stringify(env)).not.toMatch(/hunter2|clp_adm_secret|not-for-scripts/);
  });

  it('runs in a process group of its own, and the children of a failing script are ended with it', async () => {
    const { root, file } = await patchWith(
      `#!/bin/sh\nsleep 300 &\necho $! > "$CLP_ROOT/etc/child"\nawk '{print $1, $5}' /proc/$$/stat > "$CLP_ROOT/etc/group"\nexit 3\n`,
    );
    const error = await installPatch(file, { root, runScriptsOnHost: true }).catch((e: unknown) => e);
    expect(error).toMatchObject({ code: 'CLP_E_SCRIPT_FAILED' });
    const [pid, pgid] = (await readFile(join(root, 'etc/group'), 'utf8')).trim().split(' ').map(Number);
    expect(pgid).toBe(pid);
    expect(pgid).not.toBe(Number(readProcStat(process.pid).split(') ')[1]?.split(' ')[2]));
    const child = Number(await readFile(join(root, 'etc/child'), 'utf8'));
    leftovers.push(child);
    expect(alive(child)).toBe(false);
    expect(await readFile(join(root, 'etc/app.conf'), 'utf8')).toBe('v1\n');
  });

  it('a timeout="2s" script whose child holds its output open fails after 2 s, not when the child ends; the child is ended', async () => {
    // setsid: the child leaves the script's process group, and keeps stdout open for 60 s.
    const { root, file } = await patchWith(
      '#!/bin/sh\nsetsid sleep 60 &\necho $! > "$CLP_ROOT/etc/child"\nsleep 60\n',
      { timeoutMs: 2_000 },
    );
    const started = Date.now();
    const error = await installPatch(file, { root, runScriptsOnHost: true }).catch((e: unknown) => e);
    const took = Date.now() - started;
    expect(error).toMatchObject({ code: 'CLP_E_SCRIPT_TIMEOUT' });
    expect(took).toBeGreaterThanOrEqual(2_000);
    // Far below the child's 60 s, with room for a loaded machine.
    expect(took).toBeLessThan(30_000);
    const child = Number(await readFile(join(root, 'etc/child'), 'utf8'));
    leftovers.push(child);
    expect(alive(child)).toBe(false);
    expect(await readFile(join(root, 'etc/app.conf'), 'utf8')).toBe('v1\n');
  });

  it('a script that succeeds is done when it exits, even while a daemon it started holds its output open', async () => {
    const { root, file } = await patchWith('#!/bin/sh\nsleep 60 &\necho $! > "$CLP_ROOT/etc/daemon"\n', {
      timeoutMs: 30_000,
    });
    const started = Date.now();
    await installPatch(file, { root, runScriptsOnHost: true });
    expect(Date.now() - started).toBeLessThan(20_000);
    const daemon = Number(await readFile(join(root, 'etc/daemon'), 'utf8'));
    leftovers.push(daemon);
    // What a successful script starts is its business: it keeps running.
    expect(alive(daemon)).toBe(true);
  });

  it('a script that outlives a kill -9 of clpctl is ended by recover before it undoes, and writes nothing after', async () => {
    ensureBundle();
    const { root, file } = await patchWith(
      '#!/bin/sh\nwhile :; do echo tick >> "$CLP_ROOT/etc/ticks"; sleep 0.05; done\n',
      { timeoutMs: 120_000 },
    );
    const before = await snapshotRoot(root);
    const child = spawn(
      process.execPath,
      [CLPCTL, '--root', root, '--run-scripts-on-host', 'install', file],
      {
        stdio: 'ignore',
      },
    );
    const exited = new Promise((r) => child.once('exit', r));
    await until(
      'the script to run',
      async () => (await stat(join(root, 'etc/ticks')).catch(() => null)) !== null,
    );
    // The group is journaled just after the script starts, so the script may tick first.
    const journaledGroup = async () =>
      (await readFile(join(root, 'var/lib/clp/journal'), 'utf8'))
        .split('\n')
        .filter(Boolean)
        .flatMap((l) => {
          try {
            return [JSON.parse(l)];
          } catch {
            return []; // a line still being written
          }
        })
        .find((e) => e.t === 'group');
    await until("the script's group to be journaled", async () => (await journaledGroup()) !== undefined);
    const group = await journaledGroup();
    expect(group).toMatchObject({ t: 'group', step: 1, pgid: expect.any(Number) });
    leftovers.push(group.pgid);
    child.kill('SIGKILL');
    await exited;
    // The script runs on without clpctl.
    const size = async () => (await stat(join(root, 'etc/ticks'))).size;
    const atKill = await size();
    await until('the orphaned script to write', async () => (await size()) > atKill);
    expect(alive(group.pgid)).toBe(true);

    const recovered = clpctl(['--root', root, '--json', 'recover']);
    expect(recovered.status, recovered.stderr).toBe(0);
    expect(JSON.parse(recovered.stdout)).toMatchObject({ action: 'rolled-back' });
    expect(alive(group.pgid)).toBe(false);
    const atRecover = await size();
    await new Promise((r) => setTimeout(r, 500));
    expect(await size()).toBe(atRecover);
    // The group is the script's shell and, at times, the sleep it is waiting for.
    const ended = /ending (\d+) process\(es\) the scripts of transaction \S+ left running: ([\d, ]+)/.exec(
      await readFile(join(root, 'var/log/CLP.log'), 'utf8'),
    );
    expect(ended?.[2]?.split(', ').map(Number)).toContain(group.pgid);
    // Everything but what the script itself wrote is as before.
    const after = await snapshotRoot(root);
    delete after['etc/ticks'];
    expect(after).toEqual(before);
  });
});

describe('scripts under --root', () => {
  it('are refused unless --run-scripts-on-host (install and uninstall), and --help says they run on this host', async () => {
    ensureBundle();
    const root = await makeRoot({ 'etc/app.conf': 'v1\n' });
    const key = await trustedKey(root);
    const file = await buildPatch(
      await tempDir('script-root'),
      {
        name: 'CLP1251221',
        actions: [],
        entries: {
          'Install-Script.ps1': '#!/bin/sh\necho installed > "$CLP_ROOT/etc/marker"\n',
          'Remove-Script.ps1': '#!/bin/sh\nrm "$CLP_ROOT/etc/marker"\n',
        },
      },
      key,
    );
    const before = await snapshotRoot(root);
    const refused = clpctl(['--root', root, 'install', file]);
    expect(refused.status, refused.stderr).toBe(5);
    expect(refused.stderr).toMatch(
      /CLP_E_SCRIPT_ON_HOST: .*Install-Script\.ps1.*would run on this host, not in the root.*--run-scripts-on-host/s,
    );
    expect(await snapshotRoot(root)).toEqual(before);
    const explained = JSON.parse(clpctl(['--root', root, '--json', 'explain', file]).stdout);
    expect(explained.refusals.map((r: { rule: string; code: string }) => `${r.rule}:${r.code}`)).toEqual([
      'scripts:CLP_E_SCRIPT_ON_HOST',
    ]);
    expect(clpctl(['--root', root, '--run-scripts-on-host', 'install', file]).status).toBe(0);
    expect(await readFile(join(root, 'etc/marker'), 'utf8')).toBe('installed\n');
    const notRemoved = await uninstallPatch('CLP1251221', { root }).catch((e: unknown) => e);
    expect(notRemoved).toMatchObject({ code: 'CLP_E_SCRIPT_ON_HOST' });
    expect(await readFile(join(root, 'etc/marker'), 'utf8')).toBe('installed\n');
    expect(clpctl(['--root', root, '--run-scripts-on-host', 'uninstall', 'CLP1251221']).status).toBe(0);
    await expect(stat(join(root, 'etc/marker'))).rejects.toMatchObject({ code: 'ENOENT' });
    const help = clpctl(['--help']).stdout.replace(/\s+/g, ' ');
    expect(help).toMatch(/--root <dir> .*scripts and checks still run on this host, not in DIR/);
    expect(help).toMatch(/--run-scripts-on-host/);
  });
});
