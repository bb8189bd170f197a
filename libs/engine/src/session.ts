import { resolve } from 'node:path';
import { acquireLock } from './lock.ts';
import { makeLogger } from './log.ts';
import { stateDirOf } from './paths.ts';
import { type RecoverResult, recoverLocked } from './recover.ts';

/** What every entry point works with once it holds the lock and recovery has run. */
export interface Session {
  root: string;
  stateDir: string;
  log: (line: string) => void;
  /** What recovery of an interrupted transaction did first. */
  recovered: RecoverResult;
}

/**
 * Runs fn with the state lock held, after recovery of an interrupted transaction; every line
 * logged goes to ROOT/var/log/CLP.log (and to `also`).
 */
export async function withSession<T>(
  rootOption: string | undefined,
  also: ((line: string) => void) | undefined,
  fn: (s: Session) => Promise<T>,
): Promise<T> {
  const root = resolve(rootOption ?? '/');
  const stateDir = stateDirOf(root);
  const lock = await acquireLock(stateDir);
  const logger = makeLogger(root, also);
  try {
    const recovered = await recoverLocked(root, logger.log);
    return await fn({ root, stateDir, log: logger.log, recovered });
  } finally {
    await logger.flush();
    await lock.release();
  }
}
