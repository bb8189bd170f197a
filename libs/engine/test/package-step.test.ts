import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { copyFile, mkdir, readdir, readFile, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import type { PackageAction } from '@clp/format';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { DpkgManager } from '../src/package-managers/dpkg.ts';
import type { PackageManager } from '../src/package-managers/package-manager.ts';
import {
  type PackageStepContext,
  type PackageUndo,
  preparePackageStep,
  undoPackageStep,
} from '../src/package-managers/package-step.ts';
import { fnmatchRegExp, PacmanManager } from '../src/package-managers/pacman.ts';
import {
  hasTool,
  makeDeb,
  makeDpkgRoot,
  makePacmanPackage,
  makePacmanRoot,
  type PackageFiles,
  snapshot,
  tempDir,
  truncateTail,
} from './package-fixtures.ts';

interface Driver {
  kind: 'pacman' | 'dpkg';
  tools: string[];
  makeRoot(): Promise<string>;
  makePackage(outDir: string, name: string, version: string, files: PackageFiles): Promise<string>;
  cacheDir(root: string): string;
  manager(root: string): PackageManager;
}

const drivers: Driver[] = [
  {
    kind: 'pacman',
    tools: ['pacman', 'bsdtar'],
    makeRoot: makePacmanRoot,
    makePackage: (out, name, version, files) =>
      makePacmanPackage(out, name, version, files, {
        backup: 'etc/demo.conf' in files ? ['etc/demo.conf'] : [],
      }),
    cacheDir: (root) => join(root, 'var/cache/pacman/pkg'),
    manager: (root) => new PacmanManager(root),
  },
  {
    kind: 'dpkg',
    tools: ['dpkg', 'dpkg-deb', 'dpkg-query'],
    makeRoot: makeDpkgRoot,
    makePackage: (out, name, version, files) =>
      makeDeb(out, name, version, files, { conffiles: 'etc/demo.conf' in files ? ['/etc/demo.conf'] : [] }),
    cacheDir: (root) => join(root, 'var/cache/apt/archives'),
    manager: (root) => new DpkgManager(root),
  },
];

const V1: PackageFiles = {
  'etc/demo.conf': 'conf v1\n',
  'usr/share/demo/data': { content: 'data v1\n', mode: 0o640 },
};
const V2: PackageFiles = {
  'etc/demo.conf': 'conf v2\n',
  'usr/share/demo/data': 'data v2\n',
  'usr/share/demo/only-in-v2': 'new\n',
};

for (const driver of drivers) {
  const missing = driver.tools.filter((t) => !hasTool(t));
  if (missing.length > 0)
    console.warn(`skipped: needs ${missing.join(', ')} (${driver.kind} package step tests)`);

  describe.skipIf(missing.length > 0)(`package step with ${driver.kind}`, () => {
    let root: string;
    let work: string;
    let patchDir: string;
    let pm: PackageManager;
    let v1: string;
    let v2: string;
    const logs: string[] = [];

    const ctx = (extra: Partial<PackageStepContext> = {}): PackageStepContext => ({
      root,
      stateDir: join(root, 'var/lib/clp'),
      txDir: join(root, 'var/lib/clp/tx/1'),
      log: (line) => logs.push(line),
      patchDir,
      packageManager: pm,
      allowIrreversible: false,
      ...extra,
    });
    const action = (version: string, extra: Partial<PackageAction> = {}): PackageAction => ({
      type: 'package',
      action: 'set-version',
      name: 'demo',
      version,
      ...extra,
    });
    const read = (path: string) => readFile(join(root, path), 'utf8');
    const toCache = async (file: string) => {
      await mkdir(driver.cacheDir(root), { recursive: true });
      await copyFile(file, join(driver.cacheDir(root), file.split('/').pop() as string));
    };

    beforeEach(async () => {
      root = await driver.makeRoot();
      work = await tempDir(`${driver.kind}-work`);
      patchDir = join(work, 'patch');
      await mkdir(join(patchDir, 'payload'), { recursive: true });
      pm = driver.manager(root);
      v1 = await driver.makePackage(work, 'demo', '1.0-1', V1);
      v2 = await driver.makePackage(work, 'demo', '2.0-1', V2);
    });
    afterEach(async () => {
      await rm(root, { recursive: true, force: true });
      await rm(work, { recursive: true, force: true });
    });

    it('reads name, version and architecture from a package file', async () => {
      expect(await pm.inspectFile(v2)).toEqual({
        name: 'demo',
        version: '2.0-1',
        arch: driver.kind === 'pacman' ? 'any' : 'all',
      });
    });

    it('set-version installs v2 over v1, and undo brings v1 back in files and database', async () => {
      await toCache(v1);
      await pm.installFile(v1);
      await copyFile(v2, join(patchDir, 'payload/demo-v2'));
      const step = await preparePackageStep(action('2.0-1', { source: 'payload/demo-v2' }), ctx());
      const undo = step.record.undo as unknown as PackageUndo;
      expect(undo).toMatchObject({
        action: 'install',
        fromVersion: '1.0-1',
        toVersion: '2.0-1',
        origin: 'patch',
        packageManager: driver.kind,
      });
      expect(undo.keptFile?.startsWith(join(root, 'var/lib/clp/tx/1'))).toBe(true);
      expect(await pm.installedVersion('demo')).toBe('1.0-1');

      await step.run();
      expect(await pm.installedVersion('demo')).toBe('2.0-1');
      expect(await read('etc/demo.conf')).toBe('conf v2\n');
      expect(await read('usr/share/demo/only-in-v2')).toBe('new\n');

      await undoPackageStep(step.record, ctx());
      expect(await pm.installedVersion('demo')).toBe('1.0-1');
      expect(await read('etc/demo.conf')).toBe('conf v1\n');
      expect(await read('usr/share/demo/data')).toBe('data v1\n');
      expect((await stat(join(root, 'usr/share/demo/data'))).mode & 0o777).toBe(0o640);
      await expect(stat(join(root, 'usr/share/demo/only-in-v2'))).rejects.toThrow();
    });

    it('undo is idempotent: running it twice leaves v1 installed', async () => {
      await toCache(v1);
      await pm.installFile(v1);
      await copyFile(v2, join(patchDir, 'payload/demo-v2'));
      const step = await preparePackageStep(action('2.0-1', { source: 'payload/demo-v2' }), ctx());
      await step.run();
      await undoPackageStep(step.record, ctx());
      const before = await snapshot(root, ['etc', 'usr']);
      await undoPackageStep(step.record, ctx());
      expect(await pm.installedVersion('demo')).toBe('1.0-1');
      expect(await snapshot(root, ['etc', 'usr'])).toEqual(before);
    });

    it('undo works from the record alone, with a new package manager object', async () => {
      await toCache(v1);
      await pm.installFile(v1);
      await copyFile(v2, join(patchDir, 'payload/demo-v2'));
      const step = await preparePackageStep(action('2.0-1', { source: 'payload/demo-v2' }), ctx());
      await step.run();
      const record = JSON.parse(JSON.stringify(step.record));
      await undoPackageStep(record, {
        root,
        stateDir: join(root, 'var/lib/clp'),
        txDir: join(root, 'var/lib/clp/tx/1'),
        log: () => {},
      });
      expect(await pm.installedVersion('demo')).toBe('1.0-1');
    });

    it('downgrades from the package cache when the patch carries no file', async () => {
      await toCache(v1);
      await toCache(v2);
      await pm.installFile(v2);
      const step = await preparePackageStep(action('1.0-1'), ctx());
      expect(step.record.undo).toMatchObject({ origin: 'cache', action: 'install', fromVersion: '2.0-1' });
      await step.run();
      expect(await pm.installedVersion('demo')).toBe('1.0-1');
      expect(await read('etc/demo.conf')).toBe('conf v1\n');
      await undoPackageStep(step.record, ctx());
      expect(await pm.installedVersion('demo')).toBe('2.0-1');
    });

    describe('package files reached through a link', () => {
      /** A link in the cache named as v1's file, pointing at v1 outside the root. */
      const linkInCache = async (file: string) => {
        await mkdir(driver.cacheDir(root), { recursive: true });
        const at = join(driver.cacheDir(root), file.split('/').pop() as string);
        await symlink(file, at);
        return at;
      };
      const expectRefused = async (p: Promise<unknown>, path: string) => {
        const error = (await p.then(
          () => null,
          (e: unknown) => e,
        )) as { code?: string; message?: string } | null;
        expect(error?.code, error?.message).toBe('CLP_E_LINK_REFUSED');
        expect(error?.message).toContain(path);
      };

      it('a cached package file that is a link to a file outside the root is refused, never copied or installed', async () => {
        await pm.installFile(v2);
        const before = await snapshot(root, ['etc', 'usr']);
        const link = await linkInCache(v1);
        const outside = await readFile(v1);
        await expectRefused(preparePackageStep(action('1.0-1'), ctx()), link);
        await expectRefused(pm.cachedVersions('demo'), link);
        expect(await pm.installedVersion('demo')).toBe('2.0-1');
        expect(await snapshot(root, ['etc', 'usr'])).toEqual(before);
        expect(await readFile(v1)).toEqual(outside);
      });

      it('the installed version is not kept from a cached file that is a link', async () => {
        await pm.installFile(v1);
        const link = await linkInCache(v1);
        await copyFile(v2, join(patchDir, 'payload/demo.pkg'));
        await expectRefused(preparePackageStep(action('2.0-1', { source: 'payload/demo.pkg' }), ctx()), link);
        expect(await pm.installedVersion('demo')).toBe('1.0-1');
      });

      it('undo refuses a kept package file that was replaced by a link since, and installs nothing through it', async () => {
        await pm.installFile(v1);
        await toCache(v1);
        await copyFile(v2, join(patchDir, 'payload/demo.pkg'));
        const step = await preparePackageStep(action('2.0-1', { source: 'payload/demo.pkg' }), ctx());
        await step.run();
        const kept = (step.record.undo as unknown as PackageUndo).keptFile as string;
        expect(kept.startsWith(join(root, 'var/lib/clp/tx/1/'))).toBe(true);
        await rm(kept);
        await symlink(v1, kept);
        await expectRefused(undoPackageStep(step.record, ctx()), kept);
        expect(await pm.installedVersion('demo')).toBe('2.0-1');
      });
    });

    it('a package that was not installed is removed again by undo', async () => {
      await copyFile(v1, join(patchDir, 'payload/demo'));
      const step = await preparePackageStep(action('1.0-1', { source: 'payload/demo' }), ctx());
      expect(step.record.undo).toMatchObject({ action: 'remove', fromVersion: null });
      await step.run();
      expect(await pm.installedVersion('demo')).toBe('1.0-1');
      await undoPackageStep(step.record, ctx());
      expect(await pm.installedVersion('demo')).toBeNull();
      await expect(stat(join(root, 'usr/share/demo/data'))).rejects.toThrow();
    });

    it('a package already at the wanted version is a step that changes nothing', async () => {
      await pm.installFile(v1);
      await toCache(v1);
      const step = await preparePackageStep(action('1.0-1'), ctx());
      expect(step.record.undo).toMatchObject({ action: 'none' });
      const before = await snapshot(root, ['etc', 'usr', 'var/lib']);
      await step.run();
      await undoPackageStep(step.record, ctx());
      expect(await snapshot(root, ['etc', 'usr', 'var/lib'])).toEqual(before);
    });

    it('refuses a package file whose version differs from the action', async () => {
      await copyFile(v2, join(patchDir, 'payload/demo'));
      const error = await preparePackageStep(action('3.0-1', { source: 'payload/demo' }), ctx()).catch(
        (e: unknown) => e,
      );
      expect(error).toMatchObject({ code: 'CLP_E_PACKAGE_MISMATCH' });
    });

    it('says when no package file can be found anywhere', async () => {
      const error = await preparePackageStep(action('9.9-1'), ctx()).catch((e: unknown) => e);
      expect(error).toMatchObject({ code: 'CLP_E_PACKAGE_NOT_FOUND' });
    });

    it('a corrupt package file fails with the tool named and its stderr, and leaves the root as it was', async () => {
      await toCache(v1);
      await pm.installFile(v1);
      const corrupt = join(patchDir, 'payload/demo-v2');
      await copyFile(v2, corrupt);
      await truncateTail(corrupt, 40);
      const before = await snapshot(root, ['etc', 'usr']);
      // Depending on where the damage is, the tool notices it while reading the header (prepare) or while installing (run).
      const error = await preparePackageStep(action('2.0-1', { source: 'payload/demo-v2' }), ctx())
        .then(async (step) => {
          const failed = await step.run().catch((e: unknown) => e);
          await undoPackageStep(step.record, ctx());
          return failed;
        })
        .catch((e: unknown) => e);
      expect(error).toMatchObject({ code: 'CLP_E_PACKAGE_MANAGER_FAILED' });
      const details = (error as { details: { tool: string; stderrTail: string } }).details;
      expect(['pacman', 'bsdtar', 'dpkg', 'dpkg-deb']).toContain(details.tool);
      expect(details.stderrTail).not.toBe('');
      expect((error as Error).message).toContain(details.tool);
      expect(await pm.installedVersion('demo')).toBe('1.0-1');
      expect(await snapshot(root, ['etc', 'usr'])).toEqual(before);
    });

    it('a package manager refusing the install (file owned by another package) is rolled back by undo', async () => {
      await toCache(v1);
      await pm.installFile(v1);
      await pm.installFile(
        await driver.makePackage(work, 'other', '1.0-1', { 'usr/share/demo/only-in-v2': 'owned by other\n' }),
      );
      await copyFile(v2, join(patchDir, 'payload/demo-v2'));
      const before = await snapshot(root, ['etc', 'usr']);
      const step = await preparePackageStep(action('2.0-1', { source: 'payload/demo-v2' }), ctx());
      const error = await step.run().catch((e: unknown) => e);
      expect(error).toMatchObject({ code: 'CLP_E_PACKAGE_MANAGER_FAILED', details: { tool: driver.kind } });
      expect((error as Error).message).toMatch(/only-in-v2/);
      await undoPackageStep(step.record, ctx());
      expect(await pm.installedVersion('demo')).toBe('1.0-1');
      expect(await pm.installedVersion('other')).toBe('1.0-1');
      expect(await snapshot(root, ['etc', 'usr'])).toEqual(before);
    });

    it('refuses a package file in the patch whose sha256 differs from the action', async () => {
      await copyFile(v2, join(patchDir, 'payload/demo'));
      const error = await preparePackageStep(
        action('2.0-1', { source: 'payload/demo', sha256: 'a'.repeat(64) }),
        ctx(),
      ).catch((e: unknown) => e);
      expect(error).toMatchObject({ code: 'CLP_E_PACKAGE_HASH_MISMATCH' });
    });

    it('rebuilds the previous version from the package database when the cache has no file of it', async () => {
      await pm.installFile(v1);
      await copyFile(v2, join(patchDir, 'payload/demo-v2'));
      await writeFile(join(root, 'etc/demo.conf'), 'conf edited by the admin\n');
      const step = await preparePackageStep(action('2.0-1', { source: 'payload/demo-v2' }), ctx());
      expect(step.record.undo).toMatchObject({ action: 'install', fromVersion: '1.0-1' });
      const kept = (step.record.undo as unknown as PackageUndo).keptFile as string;
      expect(await pm.inspectFile(kept)).toMatchObject({ name: 'demo', version: '1.0-1' });
      await step.run();
      await undoPackageStep(step.record, ctx());
      expect(await pm.installedVersion('demo')).toBe('1.0-1');
      expect(await read('usr/share/demo/data')).toBe('data v1\n');
      expect((await stat(join(root, 'usr/share/demo/data'))).mode & 0o777).toBe(0o640);
      await expect(stat(join(root, 'usr/share/demo/only-in-v2'))).rejects.toThrow();
      // The configuration file comes back as the administrator left it.
      expect(await read('etc/demo.conf')).toBe('conf edited by the admin\n');
    });

    it('refuses when the previous version can be neither found nor rebuilt, unless allowed as irreversible', async () => {
      await pm.installFile(v1);
      await rm(join(root, 'usr/share/demo/data'));
      await copyFile(v2, join(patchDir, 'payload/demo-v2'));
      const act = action('2.0-1', { source: 'payload/demo-v2' });
      const refused = await preparePackageStep(act, ctx()).catch((e: unknown) => e);
      expect(refused).toMatchObject({ code: 'CLP_E_PACKAGE_IRREVERSIBLE' });
      expect(await pm.installedVersion('demo')).toBe('1.0-1');
      const step = await preparePackageStep(act, ctx({ allowIrreversible: true }));
      expect(step.record.undo).toMatchObject({ action: 'irreversible', keptFile: null });
      await step.run();
      expect(await pm.installedVersion('demo')).toBe('2.0-1');
      const error = await undoPackageStep(step.record, ctx()).catch((e: unknown) => e);
      expect(error).toMatchObject({ code: 'CLP_E_PACKAGE_IRREVERSIBLE' });
    });

    if (driver.kind === 'pacman') {
      it('an entry with desc but no files (pacman killed between the two) and the lock it left are repaired by undo', async () => {
        await pm.installFile(v1);
        await copyFile(v2, join(patchDir, 'payload/demo-v2'));
        const step = await preparePackageStep(action('2.0-1', { source: 'payload/demo-v2' }), ctx());
        await step.run();
        // What a kill -9 right after pacman wrote desc leaves: no files list yet, and its db.lck.
        await rm(join(root, 'var/lib/pacman/local/demo-2.0-1/files'));
        await writeFile(join(root, 'var/lib/pacman/db.lck'), '');
        expect(await pm.problems('demo', '1.0-1')).not.toEqual([]);
        await undoPackageStep(step.record, ctx());
        expect(await pm.installedVersion('demo')).toBe('1.0-1');
        expect(await pm.problems('demo', '1.0-1')).toEqual([]);
        expect(await read('usr/share/demo/data')).toBe('data v1\n');
        await expect(stat(join(root, 'usr/share/demo/only-in-v2'))).rejects.toMatchObject({ code: 'ENOENT' });
        expect(logs.join('\n')).toMatch(/removing the half-written database entry demo-2\.0-1/);
      });

      it('a db.lck that no process holds is never removed: the step refuses with CLP_E_BUSY before it changes anything', async () => {
        await writeFile(join(root, 'var/lib/pacman/db.lck'), '');
        await copyFile(v1, join(patchDir, 'payload/demo'));
        const error = await preparePackageStep(action('1.0-1', { source: 'payload/demo' }), ctx()).catch(
          (e: unknown) => e,
        );
        expect(error).toMatchObject({ code: 'CLP_E_BUSY' });
        expect((error as Error).message).toContain(join(root, 'var/lib/pacman/db.lck'));
        await expect(pm.installFile(v1)).rejects.toMatchObject({ code: 'CLP_E_BUSY' });
        expect((await stat(join(root, 'var/lib/pacman/db.lck'))).isFile()).toBe(true);
        expect(await pm.installedVersion('demo')).toBeNull();
      });
    }

    describe('from a URL', () => {
      let server: Server;
      let base: string;
      let requests = 0;
      beforeEach(async () => {
        requests = 0;
        server = createServer((req, res) => {
          requests++;
          if (req.url === '/demo-2.0-1') createReadStream(v2).pipe(res);
          else if (req.url === '/flaky' && requests === 1) res.writeHead(503).end();
          else if (req.url === '/flaky') createReadStream(v2).pipe(res);
          else res.writeHead(404).end();
        });
        await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
        base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
      });
      afterEach(async () => {
        server.closeAllConnections();
        await new Promise((r) => server.close(r));
      });

      it('downloads the package file, checks its sha256 and installs it', async () => {
        const sha256 = createHash('sha256')
          .update(await readFile(v2))
          .digest('hex');
        const step = await preparePackageStep(
          action('2.0-1', { url: `${base}/demo-2.0-1`, sha256 }),
          ctx({ allowHttp: true }),
        );
        expect(step.record.undo).toMatchObject({ origin: 'url', action: 'remove' });
        await step.run();
        expect(await pm.installedVersion('demo')).toBe('2.0-1');
      });

      it('tries again after a 5xx answer', async () => {
        const sha256 = createHash('sha256')
          .update(await readFile(v2))
          .digest('hex');
        const step = await preparePackageStep(
          action('2.0-1', { url: `${base}/flaky`, sha256 }),
          ctx({ allowHttp: true }),
        );
        expect(requests).toBe(2);
        expect(step.record.undo).toMatchObject({ origin: 'url' });
      });

      it('refuses a download whose sha256 differs, and one with no sha256 at all', async () => {
        const wrong = await preparePackageStep(
          action('2.0-1', { url: `${base}/demo-2.0-1`, sha256: 'b'.repeat(64) }),
          ctx({ allowHttp: true }),
        ).catch((e: unknown) => e);
        expect(wrong).toMatchObject({ code: 'CLP_E_PACKAGE_HASH_MISMATCH' });
        const unverified = await preparePackageStep(
          action('2.0-1', { url: `${base}/demo-2.0-1` }),
          ctx({ allowHttp: true }),
        ).catch((e: unknown) => e);
        expect(unverified).toMatchObject({ code: 'CLP_E_PACKAGE_HASH_MISMATCH' });
        expect(await pm.installedVersion('demo')).toBeNull();
      });

      it('says which URL could not be downloaded', async () => {
        const error = await preparePackageStep(
          action('2.0-1', { url: `${base}/missing`, sha256: 'c'.repeat(64) }),
          ctx({ allowHttp: true }),
        ).catch((e: unknown) => e);
        expect(error).toMatchObject({ code: 'CLP_E_PACKAGE_DOWNLOAD_FAILED' });
        expect((error as Error).message).toContain(`${base}/missing`);
        expect((error as Error).message).toContain('404');
      });

      it('refuses a plain http:// URL unless allowed, and every scheme but https', async () => {
        const sha256 = 'd'.repeat(64);
        for (const url of [`${base}/demo-2.0-1`, 'ftp://mirror.example/demo.pkg', 'file:///etc/shadow']) {
          const error = await preparePackageStep(action('2.0-1', { url, sha256 }), ctx()).catch(
            (e: unknown) => e,
          );
          expect(error, url).toMatchObject({ code: 'CLP_E_PACKAGE_URL_REFUSED' });
        }
        expect(requests).toBe(0);
      });

      it('an answer far larger than the signed size is cut off where it passes it: nothing beyond it reaches the disk, nothing stays', async () => {
        const data = await readFile(v2);
        const sha256 = createHash('sha256').update(data).digest('hex');
        let sent = 0;
        let finished = false;
        server.removeAllListeners('request');
        // The package's own bytes, then 256 MiB more, without announcing a length.
        server.on('request', (_req, res) => {
          requests++;
          res.writeHead(200, { 'content-type': 'application/octet-stream' });
          const chunk = Buffer.alloc(64 * 1024, 7);
          res.write(data);
          sent += data.length;
          const more = () => {
            while (sent < 256 * 1024 ** 2) {
              sent += chunk.length;
              if (!res.write(chunk)) return void res.once('drain', more);
            }
            finished = true;
            res.end();
          };
          res.on('close', () => res.removeAllListeners('drain'));
          more();
        });
        const newDir = join(root, 'var/lib/clp/tx/1/packages/new');
        let largest = 0;
        const watch = setInterval(() => {
          stat(join(newDir, 'demo-2.0-1'))
            .then((st) => {
              largest = Math.max(largest, st.size);
            })
            .catch(() => {});
        }, 1);
        const started = Date.now();
        const error = await preparePackageStep(
          action('2.0-1', { url: `${base}/demo-2.0-1`, sha256, size: data.length }),
          ctx({ allowHttp: true }),
        ).catch((e: unknown) => e);
        clearInterval(watch);
        expect(error).toMatchObject({
          code: 'CLP_E_PACKAGE_TOO_LARGE',
          details: { maxBytes: data.length, limitFrom: 'size' },
        });
        expect((error as Error).message).toContain(
          `${data.length} bytes the patch's signed size attribute allows`,
        );
        expect(largest).toBeLessThanOrEqual(data.length);
        expect(finished).toBe(false);
        // The client stopped reading at once: the server got out no more than its socket buffers hold.
        expect(sent).toBeLessThan(64 * 1024 ** 2);
        expect(Date.now() - started).toBeLessThan(30_000);
        expect(await readdir(newDir).catch(() => [])).toEqual([]);
        expect(requests).toBe(1);
      });

      it('without a size, the configured cap applies, and an answer announcing more is refused before it is read', async () => {
        const data = await readFile(v2);
        const sha256 = createHash('sha256').update(data).digest('hex');
        const error = await preparePackageStep(
          action('2.0-1', { url: `${base}/demo-2.0-1`, sha256 }),
          ctx({ allowHttp: true, maxDownloadBytes: 100 }),
        ).catch((e: unknown) => e);
        expect(error).toMatchObject({
          code: 'CLP_E_PACKAGE_TOO_LARGE',
          details: { maxBytes: 100, limitFrom: 'cap' },
        });
        expect((error as Error).message).toMatch(/download cap of 100 bytes.*--max-download-size/);
        const fits = await preparePackageStep(
          action('2.0-1', { url: `${base}/demo-2.0-1`, sha256 }),
          ctx({ allowHttp: true, maxDownloadBytes: data.length }),
        );
        expect(fits.record.undo).toMatchObject({ origin: 'url' });
      });
    });
  });
}

describe("pacman.conf's NoExtract globs", () => {
  it('match as pacman matches them (fnmatch without flags: * and ? cross /)', () => {
    const m = (glob: string, path: string) => fnmatchRegExp(glob).test(path);
    expect(m('usr/share/locale/*', 'usr/share/locale/de/LC_MESSAGES/x.mo')).toBe(true);
    expect(m('usr/share/doc/*', 'usr/share/docs/x')).toBe(false);
    expect(m('usr/share/man/?/*', 'usr/share/man/1/ls.1.gz')).toBe(true);
    expect(m('etc/[ab]*.conf', 'etc/b.conf')).toBe(true);
    expect(m('etc/[!ab]*.conf', 'etc/b.conf')).toBe(false);
    expect(m('a.b', 'aXb')).toBe(false);
    expect(m('odd\\*name', 'odd*name')).toBe(true);
    expect(m('odd\\*name', 'oddXname')).toBe(false);
  });
});
