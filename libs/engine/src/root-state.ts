/**
 * What every command does before it reads or changes a root: the root is checked to be a folder
 * (a mistyped --root is an error, never a new empty system), the state folder is checked to be
 * clp's own (no link on the way that leaves the root, none at it), the kernel lock is taken and
 * the log is opened. Nothing is created under a root that does not exist.
 */
import { mkdir, stat } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { EngineError } from './errors.ts';
import { acquireLock, type Lock } from './lock.ts';
import { type Logger, makeLogger } from './log.ts';
import { checkOwnPath, lstatOwn, ownDir } from './own-files.ts';
import { stateDirOf } from './paths.ts';

const STATE = "clp's state folder";

/**
 * The names in the state folder that commands read, write or delete recursively. Each is checked
 * up front, so that a link planted there stops the command before it starts a transaction (and
 * not after its commit point, when only the bookkeeping would be left).
 */
const STATE_NAMES: ReadonlyArray<[string, string]> = [
  ['tx', "clp's folder of transactions"],
  ['patches', "clp's folder of installed patches"],
  ['packages', "clp's folder of kept packages"],
  ['fleet', "clp's fleet folder"],
  ['journal', "clp's journal"],
  ['index.json', "clp's index"],
  ['history.jsonl', "clp's history"],
];

/** Throws CLP_E_BAD_ROOT when root does not exist or is not a folder. */
export async function checkRoot(root: string): Promise<void> {
  let st: Awaited<ReturnType<typeof stat>>;
  try {
    st = await stat(root);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code !== 'ENOENT' && code !== 'ENOTDIR') throw error;
    throw new EngineError(
      'CLP_E_BAD_ROOT',
      `the root ${root} does not exist; check --root (nothing was created)`,
      { details: { root } },
    );
  }
  if (!st.isDirectory()) {
    throw new EngineError(
      'CLP_E_BAD_ROOT',
      `the root ${root} is not a folder; --root takes the folder that stands for / (nothing was created)`,
      { details: { root } },
    );
  }
}

export interface RootState {
  root: string;
  stateDir: string;
  logger: Logger;
  /** Closes the log and releases the lock. */
  close(): Promise<void>;
}

/** Checks the root and its state folder, takes the lock and opens the log. */
export async function openRootState(
  rootOption: string | undefined,
  also?: (line: string) => void,
): Promise<RootState> {
  const root = resolve(rootOption ?? '/');
  await checkRoot(root);
  const stateDir = stateDirOf(root);
  await checkOwnPath(root, stateDir, STATE);
  await mkdir(dirname(stateDir), { recursive: true });
  await ownDir(stateDir, STATE);
  for (const [name, what] of STATE_NAMES) await lstatOwn(join(stateDir, name), what);
  const lock: Lock = await acquireLock(stateDir);
  let logger: Logger;
  try {
    logger = await makeLogger(root, also);
  } catch (error) {
    await lock.release();
    throw error;
  }
  return {
    root,
    stateDir,
    logger,
    async close() {
      await logger.close();
      await lock.release();
    },
  };
}
