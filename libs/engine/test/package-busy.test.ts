/**
 * The engine never deletes a package manager's own lock. While another program holds it (pacman,
 * pamac, PackageKit, apt), or while a lock is left that no step of clp made, a patch with a
 * package action is refused with CLP_E_BUSY (exit 11) before anything changes.
 */
import { spawn } from 'node:child_process';
import { mkdir, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { installPatch, readHistory } from '../src/index.ts';
import { buildPatch, fileAction, makeRoot, snapshotRoot, tempDir, trustedKey } from './engine-fixtures.ts';
import { hasTool, makeDeb, makePacmanPackage } from './package-fixtures.ts';
import { clpctl, ensureBundle } from './run-clpctl.ts';

/** A process called `name` that holds `file` open (libalpm's way) or locked (`flock`: dpkg's way). */
async function holder(name: string, file: string, how: 'open' | 'lock'): Promise<{ stop(): Promise<void> }> {
  const inner =
    how === 'open'
      ? 'exec 3>"$0"; echo held; sleep 60; true'
      : 'exec 3>"$0"; flock 3; echo held; sleep 60; true';
  const child = spawn('bash', ['-c', `exec -a ${name} bash -c '${inner}' "$1"`, 'bash', file], {
    stdio: ['ignore', 'pipe', 'inherit'],
    detached: true,
  });
  await new Promise<void>((r) =>
    child.stdout.on('data', (b: Buffer) => b.toString().includes('held') && r()),
  );
  return {
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const exited = new Promise((r) => child.once('exit', r));
      process.kill(-(child.pid as number), 'SIGKILL');
      await exited;
    },
  };
}

const stops: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const stop of stops.splice(0)) await stop();
});

interface Case {
  kind: 'pacman' | 'dpkg';
  tools: string[];
  osRelease: string;
  prepare(root: string): Promise<void>;
  lockFile(root: string): string;
  how: 'open' | 'lock';
  makePackage(out: string): Promise<string>;
}

const cases: Case[] = [
  {
    kind: 'pacman',
    tools: ['pacman', 'bsdtar'],
    osRelease: 'ID=arch\n',
    prepare: (root) => mkdir(join(root, 'var/lib/pacman'), { recursive: true }).then(() => {}),
    lockFile: (root) => join(root, 'var/lib/pacman/db.lck'),
    how: 'open',
    makePackage: (out) => makePacmanPackage(out, 'clpbusy', '1-1', { 'usr/share/clpbusy/data': 'data\n' }),
  },
  {
    kind: 'dpkg',
    tools: ['dpkg', 'dpkg-deb', 'flock'],
    osRelease: 'ID=debian\n',
    async prepare(root) {
      for (const d of ['info', 'updates', 'triggers'])
        await mkdir(join(root, 'var/lib/dpkg', d), { recursive: true });
      await writeFile(join(root, 'var/lib/dpkg/status'), '');
      await writeFile(join(root, 'var/lib/dpkg/available'), '');
    },
    lockFile: (root) => join(root, 'var/lib/dpkg/lock-frontend'),
    how: 'lock',
    makePackage: (out) => makeDeb(out, 'clpbusy', '1-1', { 'usr/share/clpbusy/data': 'data\n' }),
  },
];

for (const c of cases) {
  const missing = c.tools.filter((t) => !hasTool(t));
  if (missing.length > 0) console.warn(`skipped: needs ${missing.join(', ')} (${c.kind} busy tests)`);

  describe.skipIf(missing.length > 0)(`a busy ${c.kind} database`, () => {
    async function setup(): Promise<{ root: string; patch: string }> {
      const work = await tempDir(`${c.kind}-busy`);
      const root = await makeRoot({ 'etc/app.conf': 'v1\n' });
      await writeFile(join(root, 'etc/os-release'), c.osRelease);
      await c.prepare(root);
      const key = await trustedKey(root);
      const pkg = await c.makePackage(work);
      const patch = await buildPatch(
        work,
        {
          name: 'CLP1251128',
          actions: [
            fileAction('replace', '/etc/app.conf', 'payload/app.conf', 'v2\n'),
            {
              type: 'package',
              action: 'set-version',
              name: 'clpbusy',
              version: '1-1',
              source: 'packages/clpbusy',
            },
          ],
          entries: { 'payload/app.conf': 'v2\n', 'packages/clpbusy': { file: pkg } },
        },
        key,
      );
      return { root, patch };
    }

    it(`install refuses with CLP_E_BUSY while a program that is not ${c.kind} holds its lock, changes nothing, and leaves the lock alone`, async () => {
      const { root, patch } = await setup();
      const held = await holder(
        c.kind === 'pacman' ? 'pamac-daemon' : 'packagekitd',
        c.lockFile(root),
        c.how,
      );
      stops.push(held.stop);
      const before = await snapshotRoot(root);
      const error = await installPatch(patch, { root }).catch((e: unknown) => e);
      expect(error).toMatchObject({ code: 'CLP_E_BUSY' });
      expect((error as Error).message).toContain(c.lockFile(root).replace(/lock-frontend$/, ''));
      // libalpm's holders are named (they hold db.lck open); /proc/locks names the process that took a lock.
      if (c.kind === 'pacman') expect((error as Error).message).toMatch(/pamac-daemon/);
      expect(await snapshotRoot(root)).toEqual(before);
      expect((await stat(c.lockFile(root))).isFile()).toBe(true);
      expect(await readdir(join(root, 'var/lib/clp/tx')).catch(() => [])).toEqual([]);
      ensureBundle();
      const cli = clpctl(['--root', root, 'install', patch]);
      expect(cli.status, cli.stderr).toBe(11);
      expect(cli.stderr).toMatch(/^error CLP_E_BUSY: /);
      await held.stop();
      stops.length = 0;
      if (c.kind === 'pacman') {
        // A frontend killed while it held the database leaves db.lck: that is for the administrator to clear.
        await expect(installPatch(patch, { root })).rejects.toMatchObject({ code: 'CLP_E_BUSY' });
        await rm(c.lockFile(root));
      }
      expect((await installPatch(patch, { root })).name).toBe('CLP1251128');
      expect((await readHistory({ root })).map((h) => h.result)).toEqual(['installed']);
    });

    if (c.kind === 'pacman') {
      it('a db.lck that no process holds is not removed either: install refuses until the administrator removes it', async () => {
        const { root, patch } = await setup();
        await writeFile(c.lockFile(root), '');
        const before = await snapshotRoot(root);
        const error = await installPatch(patch, { root }).catch((e: unknown) => e);
        expect(error).toMatchObject({ code: 'CLP_E_BUSY' });
        expect((error as Error).message).toMatch(/no process holds it.*never removes/);
        expect(await snapshotRoot(root)).toEqual(before);
      });
    }
  });
}
