/**
 * Uninstalling a patch's package step: it depends only on package files clp keeps itself, and it
 * puts the old version back the way the package manager would, never over a file it does not own.
 */
import { mkdir, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { installPatch, listInstalled, uninstallPatch } from '../src/index.ts';
import { DpkgManager } from '../src/package-managers/dpkg.ts';
import type { PackageManager } from '../src/package-managers/package-manager.ts';
import { PacmanManager } from '../src/package-managers/pacman.ts';
import { buildPatch, fileAction, makeRoot, snapshotRoot, tempDir, trustedKey } from './engine-fixtures.ts';
import { hasTool, makeDeb, makePacmanPackage, type PackageFiles } from './package-fixtures.ts';
import { clpctl, ensureBundle } from './run-clpctl.ts';

interface Driver {
  kind: 'pacman' | 'dpkg';
  tools: string[];
  osRelease: string;
  exclude: string[];
  prepare(root: string): Promise<void>;
  makePackage(out: string, version: string, files: PackageFiles): Promise<string>;
  manager(root: string): PackageManager;
}

const drivers: Driver[] = [
  {
    kind: 'pacman',
    tools: ['pacman', 'bsdtar'],
    osRelease: 'ID=arch\n',
    exclude: ['var/lib/clp', 'var/log/CLP.log', 'var/lib/pacman', 'var/log/pacman.log'],
    prepare: (root) => mkdir(join(root, 'var/lib/pacman'), { recursive: true }).then(() => {}),
    makePackage: (out, version, files) => makePacmanPackage(out, 'demo', version, files),
    manager: (root) => new PacmanManager(root),
  },
  {
    kind: 'dpkg',
    tools: ['dpkg', 'dpkg-deb'],
    osRelease: 'ID=debian\n',
    exclude: ['var/lib/clp', 'var/log/CLP.log', 'var/lib/dpkg', 'var/log/dpkg.log'],
    async prepare(root) {
      for (const d of ['info', 'updates', 'triggers'])
        await mkdir(join(root, 'var/lib/dpkg', d), { recursive: true });
      await writeFile(join(root, 'var/lib/dpkg/status'), '');
      await writeFile(join(root, 'var/lib/dpkg/available'), '');
    },
    makePackage: (out, version, files) => makeDeb(out, 'demo', version, files),
    manager: (root) => new DpkgManager(root),
  },
];

const V1: PackageFiles = { 'usr/share/demo/data': 'v1\n', 'usr/share/demo/legacy': 'only v1 has it\n' };
const V2: PackageFiles = { 'usr/share/demo/data': 'v2\n' };

for (const driver of drivers) {
  const missing = driver.tools.filter((t) => !hasTool(t));
  if (missing.length > 0)
    console.warn(`skipped: needs ${missing.join(', ')} (${driver.kind} uninstall tests)`);

  describe.skipIf(missing.length > 0)(`uninstalling a ${driver.kind} package step`, () => {
    /** A root with demo 1.0-1 installed, both versions in the package cache, and a patch that sets 2.0-1 from the cache. */
    async function setup() {
      const work = await tempDir(`${driver.kind}-uninstall`);
      const root = await makeRoot({ 'etc/app.conf': 'v1\n' });
      await writeFile(join(root, 'etc/os-release'), driver.osRelease);
      await driver.prepare(root);
      const pm = driver.manager(root);
      const v1 = await driver.makePackage(work, '1.0-1', V1);
      const v2 = await driver.makePackage(work, '2.0-1', V2);
      await pm.installFile(v1);
      await mkdir(pm.cacheDir, { recursive: true });
      for (const f of [v1, v2])
        await writeFile(join(pm.cacheDir, f.split('/').pop() as string), await readFile(f));
      const key = await trustedKey(root);
      const patch = await buildPatch(
        work,
        {
          name: 'CLP1251129',
          actions: [
            fileAction('replace', '/etc/app.conf', 'payload/app.conf', 'v2\n'),
            { type: 'package', action: 'set-version', name: 'demo', version: '2.0-1' },
          ],
          entries: { 'payload/app.conf': 'v2\n' },
        },
        key,
      );
      return { root, pm, patch };
    }

    it('needs no package cache: with the cache cleaned, an uninstall killed after its package step is rolled back by recover from the files clp kept', async () => {
      ensureBundle();
      const { root, pm, patch } = await setup();
      expect(clpctl(['--root', root, 'install', patch]).status).toBe(0);
      expect(await pm.installedVersion('demo')).toBe('2.0-1');
      const exclude = [...driver.exclude, 'var/cache'];
      const installed = await snapshotRoot(root, exclude);
      // `pacman -Scc`, `apt-get clean`: the cache belongs to the package manager, not to clp.
      for (const f of await readdir(pm.cacheDir)) await rm(join(pm.cacheDir, f));
      // begin, run and done of the files, run and done of the package: killed right after the package step.
      const killed = clpctl(['--root', root, 'uninstall', 'CLP1251129'], { CLP_TEST_KILL_AT_STEP: '5' });
      expect(killed.signal, killed.stderr).toBe('SIGKILL');
      expect(await pm.installedVersion('demo')).toBe('1.0-1');
      const recovered = clpctl(['--root', root, '--json', 'recover']);
      expect(recovered.status, recovered.stderr).toBe(0);
      expect(JSON.parse(recovered.stdout)).toMatchObject({ action: 'rolled-back', op: 'uninstall' });
      expect(await pm.installedVersion('demo')).toBe('2.0-1');
      expect(await snapshotRoot(root, exclude)).toEqual(installed);
      expect((await listInstalled({ root })).map((p) => p.name)).toEqual(['CLP1251129']);
      // And the uninstall itself goes through without the cache too; the patch's kept files go with it.
      await uninstallPatch('CLP1251129', { root });
      expect(await pm.installedVersion('demo')).toBe('1.0-1');
      expect(await readFile(join(root, 'usr/share/demo/legacy'), 'utf8')).toBe('only v1 has it\n');
      expect(await readdir(join(root, 'var/lib/clp/patches')).catch(() => [])).toEqual([]);
    });

    if (driver.kind === 'pacman') {
      it('puts the old version back only where pacman would: a file the administrator put where the old version has one stops the uninstall, which is rolled back with the file intact', async () => {
        const { root, pm, patch } = await setup();
        await installPatch(patch, { root });
        await writeFile(join(root, 'usr/share/demo/legacy'), "the administrator's own\n");
        const before = await snapshotRoot(root, driver.exclude);
        const error = await uninstallPatch('CLP1251129', { root }).catch((e: unknown) => e);
        expect(error).toMatchObject({ code: 'CLP_E_PACKAGE_MANAGER_FAILED', details: { tool: 'pacman' } });
        expect((error as Error).message).toMatch(/usr\/share\/demo\/legacy exists in filesystem/);
        expect(await readFile(join(root, 'usr/share/demo/legacy'), 'utf8')).toBe("the administrator's own\n");
        expect(await pm.installedVersion('demo')).toBe('2.0-1');
        expect(await snapshotRoot(root, driver.exclude)).toEqual(before);
        expect((await listInstalled({ root })).map((p) => p.name)).toEqual(['CLP1251129']);
      });
    }
  });
}
