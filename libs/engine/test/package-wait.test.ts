import { spawn } from 'node:child_process';
import { copyFile, mkdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { DpkgManager } from '../src/package-managers/dpkg.ts';
import type { PackageManager } from '../src/package-managers/package-manager.ts';
import { preparePackageStep, undoPackageStep } from '../src/package-managers/package-step.ts';
import { PacmanManager } from '../src/package-managers/pacman.ts';
import {
  hasTool,
  makeDeb,
  makeDpkgRoot,
  makePacmanPackage,
  makePacmanRoot,
  type PackageFiles,
  tempDir,
} from './package-fixtures.ts';

/** Starts a process that prints "held" once it holds what it holds; resolves then, with a promise for its exit. */
async function hold(cmd: string, args: string[]): Promise<{ exited: Promise<void> }> {
  const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'inherit'] });
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  await new Promise<void>((r) =>
    child.stdout.on('data', (b: Buffer) => b.toString().includes('held') && r()),
  );
  return { exited };
}

const roots: string[] = [];
afterEach(async () => {
  for (const r of roots.splice(0)) await rm(r, { recursive: true, force: true });
});

const noFlock = !hasTool('flock');
if (noFlock) console.warn('skipped: needs flock (util-linux) to hold the dpkg lock');

describe('waiting for a package manager that is still running', () => {
  it.skipIf(noFlock)(
    'dpkg: busy while another process holds the database lock; an undo waits for it, then goes on',
    async () => {
      const root = await makeDpkgRoot();
      roots.push(root);
      const lock = join(root, 'var/lib/dpkg/lock');
      await writeFile(lock, '');
      const { exited } = await hold('flock', [lock, 'sh', '-c', 'echo held; sleep 1.5']);
      const pm = new DpkgManager(root);
      await expect(pm.ensureIdle()).rejects.toMatchObject({ code: 'CLP_E_BUSY' });
      await expect(pm.settle(0, () => {}, 200)).rejects.toMatchObject({ code: 'CLP_E_BUSY' });
      const start = Date.now();
      await pm.settle(0, () => {}, 10_000);
      expect(Date.now() - start).toBeGreaterThan(300);
      await exited;
      await pm.ensureIdle();
      // dpkg's lock dies with its process: the file stays, and it is no one's.
      expect((await stat(lock)).isFile()).toBe(true);
    },
  );

  it('pacman: a db.lck that any process holds open is in use, whatever that process is called; one that no process holds is left alone unless this step made it', async () => {
    const root = await makePacmanRoot();
    roots.push(root);
    const pm = new PacmanManager(root);
    const lock = join(pm.dbPath, 'db.lck');
    // A frontend of libalpm (pamac, PackageKit) holds db.lck open as long as it writes the database.
    const since = Date.now();
    const { exited } = await hold('bash', [
      '-c',
      'exec -a pamac sh -c \'exec 3>"$0"; echo held; sleep 1.5\' "$1"',
      'bash',
      lock,
    ]);
    const busy = await pm.ensureIdle().catch((e: unknown) => e);
    expect(busy).toMatchObject({ code: 'CLP_E_BUSY' });
    expect((busy as Error).message).toMatch(/pamac/);
    await expect(pm.settle(since, () => {}, 200)).rejects.toMatchObject({ code: 'CLP_E_BUSY' });
    await exited;
    // Its holder is gone and the lock is left: older than the step, it is someone else's.
    const left = await pm.settle(Date.now() + 60_000, () => {}).catch((e: unknown) => e);
    expect(left).toMatchObject({ code: 'CLP_E_BUSY' });
    expect((left as Error).message).toMatch(/no process holds it.*never removes/);
    expect((await stat(lock)).isFile()).toBe(true);
    await expect(pm.ensureIdle()).rejects.toMatchObject({ code: 'CLP_E_BUSY' });
    // Made after the step began and held by no one: the lock of the step's own pacman, killed with it.
    const lines: string[] = [];
    await pm.settle(since, (l) => lines.push(l));
    await expect(stat(lock)).rejects.toMatchObject({ code: 'ENOENT' });
    expect(lines.join('\n')).toMatch(/removing .*db\.lck/);
  });
});

