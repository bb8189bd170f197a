import { copyFile, mkdir, readdir, readFile, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { readHistory, recover } from '../src/index.ts';
import { Journal } from '../src/journal.ts';
import { DpkgManager } from '../src/package-managers/dpkg.ts';
import type { PackageManager } from '../src/package-managers/package-manager.ts';
import { preparePackageStep } from '../src/package-managers/package-step.ts';
import { PacmanManager } from '../src/package-managers/pacman.ts';
import { revertPackage } from '../src/pkg-revert.ts';
import { txDirOf } from '../src/transaction.ts';
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
      expect(result.keptFile?.startsWith(join(stateDir(), 'packages/tool/'))).toBe(true);
      expect((await stat(result.keptFile as string)).isFile()).toBe(true);
      expect(await pm.installedVersion('tool')).toBe('1.0-1');
      expect(await readFile(join(root, 'usr/share/tool/version'), 'utf8')).toBe('1\n');

      const back = await revertPackage({ root, name: 'tool', version: '2.0-1', packageManager: driver.kind });
      expect(back).toMatchObject({ changed: true, fromVersion: '1.0-1' });
      expect(await pm.installedVersion('tool')).toBe('2.0-1');
      expect(await readFile(join(root, 'usr/share/tool/extra'), 'utf8')).toBe('x\n');

      const lines = (await readFile(join(stateDir(), 'packages/reverts.jsonl'), 'utf8')).trim().split('\n');
      expect(lines.map((l) => JSON.parse(l).toVersion)).toEqual(['1.0-1', '2.0-1']);
      // Each revert is a transaction of its own, in the history; only the last one's kept file stays.
      const history = await readHistory({ root });
      expect(history.map((h) => [h.op, h.name, h.result, h.message])).toEqual([
        ['pkg-revert', 'tool', 'installed', `tool 2.0-1 -> 1.0-1 (${driver.kind})`],
        ['pkg-revert', 'tool', 'installed', `tool 1.0-1 -> 2.0-1 (${driver.kind})`],
      ]);
      expect((await readdir(join(stateDir(), 'packages'))).sort()).toEqual(['reverts.jsonl', 'tool']);
      expect(back.keptFile?.startsWith(join(stateDir(), 'packages/tool/'))).toBe(true);
      expect(await pm.inspectFile(back.keptFile as string)).toMatchObject({ version: '1.0-1' });
      await expect(stat(result.keptFile as string)).rejects.toMatchObject({ code: 'ENOENT' });
      expect(await readdir(join(stateDir(), 'tx')).catch(() => [])).toEqual([]);
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

    it('a version without its release number is the one cached version with it, and several are listed to choose from', async () => {
      await toCache(v1);
      await toCache(v2);
      await pm.installFile(v2);
      const result = await revertPackage({ root, name: 'tool', version: '1.0', packageManager: driver.kind });
      expect(result).toMatchObject({ changed: true, toVersion: '1.0-1', origin: 'cache' });
      expect(await pm.installedVersion('tool')).toBe('1.0-1');
      await toCache(await driver.makePackage(work, 'tool', '1.0-2', V1));
      const several = await revertPackage({
        root,
        name: 'tool',
        version: '1.0',
        packageManager: driver.kind,
      }).catch((e: unknown) => e);
      expect(several).toMatchObject({
        code: 'CLP_E_PACKAGE_AMBIGUOUS',
        details: { candidates: ['1.0-1', '1.0-2'] },
      });
      expect((several as Error).message).toMatch(/1\.0-1, 1\.0-2/);
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
      await expect(readFile(join(stateDir(), 'journal'))).rejects.toMatchObject({ code: 'ENOENT' });
      expect((await readHistory({ root })).at(-1)).toMatchObject({
        op: 'pkg-revert',
        result: 'rolled-back',
        code: 'CLP_E_PACKAGE_MANAGER_FAILED',
      });
    });

    it('a pkg revert interrupted after its package manager ran is rolled back by recover, from the journal', async () => {
      await toCache(v1);
      await toCache(v2);
      await pm.installFile(v1);
      // What a kill -9 between the package manager's end and the commit point leaves: the journal
      // of the pkg-revert transaction with its step run, and the new version installed.
      const tx = 'killed-revert';
      const txDir = txDirOf(stateDir(), tx);
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
      const journal = await Journal.create(stateDir(), {
        t: 'begin',
        tx,
        op: 'pkg-revert',
        at: new Date().toISOString(),
        steps: [step.record],
        info: { patch: { name: 'tool' }, root },
      });
      await journal.append({ t: 'run', steps: [0] });
      await step.run();
      await journal.append({ t: 'done', steps: [0] });
      await journal.close();
      expect(await pm.installedVersion('tool')).toBe('2.0-1');

      expect(await recover({ root })).toMatchObject({
        action: 'rolled-back',
        op: 'pkg-revert',
        patch: 'tool',
      });
      expect(await pm.installedVersion('tool')).toBe('1.0-1');
      expect(await readFile(join(root, 'usr/share/tool/version'), 'utf8')).toBe('1\n');
      await expect(stat(txDir)).rejects.toMatchObject({ code: 'ENOENT' });
      expect((await readHistory({ root })).at(-1)).toMatchObject({
        op: 'recover',
        name: 'tool',
        result: 'rolled-back',
        message: 'interrupted pkg-revert rolled back',
      });
      expect(await recover({ root })).toMatchObject({ action: 'nothing' });
    });
  });
}
