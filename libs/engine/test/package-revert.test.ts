import { copyFile, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { DpkgManager } from '../src/package-managers/dpkg.ts';
import type { PackageManager } from '../src/package-managers/package-manager.ts';
import { preparePackageStep } from '../src/package-managers/package-step.ts';
import { PacmanManager } from '../src/package-managers/pacman.ts';
import { finishInterruptedRevert, revertPackage } from '../src/package-managers/revert.ts';
import {
  hasTool,
  makeDeb,
  makeDpkgRoot,
  makePacmanPackage,
  makePacmanRoot,
  type PackageFiles,
  snapshot,
  tempDir,
} from './package-fixtures.ts';

interface Driver {
  kind: 'pacman' | 'dpkg';
  tools: string[];
  makeRoot(): Promise<string>;
  makePackage(outDir: string, name: string, version: string, files: PackageFiles): Promise<string>;
  manager(root: string): PackageManager;
}

const drivers: Driver[] = [
  {
    kind: 'pacman',
    tools: ['pacman', 'bsdtar'],
    makeRoot: makePacmanRoot,
    makePackage: (out, name, version, files) => makePacmanPackage(out, name, version, files),
    manager: (root) => new PacmanManager(root),
  },
  {
    kind: 'dpkg',
    tools: ['dpkg', 'dpkg-deb', 'dpkg-query'],
    makeRoot: makeDpkgRoot,
    makePackage: (out, name, version, files) => makeDeb(out, name, version, files),
    manager: (root) => new DpkgManager(root),
  },
];

const V1: PackageFiles = { 'usr/share/tool/version': '1\n' };
const V2: PackageFiles = { 'usr/share/tool/version': '2\n', 'usr/share/tool/extra': 'x\n' };

for (const driver of drivers) {
  const missing = driver.tools.filter((t) => !hasTool(t));
  if (missing.length > 0)
    console.warn(`skipped: needs ${missing.join(', ')} (${driver.kind} pkg revert tests)`);

  describe.skipIf(missing.length > 0)(`pkg revert with ${driver.kind}`, () => {
    let root: string;
    let work: string;
    let pm: PackageManager;
    let v1: string;
    let v2: string;
    const toCache = async (file: string) => {
      await mkdir(pm.cacheDir, { recursive: true });
      await copyFile(file, join(pm.cacheDir, file.split('/').pop() as string));
    };
    const stateDir = () => join(root, 'var/lib/clp');

    beforeEach(async () => {
      root = await driver.makeRoot();
      work = await tempDir(`${driver.kind}-revert`);
      pm = driver.manager(root);
      v1 = await driver.makePackage(work, 'tool', '1.0-1', V1);
      v2 = await driver.makePackage(work, 'tool', '2.0-1', V2);
    });
    afterEach(async () => {
      await rm(root, { recursive: true, force: true });
      await rm(work, { recursive: true, force: true });
    });

    it('sets the package to a cached version, keeps the previous one, and can go back to it', async () => {
      await toCache(v1);
      await toCache(v2);
      await pm.installFile(v2);
      const result = await revertPackage({
        root,
        name: 'tool',
        version: '1.0-1',
        packageManager: driver.kind,
      });
      expect(result).toMatchObject({
        changed: true,
        fromVersion: '2.0-1',
        toVersion: '1.0-1',
        origin: 'cache',
        packageManager: driver.kind,
      });
      expect(result.keptFile?.startsWith(join(stateDir(), 'packages'))).toBe(true);
      expect(await pm.installedVersion('tool')).toBe('1.0-1');
      expect(await readFile(join(root, 'usr/share/tool/version'), 'utf8')).toBe('1\n');

      const back = await revertPackage({ root, name: 'tool', version: '2.0-1', packageManager: driver.kind });
      expect(back).toMatchObject({ changed: true, fromVersion: '1.0-1' });
      expect(await pm.installedVersion('tool')).toBe('2.0-1');
      expect(await readFile(join(root, 'usr/share/tool/extra'), 'utf8')).toBe('x\n');

      const lines = (await readFile(join(stateDir(), 'packages/reverts.jsonl'), 'utf8')).trim().split('\n');
      expect(lines.map((l) => JSON.parse(l).toVersion)).toEqual(['1.0-1', '2.0-1']);
      expect(await readFile(join(root, 'var/log/CLP.log'), 'utf8')).toMatch(
        /pkg revert: tool is now at 1\.0-1/,
      );
    });

    it('installs a package file given with --file, from outside any cache', async () => {
      await toCache(v2);
      await pm.installFile(v2);
      const result = await revertPackage({
        root,
        name: 'tool',
        version: '1.0-1',
        packageManager: driver.kind,
        file: v1,
      });
      expect(result).toMatchObject({ changed: true, origin: 'file', packageFile: v1 });
      expect(await pm.installedVersion('tool')).toBe('1.0-1');
      const wrong = await revertPackage({
        root,
        name: 'tool',
        version: '3.0-1',
        packageManager: driver.kind,
        file: v2,
      }).catch((e: unknown) => e);
      expect(wrong).toMatchObject({ code: 'CLP_E_PACKAGE_MISMATCH' });
      expect(await pm.installedVersion('tool')).toBe('1.0-1');
    });

    it('a version already installed changes nothing', async () => {
      await toCache(v1);
      await pm.installFile(v1);
      const result = await revertPackage({
        root,
        name: 'tool',
        version: '1.0-1',
        packageManager: driver.kind,
      });
      expect(result).toMatchObject({ changed: false, keptFile: null });
    });

    it('a version in no cache is a coded error naming the cache and --file', async () => {
      await pm.installFile(v2);
      const error = await revertPackage({
        root,
        name: 'tool',
        version: '1.0-1',
        packageManager: driver.kind,
      }).catch((e: unknown) => e);
      expect(error).toMatchObject({ code: 'CLP_E_PACKAGE_NOT_FOUND' });
      expect((error as Error).message).toContain(pm.cacheDir);
      expect((error as Error).message).toContain('--file');
    });

    it('a package manager failure is rolled back and says which tool failed', async () => {
      await toCache(v1);
      await toCache(v2);
      await pm.installFile(v1);
      await pm.installFile(
        await driver.makePackage(work, 'other', '1.0-1', { 'usr/share/tool/extra': 'mine\n' }),
      );
      const before = await snapshot(root, ['usr']);
      const error = await revertPackage({
        root,
        name: 'tool',
        version: '2.0-1',
        packageManager: driver.kind,
      }).catch((e: unknown) => e);
      expect(error).toMatchObject({ code: 'CLP_E_PACKAGE_MANAGER_FAILED', details: { tool: driver.kind } });
      expect(await pm.installedVersion('tool')).toBe('1.0-1');
      expect(await snapshot(root, ['usr'])).toEqual(before);
      await expect(readFile(join(stateDir(), 'packages/pending.json'))).rejects.toThrow();
    });

    it('a revert interrupted after the package manager ran is undone by the next one', async () => {
      await toCache(v1);
      await toCache(v2);
      await pm.installFile(v1);
      // What a kill -9 right after the package manager finished leaves: the pending record and the new version.
      const txDir = join(stateDir(), 'packages', 'killed');
      const step = await preparePackageStep(
        { type: 'package', action: 'set-version', name: 'tool', version: '2.0-1' },
        {
          root,
          stateDir: stateDir(),
          txDir,
          log: () => {},
          patchDir: txDir,
          packageManager: pm,
          allowIrreversible: false,
        },
      );
      await writeFile(join(stateDir(), 'packages/pending.json'), JSON.stringify(step.record));
      await step.run();
      expect(await pm.installedVersion('tool')).toBe('2.0-1');

      expect(await finishInterruptedRevert({ root })).toMatch(/set package tool 1\.0-1 -> 2\.0-1/);
      expect(await pm.installedVersion('tool')).toBe('1.0-1');
      expect(await finishInterruptedRevert({ root })).toBeNull();
    });
  });
}