/** Enough files that the package manager is still at work when undo starts. */
function manyFiles(tag: string): PackageFiles {
  const files: PackageFiles = {};
  for (let i = 0; i < 1000; i++) files[`usr/share/slow/${i % 30}/f${i}`] = `${tag} ${i}\n`;
  return files;
}

const drivers = [
  {
    kind: 'pacman' as const,
    tools: ['pacman', 'bsdtar'],
    makeRoot: makePacmanRoot,
    make: (out: string, v: string, f: PackageFiles) => makePacmanPackage(out, 'slow', v, f),
    manager: (root: string): PackageManager => new PacmanManager(root),
    busy: (pm: PackageManager) =>
      stat(join((pm as PacmanManager).dbPath, 'db.lck')).then(
        () => true,
        () => false,
      ),
    command: (pm: PackageManager, file: string) => {
      const p = pm as PacmanManager;
      return [
        'pacman',
        ['--root', p.root, '--dbpath', p.dbPath, '--config', '/dev/null', '--noconfirm', '-U', file],
      ] as const;
    },
  },
  {
    kind: 'dpkg' as const,
    tools: ['dpkg', 'dpkg-deb'],
    makeRoot: makeDpkgRoot,
    make: (out: string, v: string, f: PackageFiles) => makeDeb(out, 'slow', v, f),
    manager: (root: string): PackageManager => new DpkgManager(root),
    busy: async (pm: PackageManager) =>
      (await readFile(join((pm as DpkgManager).adminDir, 'status'), 'utf8').catch(() => '')).includes(
        'half-installed',
      ),
    command: (pm: PackageManager, file: string) => {
      const d = pm as DpkgManager;
      return [
        'dpkg',
        [`--root=${d.root}`, `--admindir=${d.adminDir}`, `--instdir=${d.root}`, '-i', file],
      ] as const;
    },
  },
];

for (const driver of drivers) {
  const missing = driver.tools.filter((t) => !hasTool(t));
  if (missing.length > 0)
    console.warn(`skipped: needs ${missing.join(', ')} (${driver.kind} undo after a kill)`);
  it.skipIf(missing.length > 0)(
    `${driver.kind}: undo after clpctl was killed mid-install waits for the orphaned package manager, then restores the previous version`,
    async () => {
      const root = await driver.makeRoot();
      const work = await tempDir('slow');
      roots.push(root, work);
      const pm = driver.manager(root);
      const v1 = await driver.make(work, '1.0-1', manyFiles('v1'));
      const v2 = await driver.make(work, '2.0-1', manyFiles('v2'));
      await mkdir(pm.cacheDir, { recursive: true });
      await copyFile(v1, join(pm.cacheDir, v1.split('/').pop() as string));
      await pm.installFile(v1);
      const txDir = join(root, 'var/lib/clp/tx/1');
      const step = await preparePackageStep(
        { type: 'package', action: 'set-version', name: 'slow', version: '2.0-1' },
        {
          root,
          stateDir: join(root, 'var/lib/clp'),
          txDir,
          log: () => {},
          patchDir: work,
          packageManager: pm,
          allowIrreversible: false,
          packageFile: v2,
        },
      );
      // What a kill -9 of clpctl during step.run() leaves: its package manager running on, orphaned.
      const [cmd, args] = driver.command(pm, v2);
      const child = spawn(cmd, [...args], { stdio: 'ignore' });
      const exited = new Promise((r) => child.once('exit', r));
      const deadline = Date.now() + 5_000;
      while (!(await driver.busy(pm)) && Date.now() < deadline && child.exitCode === null)
        await new Promise((r) => setTimeout(r, 5));
      await undoPackageStep(JSON.parse(JSON.stringify(step.record)), {
        root,
        stateDir: join(root, 'var/lib/clp'),
        txDir,
        log: () => {},
      });
      await exited;
      expect(await pm.installedVersion('slow')).toBe('1.0-1');
      expect(await readFile(join(root, 'usr/share/slow/9/f999'), 'utf8')).toBe('v1 999\n');
    },
  );
}
