/**
 * Bar R1: a real clpctl process, installing a patch with file, package (pacman), script and
 * service actions, is killed with SIGKILL right after each of its journal writes
 * (CLP_TEST_KILL_AT_STEP=N), then `clpctl recover` runs, and the root must be byte-identical
 * (content, mode, owner, links, file list) to before the command up to its commit point, and to
 * after it (patch listed as installed, or gone for an uninstall) past it.
 */
import { spawnSync } from 'node:child_process';
import { copyFile, mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { DpkgManager } from '../src/package-managers/dpkg.ts';
import { PacmanManager } from '../src/package-managers/pacman.ts';
import {
  buildPatch,
  fileAction,
  makeRoot,
  sha256,
  snapshotRoot,
  tempDir,
  trustedKey,
} from './engine-fixtures.ts';
import { hasTool, makeDeb, makePacmanPackage } from './package-fixtures.ts';
import { clpctl, ensureBundle } from './run-clpctl.ts';

const withPacman = hasTool('pacman') && hasTool('bsdtar');
if (!withPacman)
  console.warn('skipped: needs pacman and bsdtar (the crash test then runs without its package action)');

/**
 * pacman's database records install dates, and its log grows: those are the package manager's
 * own records, not system content. The package's files are compared byte for byte, and its
 * installed version separately.
 */
const EXCLUDE = ['var/lib/clp', 'var/log/CLP.log', 'var/lib/pacman', 'var/log/pacman.log'];

function copyTree(from: string, to: string): void {
  const r = spawnSync('cp', ['-a', from, to]);
  if (r.status !== 0) throw new Error(`cp -a failed: ${r.stderr}`);
}

async function installedVersion(root: string): Promise<string | null> {
  return withPacman ? new PacmanManager(root).installedVersion('clpdemo') : null;
}

describe('crash at every journal step, then recover', () => {
  let work: string;
  let template: string;
  let patch: string;
  let groups: number;

  beforeAll(async () => {
    ensureBundle();
    work = await tempDir('crash');
    template = await makeRoot({
      'etc/app.conf': { content: 'config v1\n', mode: 0o640, uid: 33, gid: 33 },
      'etc/gone.conf': { content: 'to be removed\n', mode: 0o600, uid: 1, gid: 1 },
    });
    const key = await trustedKey(template);
    const entries: Record<string, string | { file: string }> = {
      'payload/app.conf': 'config v2\n',
      'payload/new.conf': 'new file\n',
      'Install-Script.ps1':
        '#!/bin/sh\nset -e\necho "installed by script" > "$CLP_ROOT/etc/script-marker"\nchmod 0600 "$CLP_ROOT/etc/script-marker"\n',
      'Remove-Script.ps1': '#!/bin/sh\nrm -f "$CLP_ROOT/etc/script-marker"\n',
    };
    const actions = [
      fileAction('replace', '/etc/app.conf', 'payload/app.conf', 'config v2\n', {
        expectSha256: sha256('config v1\n'),
      }),
      fileAction('add', '/opt/demo/conf.d/new.conf', 'payload/new.conf', 'new file\n', {
        mode: 0o644,
        owner: 'daemon',
        group: 'web',
      }),
      { type: 'file' as const, action: 'remove' as const, path: '/etc/gone.conf' },
    ];
    // Under --root, systemctl is not run, but the service step is journaled like any other.
    actions.push({ type: 'service', action: 'reload', unit: 'nginx.service' } as never);
    groups = 3; // the file batch, the install script, the service
    const binary: Array<{ name: string; file: string }> = [];
    if (withPacman) {
      await mkdir(join(template, 'var/lib/pacman'), { recursive: true });
      await mkdir(join(template, 'var/cache/pacman/pkg'), { recursive: true });
      const v1 = await makePacmanPackage(work, 'clpdemo', '1-1', {
        'usr/share/clpdemo/data': 'data v1\n',
        'usr/share/clpdemo/v1-only': 'old\n',
      });
      const v2 = await makePacmanPackage(work, 'clpdemo', '2-1', {
        'usr/share/clpdemo/data': 'data v2\n',
        'usr/share/clpdemo/v2-only': 'new\n',
      });
      await new PacmanManager(template).installFile(v1);
      await copyFile(v1, join(template, 'var/cache/pacman/pkg/clpdemo-1-1-any.pkg.tar.zst'));
      const source = 'packages/clpdemo-2-1-any.pkg.tar.zst';
      binary.push({ name: source, file: v2 });
      actions.push({
        type: 'package',
        action: 'set-version',
        name: 'clpdemo',
        version: '2-1',
        source,
      } as never);
      groups += 1;
    }
    for (const b of binary) entries[b.name] = { file: b.file };
    patch = await buildPatch(work, { name: 'CLP1251123', actions, entries }, key);
  });

  it.skipIf(process.getuid?.() !== 0)(
    'install: before up to the commit point, after past it, at every kill point',
    async () => {
      const before = await snapshotRoot(template, EXCLUDE);
      const reference = join(work, 'reference');
      copyTree(template, reference);
      const ok = clpctl([
        '--root',
        reference,
        '--run-scripts-on-host',
        'install',
        '--package-manager',
        'pacman',
        patch,
      ]);
      expect(ok.stderr).toBe('');
      expect(ok.status).toBe(0);
      const after = await snapshotRoot(reference, EXCLUDE);
      expect(after).not.toEqual(before);
      if (withPacman) expect(await installedVersion(reference)).toBe('2-1');

      // begin, then run+done per group, then commit, then end.
      // begin, run and done of each group, the process group of the install script, commit.
      const commitAt = 1 + 2 * groups + 1 + 1;
      const lastWrite = commitAt + 1;
      const outcomes: string[] = [];
      for (let n = 1; n <= lastWrite + 1; n++) {
        const killedRoot = join(work, `install-kill-${n}`);
        copyTree(template, killedRoot);
        const killed = clpctl(
          ['--root', killedRoot, '--run-scripts-on-host', 'install', '--package-manager', 'pacman', patch],
          {
            CLP_TEST_KILL_AT_STEP: String(n),
          },
        );
        // Recovery also works where the root is found under another path (a prepared image, booted).
        const root = `${killedRoot}-moved`;
        await rename(killedRoot, root);
        if (n <= lastWrite) expect(killed.signal, `kill point ${n}: ${killed.stderr}`).toBe('SIGKILL');
        else expect(killed.status, `no kill at ${n}: ${killed.stderr}`).toBe(0);
        const journal = await readFile(join(root, 'var/lib/clp/journal'), 'utf8').catch(() => '');
        const recovered = clpctl(['--root', root, '--json', 'recover']);
        expect(recovered.status, recovered.stderr).toBe(0);
        const installed = JSON.parse(clpctl(['--root', root, '--json', 'list']).stdout) as Array<{
          name: string;
        }>;
        const snap = await snapshotRoot(root, EXCLUDE);
        const pastCommit = n >= commitAt;
        expect(
          journal.includes('"t":"commit"') || n === lastWrite || n > lastWrite,
          `journal at kill point ${n}`,
        ).toBe(pastCommit);
        if (pastCommit) {
          expect(snap, `kill point ${n} (past the commit point)`).toEqual(after);
          expect(installed.map((p) => p.name)).toEqual(['CLP1251123']);
          if (withPacman) expect(await installedVersion(root)).toBe('2-1');
        } else {
          expect(snap, `kill point ${n} (before the commit point)`).toEqual(before);
          expect(installed).toEqual([]);
          if (withPacman) expect(await installedVersion(root)).toBe('1-1');
        }
        outcomes.push(`${n}:${pastCommit ? 'after' : 'before'}:${JSON.parse(recovered.stdout).action}`);
      }
      console.log(`install kill points: ${outcomes.join(' ')}`);
    },
  );

  it.skipIf(process.getuid?.() !== 0)(
    'uninstall: installed up to the commit point, gone past it, at every kill point',
    async () => {
      const installedRoot = join(work, 'installed');
      copyTree(template, installedRoot);
      expect(
        clpctl([
          '--root',
          installedRoot,
          '--run-scripts-on-host',
          'install',
          '--package-manager',
          'pacman',
          patch,
        ]).status,
      ).toBe(0);
      const installed = await snapshotRoot(installedRoot, EXCLUDE);
      const clean = await snapshotRoot(template, EXCLUDE);
      expect(installed).not.toEqual(clean);
      // As for the install: the remove script's process group is journaled too.
      const commitAt = 1 + 2 * groups + 1 + 1;
      const lastWrite = commitAt + 1;
      for (let n = 1; n <= lastWrite + 1; n++) {
        // A copy of the installed root: its records are moved to the copy's path when read.
        const root = join(work, `uninstall-kill-${n}`);
        copyTree(installedRoot, root);
        const killed = clpctl(['--root', root, '--run-scripts-on-host', 'uninstall', 'CLP1251123'], {
          CLP_TEST_KILL_AT_STEP: String(n),
        });
        if (n <= lastWrite) expect(killed.signal, `kill point ${n}: ${killed.stderr}`).toBe('SIGKILL');
        else expect(killed.status, `no kill at ${n}: ${killed.stderr}`).toBe(0);
        const recovered = clpctl(['--root', root, 'recover']);
        expect(recovered.status, recovered.stderr).toBe(0);
        const list = JSON.parse(clpctl(['--root', root, '--json', 'list']).stdout) as Array<{ name: string }>;
        const snap = await snapshotRoot(root, EXCLUDE);
        if (n >= commitAt) {
          expect(snap, `uninstall kill point ${n} (past the commit point)`).toEqual(clean);
          expect(list).toEqual([]);
          if (withPacman) expect(await installedVersion(root)).toBe('1-1');
        } else {
          expect(snap, `uninstall kill point ${n} (before the commit point)`).toEqual(installed);
          expect(list.map((p) => p.name)).toEqual(['CLP1251123']);
          if (withPacman) expect(await installedVersion(root)).toBe('2-1');
        }
      }
    },
  );

  it.skipIf(process.getuid?.() !== 0)(
    'a failing install killed during its own rollback (at each journal write and each undone step) is rolled back by recover',
    async () => {
      const root0 = await makeRoot({
        'etc/app.conf': { content: 'config v1\n', mode: 0o640, uid: 33, gid: 33 },
      });
      const key = await trustedKey(root0);
      const failing = await buildPatch(
        join(work, 'failing'),
        {
          name: 'CLP1251124',
          actions: [
            fileAction('replace', '/etc/app.conf', 'payload/app.conf', 'config v2\n'),
            fileAction('add', '/opt/x/y/new.conf', 'payload/new.conf', 'new\n'),
            { type: 'script', when: 'post', path: 'fail.sh' },
          ],
          entries: {
            'payload/app.conf': 'config v2\n',
            'payload/new.conf': 'new\n',
            'fail.sh': '#!/bin/sh\nexit 4\n',
          },
        },
        key,
      );
      const before = await snapshotRoot(root0, EXCLUDE);
      // begin, run+done of the files, run of the script and its process group, then rollback and end.
      const writes = 7;
      for (let n = 1; n <= writes + 1; n++) {
        const root = join(work, `failing-kill-${n}`);
        copyTree(root0, root);
        const killed = clpctl(['--root', root, '--run-scripts-on-host', 'install', failing], {
          CLP_TEST_KILL_AT_STEP: String(n),
        });
        if (n <= writes) expect(killed.signal, `kill point ${n}: ${killed.stderr}`).toBe('SIGKILL');
        else expect(killed.stderr).toMatch(/^error CLP_E_SCRIPT_FAILED: fail.sh exited with status 4/);
        expect(clpctl(['--root', root, 'recover']).status).toBe(0);
        expect(await snapshotRoot(root, EXCLUDE), `kill point ${n}`).toEqual(before);
      }
      // Killed in the middle of the rollback itself, after each undone step (script, then each file).
      for (let n = 1; n <= 3; n++) {
        const root = join(work, `failing-undo-kill-${n}`);
        copyTree(root0, root);
        const killed = clpctl(['--root', root, '--run-scripts-on-host', 'install', failing], {
          CLP_TEST_KILL_AT_UNDO: String(n),
        });
        expect(killed.signal, `undo kill point ${n}: ${killed.stderr}`).toBe('SIGKILL');
        expect(await readFile(join(root, 'var/lib/clp/journal'), 'utf8')).toMatch(/"t":"rollback"/);
        const recovered = clpctl(['--root', root, '--json', 'recover']);
        expect(recovered.status, recovered.stderr).toBe(0);
        expect(JSON.parse(recovered.stdout).action).toBe('rolled-back');
        expect(await snapshotRoot(root, EXCLUDE), `undo kill point ${n}`).toEqual(before);
      }
    },
  );
});

const withDpkg = hasTool('dpkg') && hasTool('dpkg-deb');
if (!withDpkg) console.warn('skipped: needs dpkg and dpkg-deb (the crash test with a dpkg package action)');

describe('crash at every journal step with a dpkg package action, then recover', () => {
  const DPKG_EXCLUDE = ['var/lib/clp', 'var/log/CLP.log', 'var/lib/dpkg', 'var/log/dpkg.log'];

  it.skipIf(process.getuid?.() !== 0 || !withDpkg)(
    'install: before up to the commit point, after past it, at every kill point',
    async () => {
      ensureBundle();
      const work = await tempDir('crash-dpkg');
      const template = await makeRoot({
        'etc/app.conf': { content: 'config v1\n', mode: 0o600, uid: 1, gid: 33 },
      });
      for (const d of ['info', 'updates', 'triggers']) {
        await mkdir(join(template, 'var/lib/dpkg', d), { recursive: true });
      }
      await writeFile(join(template, 'var/lib/dpkg/status'), '');
      await writeFile(join(template, 'var/lib/dpkg/available'), '');
      await mkdir(join(template, 'var/cache/apt/archives'), { recursive: true });
      const v1 = await makeDeb(work, 'clpdeb', '1.0-1', { 'usr/share/clpdeb/data': 'deb v1\n' });
      const v2 = await makeDeb(work, 'clpdeb', '2.0-1', { 'usr/share/clpdeb/data': 'deb v2\n' });
      await new DpkgManager(template).installFile(v1);
      await copyFile(v1, join(template, 'var/cache/apt/archives/clpdeb_1.0-1_all.deb'));
      const key = await trustedKey(template);
      const patch = await buildPatch(
        work,
        {
          name: 'CLP1251125',
          actions: [
            fileAction('replace', '/etc/app.conf', 'payload/app.conf', 'config v2\n'),
            {
              type: 'package',
              action: 'set-version',
              name: 'clpdeb',
              version: '2.0-1',
              source: 'packages/clpdeb.deb',
            },
            { type: 'script', when: 'post', path: 'post.sh' },
          ],
          entries: {
            'payload/app.conf': 'config v2\n',
            'packages/clpdeb.deb': { file: v2 },
            'post.sh': '#!/bin/sh\ntest -f "$CLP_ROOT/usr/share/clpdeb/data"\n',
          },
        },
        key,
      );
      const version = (root: string) => new DpkgManager(root).installedVersion('clpdeb');
      const before = await snapshotRoot(template, DPKG_EXCLUDE);
      const reference = join(work, 'reference');
      copyTree(template, reference);
      expect(clpctl(['--root', reference, '--run-scripts-on-host', 'install', patch]).status).toBe(0);
      const after = await snapshotRoot(reference, DPKG_EXCLUDE);
      expect(after).not.toEqual(before);

      const groups = 3; // files, package, script
      // begin, run and done of each group, the script's process group, commit.
      const commitAt = 1 + 2 * groups + 1 + 1;
      for (let n = 1; n <= commitAt + 2; n++) {
        const root = join(work, `kill-${n}`);
        copyTree(template, root);
        const killed = clpctl(['--root', root, '--run-scripts-on-host', 'install', patch], {
          CLP_TEST_KILL_AT_STEP: String(n),
        });
        if (n <= commitAt + 1) expect(killed.signal, `kill point ${n}: ${killed.stderr}`).toBe('SIGKILL');
        else expect(killed.status, killed.stderr).toBe(0);
        expect(clpctl(['--root', root, 'recover']).status).toBe(0);
        const snap = await snapshotRoot(root, DPKG_EXCLUDE);
        if (n >= commitAt) {
          expect(snap, `kill point ${n} (past the commit point)`).toEqual(after);
          expect(await version(root)).toBe('2.0-1');
        } else {
          expect(snap, `kill point ${n} (before the commit point)`).toEqual(before);
          expect(await version(root)).toBe('1.0-1');
        }
      }
    },
  );
});
