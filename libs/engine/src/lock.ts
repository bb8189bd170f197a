/**
 * One transaction at a time, enforced by the kernel: an exclusive flock(2) on ROOT/var/lib/clp/lock.
 *
 * Node has no flock of its own, so the lock is taken by util-linux `flock(1)` on a descriptor this
 * process opened and hands to it as its fd 3. A flock belongs to the open file description, not
 * to the process that called it: when `flock -n 3` exits with 0 the lock stays held through our
 * descriptor, and it goes away when that descriptor is closed, which the kernel does when this
 * process dies in any way (kill -9, power loss). Node opens every file close-on-exec, so scripts
 * and package managers started later do not inherit it and cannot keep it alive.
 *
 * The lock file is never removed (removing it would let two processes lock two different files of
 * one name). The holder writes its pid into it, only so that a refusal can say who holds it.
 */
import { spawn } from 'node:child_process';
import { constants } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { EngineError } from './errors.ts';
import { openOwn } from './own-files.ts';

export interface Lock {
  release(): Promise<void>;
}

export const LOCK_FILE = 'lock';

/** flock(1) exits with 1 when -n finds the lock taken (util-linux and busybox alike). */
const FLOCK_CONFLICT = 1;

function runFlock(fh: FileHandle): Promise<{ status: number | null; stderr: string; missing: boolean }> {
  return new Promise((resolve) => {
    let stderr = '';
    const child = spawn('flock', ['--exclusive', '--nonblock', '3'], {
      stdio: ['ignore', 'ignore', 'pipe', fh.fd],
    });
    child.stderr?.on('data', (chunk: Buffer) => {
      stderr += chunk.toString();
    });
    child.on('error', (error: NodeJS.ErrnoException) =>
      resolve({ status: null, stderr: error.message, missing: error.code === 'ENOENT' }),
    );
    child.on('close', (status) => resolve({ status, stderr: stderr.trim(), missing: false }));
  });
}

/** Takes the lock of stateDir (which must exist), or throws CLP_E_BUSY naming the holder. */
export function acquireLock(stateDir: string): Promise<Lock> {
  const path = join(stateDir, LOCK_FILE);
  return lockFile(
    path,
    (pid) =>
      new EngineError(
        'CLP_E_BUSY',
        `another clpctl${pid === null ? '' : ` (pid ${pid})`} is changing this system; nothing was done: wait for it to finish and try again (lock ${path})`,
        { details: { lock: path, ...(pid === null ? {} : { pid }) } },
      ),
  );
}

/**
 * Takes an exclusive kernel lock on `path` (created when missing, never through a link), or
 * throws what `busy` makes of the holder's pid. Two locks of one file conflict also within one
 * process. The lock is released by release(), or by the kernel when this process dies.
 */
export async function lockFile(
  path: string,
  busy: (holderPid: number | null) => Error,
  what = "clp's lock file",
): Promise<Lock> {
  const fh = await openOwn(path, constants.O_RDWR | constants.O_CREAT, what, 0o600);
  let held = false;
  try {
    const result = await runFlock(fh);
    if (result.status === FLOCK_CONFLICT) {
      const holder = (await fh.readFile('utf8').catch(() => '')).trim().split(/\s+/)[0] ?? '';
      throw busy(/^\d+$/.test(holder) ? Number(holder) : null);
    }
    if (result.missing) {
      throw new EngineError(
        'CLP_E_TOOL_MISSING',
        `cannot take the lock ${path}: the program flock (util-linux), which clp needs for its lock, is not installed or not on PATH; nothing was done: install util-linux and try again`,
        { details: { lock: path, program: 'flock' } },
      );
    }
    if (result.status !== 0) {
      throw new EngineError(
        'CLP_E_BUSY',
        `cannot take the lock ${path}: flock failed (${result.stderr || `exit status ${result.status}`}); nothing was done, try again`,
        { details: { lock: path } },
      );
    }
    held = true;
    await fh.truncate(0);
    await fh.write(`${process.pid}\n`, 0);
    return {
      async release() {
        // Closing the last descriptor of the open file description releases the flock.
        await fh.close();
      },
    };
  } finally {
    if (!held) await fh.close();
  }
}
