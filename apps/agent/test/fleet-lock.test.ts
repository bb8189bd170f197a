import { spawnSync } from 'node:child_process';
import { readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { acquireUpdateLock } from '../src/fleet/update-lock.ts';
import { removeAll, tempDir } from './fleet-harness.ts';

describe('one update at a time', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await tempDir('clp-fleet-lock-');
  });
  afterAll(async () => {
    await removeAll(dir);
  });

  it('a second update on the same root is refused with CLP_E_UPDATE_BUSY until the first ends', async () => {
    const file = join(dir, 'a/update.lock');
    const release = await acquireUpdateLock(file);
    expect((await readFile(file, 'utf8')).trim()).toBe(String(process.pid));
    await expect(acquireUpdateLock(file)).rejects.toMatchObject({ code: 'CLP_E_UPDATE_BUSY' });
    await release();
    await expect(stat(file)).rejects.toMatchObject({ code: 'ENOENT' });
    const again = await acquireUpdateLock(file);
    await again();
  });

  it('a lock left by a process that died is taken over; one held by a live process is not', async () => {
    const file = join(dir, 'b/update.lock');
    // A pid that surely ended: a child that has exited.
    const child = spawnSync('sh', ['-c', 'echo $$']);
    const deadPid = Number(child.stdout.toString().trim());
    await acquireUpdateLock(file).then((r) => r());
    await writeFile(file, `${deadPid}\n`);
    const release = await acquireUpdateLock(file);
    expect((await readFile(file, 'utf8')).trim()).toBe(String(process.pid));
    await release();
    // pid 1 is alive on every system.
    await writeFile(file, '1\n');
    const error = await acquireUpdateLock(file).catch((e: unknown) => e);
    expect(error).toMatchObject({ code: 'CLP_E_UPDATE_BUSY' });
    expect((error as Error).message).toContain('pid 1');
  });
});
