import { mkdir, open, readFile, rename, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { EngineError } from './errors.ts';

export interface Lock {
  release(): Promise<void>;
}

/**
 * One transaction at a time: ROOT/var/lib/clp/lock holds the owner's pid, created with O_EXCL.
 * A lock whose pid no longer runs is stale (its process was killed) and is taken over.
 */
export async function acquireLock(stateDir: string): Promise<Lock> {
  await mkdir(stateDir, { recursive: true });
  const path = join(stateDir, 'lock');
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      const fh = await open(path, 'wx', 0o644);
      await fh.writeFile(`${process.pid}\n`);
      await fh.close();
      return {
        async release() {
          await unlink(path).catch(() => {});
        },
      };
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    }
    const pid = await readPid(path);
    if (pid !== null && pid !== process.pid && isAlive(pid)) {
      throw new EngineError(
        'CLP_E_LOCKED',
        `another clpctl (pid ${pid}) is changing this system; wait for it to finish (lock file ${path})`,
        { details: { pid, lock: path } },
      );
    }
    // Stale: move it aside atomically so two processes cannot both take it over.
    await rename(path, `${path}.stale-${process.pid}`).then(
      () => unlink(`${path}.stale-${process.pid}`),
      () => {},
    );
  }
  throw new EngineError('CLP_E_LOCKED', `could not take the lock ${path}; try again`);
}

async function readPid(path: string): Promise<number | null> {
  try {
    const n = Number.parseInt((await readFile(path, 'utf8')).trim(), 10);
    return Number.isSafeInteger(n) && n > 0 ? n : null;
  } catch {
    return null;
  }
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}
