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
      await fh.writeFile(`${process.pid} ${(await startTimeOf(process.pid)) ?? ''}\n`);
      await fh.close();
      return {
        async release() {
          await unlink(path).catch(() => {});
        },
      };
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    }
    const owner = await readOwner(path);
    const pid = owner?.pid ?? null;
    if (owner !== null && owner.pid !== process.pid && (await isAlive(owner))) {
      throw new EngineError(
        'CLP_E_BUSY',
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
  throw new EngineError('CLP_E_BUSY', `could not take the lock ${path}; try again`);
}

interface LockOwner {
  pid: number;
  /** The process's start time (clock ticks after boot), so that a reused pid is not mistaken for the owner. */
  start: string | null;
}

async function readOwner(path: string): Promise<LockOwner | null> {
  try {
    const [pidText, start] = (await readFile(path, 'utf8')).trim().split(/\s+/);
    const pid = Number.parseInt(pidText ?? '', 10);
    return Number.isSafeInteger(pid) && pid > 0 ? { pid, start: start || null } : null;
  } catch {
    return null;
  }
}

/** Field 22 of /proc/PID/stat (after the parenthesised name, which may hold spaces). */
async function startTimeOf(pid: number): Promise<string | null> {
  try {
    const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19] ?? null;
  } catch {
    return null;
  }
}

async function isAlive(owner: LockOwner): Promise<boolean> {
  try {
    process.kill(owner.pid, 0);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EPERM') return false;
  }
  if (owner.start === null) return true;
  const now = await startTimeOf(owner.pid);
  return now === null || now === owner.start;
}
