import { spawnSync } from 'node:child_process';
import { closeSync, ftruncateSync, openSync, readFileSync, writeSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { ServerError } from './errors.ts';

export interface DataDirLock {
  /** Where the lock lives (DATA_DIR/server.lock). */
  file: string;
  release(): void;
}

/**
 * Claims DATA_DIR for this process alone: the embedded PGlite database is one process, and a
 * second server on the same folder would lose the first one's acknowledged writes.
 *
 * The lock is the kernel's flock(2) on DATA_DIR/server.lock. Node cannot call flock, so
 * util-linux `flock(1)` takes it on a descriptor inherited from this process: the lock belongs
 * to the open file, which this process keeps open, so it lasts exactly as long as this process
 * (a crash or SIGKILL releases it; no stale lock file is ever trusted). `warn` is told when
 * flock(1) is missing, in which case the folder is not guarded.
 */
export async function lockDataDir(dataDir: string, warn: (message: string) => void): Promise<DataDirLock> {
  await mkdir(dataDir, { recursive: true });
  const file = join(dataDir, 'server.lock');
  const fd = openSync(file, 'a+', 0o644);
  const result = spawnSync('flock', ['--nonblock', '--exclusive', '3'], {
    stdio: ['ignore', 'ignore', 'pipe', fd],
    encoding: 'utf8',
  });
  if (result.error) {
    closeSync(fd);
    warn(
      `flock(1) is not available (${result.error.message}): ${dataDir} is not guarded against a second server`,
    );
    return { file, release: () => {} };
  }
  if (result.status !== 0) {
    let holder = '';
    try {
      holder = readFileSync(file, 'utf8').trim();
    } catch {}
    closeSync(fd);
    throw new ServerError(
      'CLP_E_DATA_DIR_IN_USE',
      `another server process (${holder || 'unknown pid'}) is using ${dataDir} with the embedded PGlite database, which only one process may open. Stop that server, give this one another CLP_DATA_DIR, or run several servers on PostgreSQL (DATABASE_URL)`,
      { details: { dataDir, holder } },
    );
  }
  ftruncateSync(fd, 0);
  writeSync(fd, `pid ${process.pid} on ${hostname()}\n`);
  let released = false;
  return {
    file,
    release() {
      if (released) return;
      released = true;
      closeSync(fd);
    },
  };
}
