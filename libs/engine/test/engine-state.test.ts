/** Package steps inside a patch, a failing package manager, the state lock and a damaged journal. */
import { spawn } from 'node:child_process';
import { copyFile, mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { explainPatch, installPatch, listInstalled, recover, uninstallPatch } from '../src/index.ts';
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

interface Failure extends Error {
  code: string;
}

async function failureOf(p: Promise<unknown>): Promise<Failure> {
  try {
    await p;
  } catch (error) {
    return error as Failure;
  }
  throw new Error('expected a failure');
}

const withPacman = hasTool('pacman') && hasTool('bsdtar');
if (!withPacman) console.warn('skipped: needs pacman and bsdtar (package actions inside a patch)');
const EXCLUDE = ['var/lib/clp', 'var/log/CLP.log', 'var/lib/pacman', 'var/log/pacman.log'];

describe('package actions in a patch (pacman in a temporary root)', () => {
  let work: string;
  beforeAll(async () => {
    work = await tempDir('pkg-patch');
  });

  async function pacmanRoot(): Promise<string> {
    const root = await makeRoot({ 'etc/app.conf': 'v1\n' });
    await mkdir(join(root, 'var/lib/pacman'), { recursive: true });
    await mkdir(join(root, 'var/cache/pacman/pkg'), { recursive: true });
    return root;
  }

  it.skipIf(!withPacman)(
    'installs a package from the patch with the files, and uninstall removes it again',
    async () => {
      const root = await pacmanRoot();
      const key = await trustedKey(root);
      const pkg = await makePacmanPackage(work, 'clpnew', '3-1', { 'usr/share/clpnew/data': 'data\n' });
      const before = await snapshotRoot(root, EXCLUDE);
      const file = await buildPatch(
        work,
        {
          name: 'CLP1251110',
          actions: [
            fileAction('replace', '/etc/app.conf', 'payload/app.conf', 'v2\n', {
              expectSha256: sha256('v1\n'),
            }),
            {
              type: 'package',
              action: 'set-version',
              name: 'clpnew',
              version: '3-1',
              source: 'packages/clpnew.pkg.tar.zst',
            },
          ],
          entries: { 'payload/app.conf': 'v2\n', 'packages/clpnew.pkg.tar.zst': { file: pkg } },
        },
        key,
      );
      const result = await installPatch(file, { root, packageManager: 'pacman' });
      expect(result.steps.map((s) => s.description)).toEqual([
        'replace /etc/app.conf',
        'set package clpnew (not installed) -> 3-1 (pacman)',
      ]);
      expect(await new PacmanManager(root).installedVersion('clpnew')).toBe('3-1');
      expect(await readFile(join(root, 'usr/share/clpnew/data'), 'utf8')).toBe('data\n');
      await uninstallPatch('CLP1251110', { root });
      expect(await new PacmanManager(root).installedVersion('clpnew')).toBeNull();
      expect(await snapshotRoot(root, EXCLUDE)).toEqual(before);
    },
  );

  it.skipIf(!withPacman)(
    'explain names a package that can be found nowhere, with the other refusals',
    async () => {
      const root = await pacmanRoot();
      const key = await trustedKey(root);
      const file = await buildPatch(
        work,
        {
          name: 'CLP1251113',
          actions: [
            fileAction('replace', '/etc/app.conf', 'payload/app.conf', 'v2\n', {
              expectSha256: sha256('v0\n'),
            }),
            { type: 'package', action: 'set-version', name: 'clpnowhere', version: '9-1' },
          ],
          entries: { 'payload/app.conf': 'v2\n' },
        },
        key,
      );
      const e = await explainPatch(file, { root, packageManager: 'pacman' });
      expect(e.refusals.map((r) => `${r.rule}:${r.code}`)).toEqual([
        'precondition:CLP_E_PRECONDITION',
        'package:CLP_E_PACKAGE_NOT_FOUND',
      ]);
    },
  );

  it.skipIf(!withPacman)('a failing package manager rolls the files back and names the cause', async () => {
    const root = await pacmanRoot();
    const key = await trustedKey(root);
    // A file no package owns is in the way: pacman refuses to overwrite it.
    await mkdir(join(root, 'usr/share/clpclash'), { recursive: true });
    await writeFile(join(root, 'usr/share/clpclash/data'), 'not from a package\n');
    const pkg = await makePacmanPackage(work, 'clpclash', '1-1', { 'usr/share/clpclash/data': 'packaged\n' });
    const file = await buildPatch(
      work,
      {
        name: 'CLP1251111',
        actions: [
          fileAction('replace', '/etc/app.conf', 'payload/app.conf', 'v2\n'),
          {
            type: 'package',
            action: 'set-version',
            name: 'clpclash',
            version: '1-1',
            source: 'packages/clpclash.pkg.tar.zst',
          },
        ],
        entries: { 'payload/app.conf': 'v2\n', 'packages/clpclash.pkg.tar.zst': { file: pkg } },
      },
      key,
    );
    const before = await snapshotRoot(root, EXCLUDE);
    const error = await failureOf(installPatch(file, { root, packageManager: 'pacman' }));
    expect(error.code).toBe('CLP_E_PACKAGE_MANAGER_FAILED');
    expect(error.message).toMatch(/exists in filesystem/);
    expect(await snapshotRoot(root, EXCLUDE)).toEqual(before);
    expect(await listInstalled({ root })).toEqual([]);
  });
});

const withDpkg = hasTool('dpkg') && hasTool('dpkg-deb');
if (!withDpkg) console.warn('skipped: needs dpkg and dpkg-deb (a dpkg package action inside a patch)');

describe('package actions in a patch (dpkg in a temporary root)', () => {
  it.skipIf(!withDpkg)(
    'detects dpkg from os-release, upgrades with the previous .deb kept, and uninstall puts it back',
    async () => {
      const work = await tempDir('deb-patch');
      const root = await makeRoot({ 'etc/app.conf': 'v1\n' });
      for (const d of ['info', 'updates', 'triggers'])
        await mkdir(join(root, 'var/lib/dpkg', d), { recursive: true });
      await writeFile(join(root, 'var/lib/dpkg/status'), '');
      await writeFile(join(root, 'var/lib/dpkg/available'), '');
      await mkdir(join(root, 'var/cache/apt/archives'), { recursive: true });
      const key = await trustedKey(root);
      const v1 = await makeDeb(work, 'clpdeb', '1.0-1', { 'usr/share/clpdeb/data': 'deb v1\n' });
      const v2 = await makeDeb(work, 'clpdeb', '2.0-1', { 'usr/share/clpdeb/data': 'deb v2\n' });
      const dpkg = new DpkgManager(root);
      await dpkg.installFile(v1);
      await copyFile(v1, join(root, 'var/cache/apt/archives/clpdeb_1.0-1_all.deb'));
      const before = await snapshotRoot(root, [...EXCLUDE, 'var/lib/dpkg', 'var/log/dpkg.log']);
      const file = await buildPatch(
        work,
        {
          name: 'CLP1251112',
          actions: [
            {
              type: 'package',
              action: 'set-version',
              name: 'clpdeb',
              version: '2.0-1',
              source: 'packages/clpdeb.deb',
            },
          ],
          entries: { 'packages/clpdeb.deb': { file: v2 } },
        },
        key,
      );
      const result = await installPatch(file, { root });
      expect(result.steps.map((s) => s.description)).toEqual(['set package clpdeb 1.0-1 -> 2.0-1 (dpkg)']);
      expect(await dpkg.installedVersion('clpdeb')).toBe('2.0-1');
      expect(await readFile(join(root, 'usr/share/clpdeb/data'), 'utf8')).toBe('deb v2\n');
      await uninstallPatch('CLP1251112', { root });
      expect(await dpkg.installedVersion('clpdeb')).toBe('1.0-1');
      expect(await snapshotRoot(root, [...EXCLUDE, 'var/lib/dpkg', 'var/log/dpkg.log'])).toEqual(before);
    },
  );
});

describe('state lock and journal', () => {
  it('a process holding the kernel lock stops another command with CLP_E_BUSY; the lock dies with its holder, whatever the lock file says', async () => {
    const root = await makeRoot();
    const lock = join(root, 'var/lib/clp/lock');
    // A pid that looks alive in the lock file means nothing: only the kernel's flock counts.
    await writeFile(lock, `${process.pid}\n`);
    expect(await listInstalled({ root })).toEqual([]);
    // util-linux flock holds the lock itself (-o: the shell it starts does not inherit it).
    const holder = spawn('flock', ['-o', lock, '-c', 'echo held; exec sleep 30'], {
      stdio: ['ignore', 'pipe', 'ignore'],
      detached: true,
    });
    try {
      await new Promise<void>((resolve) => holder.stdout?.once('data', () => resolve()));
      const error = await failureOf(listInstalled({ root }));
      expect(error.code).toBe('CLP_E_BUSY');
      expect(error.message).toContain(lock);
      // An empty lock file (as a holder leaves it before it writes its pid) is no invitation either.
      await writeFile(lock, '');
      expect((await failureOf(recover({ root }))).code).toBe('CLP_E_BUSY');
    } finally {
      process.kill(-(holder.pid as number), 'SIGKILL');
    }
    await new Promise((r) => holder.once('exit', r));
    expect(await listInstalled({ root })).toEqual([]);
  });

  it('without flock(1) on PATH, a command says that flock is missing (CLP_E_TOOL_MISSING, exit 5) and does nothing', async () => {
    ensureBundle();
    const root = await makeRoot();
    const bare = await tempDir('no-flock-path');
    const before = await snapshotRoot(root, ['var/lib/clp/lock']);
    for (const command of [['status'], ['recover']]) {
      const r = clpctl(['--root', root, ...command], { PATH: bare });
      expect(r.stderr).toMatch(/^error CLP_E_TOOL_MISSING: .*flock \(util-linux\).*install util-linux/m);
      expect(r.stderr).toContain(join(root, 'var/lib/clp/lock'));
      expect(r.stderr).not.toMatch(/\n\s+at /);
      expect(r.status).toBe(5);
    }
    expect(await snapshotRoot(root, ['var/lib/clp/lock'])).toEqual(before);
  });

  it('a journal damaged in the middle is reported, not guessed at; a torn last line is ignored', async () => {
    const root = await makeRoot();
    const begin = JSON.stringify({
      t: 'begin',
      tx: 'x1',
      op: 'install',
      at: 'now',
      steps: [],
      info: { patch: { name: 'CLP1251123' } },
    });
    await writeFile(
      join(root, 'var/lib/clp/journal'),
      `${begin}\n{"t":"run","ste\n{"t":"done","steps":[]}\n`,
    );
    const error = await failureOf(recover({ root }));
    expect(error.code).toBe('CLP_E_JOURNAL_CORRUPT');
    expect(error.message).toMatch(/damaged at line 2/);
    await writeFile(join(root, 'var/lib/clp/journal'), `${begin}\n{"t":"run","ste`);
    expect(await recover({ root })).toMatchObject({ action: 'rolled-back', patch: 'CLP1251123' });
  });
});
