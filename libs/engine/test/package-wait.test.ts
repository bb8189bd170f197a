import { spawn } from 'node:child_process';
import { rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { DpkgManager } from '../src/package-managers/dpkg.ts';
import { PacmanManager } from '../src/package-managers/pacman.ts';
import { hasTool, makeDpkgRoot, makePacmanRoot } from './package-fixtures.ts';

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
  it.skipIf(noFlock)('dpkg: waits while another process holds the database lock, then goes on', async () => {
    const root = await makeDpkgRoot();
    roots.push(root);
    const lock = join(root, 'var/lib/dpkg/lock');
    await writeFile(lock, '');
    const { exited } = await hold('flock', [lock, 'sh', '-c', 'echo held; sleep 1.5']);
    const pm = new DpkgManager(root);
    await expect(pm.waitIdle(200)).rejects.toMatchObject({ code: 'CLP_E_PACKAGE_MANAGER_FAILED' });
    const start = Date.now();
    await pm.waitIdle(10_000);
    expect(Date.now() - start).toBeGreaterThan(300);
    await exited;
  });

  it('pacman: waits while a live pacman uses the database, and clears the lock once none does', async () => {
    const root = await makePacmanRoot();
    roots.push(root);
    const pm = new PacmanManager(root);
    const lock = join(pm.dbPath, 'db.lck');
    await writeFile(lock, '');
    // A process whose argv is pacman's, pointed at this database: what pacman looks like in /proc.
    const { exited } = await hold('bash', [
      '-c',
      'exec -a pacman sh -c "echo held; sleep 1.5; true" "$@"',
      'bash',
      '--dbpath',
      pm.dbPath,
    ]);
    await expect(pm.waitIdle(200)).rejects.toMatchObject({ code: 'CLP_E_PACKAGE_MANAGER_FAILED' });
    expect((await stat(lock)).isFile()).toBe(true);
    await exited;
    await pm.waitIdle(10_000);
    await expect(stat(lock)).rejects.toThrow();
  });
});
