import { type RecoverResult, recoverLocked } from './recover.ts';
import { openRootState } from './root-state.ts';

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
 * logged goes to ROOT/var/log/CLP.log (and to `also`). A root that is not a folder, or whose
 * state or log is reached through a link, is refused before anything is read or written.
 */
export async function withSession<T>(
  rootOption: string | undefined,
  also: ((line: string) => void) | undefined,
  fn: (s: Session) => Promise<T>,
): Promise<T> {
  const state = await openRootState(rootOption, also);
  const { root, stateDir, logger } = state;
  try {
    const recovered = await recoverLocked(root, logger.log);
    return await fn({ root, stateDir, log: logger.log, recovered });
  } finally {
    await state.close();
  }
}
