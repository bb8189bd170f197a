import { spawn } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
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

  it('a second update on the same root, also in the same process, is refused with CLP_E_UPDATE_BUSY until the first ends', async () => {
    const file = join(dir, 'a/update.lock');
    const release = await acquireUpdateLock(dir, file);
    expect((await readFile(file, 'utf8')).trim()).toBe(String(process.pid));
    const error = await acquireUpdateLock(dir, file).catch((e: unknown) => e);
    expect(error).toMatchObject({ code: 'CLP_E_UPDATE_BUSY' });
    expect((error as Error).message).toContain(`pid ${process.pid}`);
    await release();
    const again = await acquireUpdateLock(dir, file);
    await again();
  });

  it('only a live holder of the kernel lock counts: a pid in the file means nothing, and the lock dies with its holder', async () => {
    const file = join(dir, 'b/update.lock');
    await acquireUpdateLock(dir, file).then((r) => r());
    // pid 1 is alive on every system, but holds no lock on this file.
    await writeFile(file, '1\n');
    await acquireUpdateLock(dir, file).then((r) => r());
    const holder = spawn('flock', ['-o', file, '-c', 'echo held; exec sleep 30'], {
      stdio: ['ignore', 'pipe', 'ignore'],
      detached: true,
    });
    try {
      await new Promise<void>((resolve) => holder.stdout?.once('data', () => resolve()));
      await expect(acquireUpdateLock(dir, file)).rejects.toMatchObject({ code: 'CLP_E_UPDATE_BUSY' });
    } finally {
      process.kill(-(holder.pid as number), 'SIGKILL');
    }
    await new Promise((r) => holder.once('exit', r));
    await acquireUpdateLock(dir, file).then((r) => r());
  });
});
