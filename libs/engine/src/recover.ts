import { readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { isClpError } from '@clp/format';
import { finishTransaction } from './bookkeeping.ts';
import { EngineError } from './errors.ts';
import { Journal, readJournal } from './journal.ts';
import { lstatOwn } from './own-files.ts';
import { stateDirOf } from './paths.ts';
import { rebasePath, rebaseRecords } from './rebase.ts';
import { openRootState } from './root-state.ts';
import { endScriptProcesses } from './script-processes.ts';
import { appendHistory, TX_DIR } from './state.ts';
import type { StepContext } from './step.ts';
import { startedSteps, trackedGroups, txDirOf, undoSteps } from './transaction.ts';

export interface RecoverResult {
  /** What recovery found and did. */
  action: 'nothing' | 'rolled-back' | 'finished';
  tx?: string;
  op?: string;
  patch?: string;
}

/**
 * Brings an interrupted transaction to an end: before its commit point it is rolled back, after
 * it the bookkeeping is finished. Also removes transaction folders no journal refers to (a crash
 * before `begin` was written). Every command runs this first.
 */
export async function recover(options: {
  root: string;
  log?: (line: string) => void;
}): Promise<RecoverResult> {
  const state = await openRootState(options.root, options.log);
  try {
    return await recoverLocked(state.root, state.logger.log);
  } finally {
    await state.close();
  }
}

/** recover() for a caller that already holds the lock. */
export async function recoverLocked(root: string, log: (line: string) => void): Promise<RecoverResult> {
  const stateDir = stateDirOf(root);
  // Every transaction folder is removed through it: a link there is refused before anything else.
  await lstatOwn(join(stateDir, TX_DIR), "clp's folder of transactions");
  const entries = await readJournal(stateDir);
  if (entries === null) {
    await removeOrphanTxDirs(stateDir, null);
    return { action: 'nothing' };
  }
  const journal = await Journal.reopen(stateDir);
  const begin = entries[0];
  if (begin === undefined || begin.t !== 'begin') {
    await journal.remove();
    await removeOrphanTxDirs(stateDir, null);
    return { action: 'nothing' };
  }
  const name = begin.info.patch.name;
  // The records (and the bookkeeping's paths) may have been made under this root at another path.
  const from = begin.info.root;
  const steps = rebaseRecords(begin.steps, from, root);
  const info = {
    ...begin.info,
    root,
    ...(Array.isArray(begin.info.removeDirs) && from !== undefined
      ? { removeDirs: (begin.info.removeDirs as string[]).map((d) => rebasePath(d, from, root)) }
      : {}),
  };
  const ended = entries.some((e) => e.t === 'end');
  const committed = entries.some((e) => e.t === 'commit');
  const rollingBack = entries.some((e) => e.t === 'rollback');
  const txDir = txDirOf(stateDir, begin.tx);
  try {
    if (ended) {
      await journal.remove();
      await removeOrphanTxDirs(stateDir, null);
      return { action: 'nothing' };
    }
    if (committed && !rollingBack) {
      log(`recover: ${begin.op} of ${name} (transaction ${begin.tx}) passed its commit point; finishing it`);
      await finishTransaction(begin.op, stateDir, begin.tx, steps, info);
      await journal.append({ t: 'end', result: 'committed' });
      await journal.remove();
      await removeOrphanTxDirs(stateDir, null);
      return { action: 'finished', tx: begin.tx, op: begin.op, patch: name };
    }
    log(
      `recover: ${begin.op} of ${name} (transaction ${begin.tx}) was interrupted before its commit point; rolling it back`,
    );
    if (!rollingBack) await journal.append({ t: 'rollback', reason: 'interrupted (recovery)' });
    // A script of the killed clpctl may still be running: it is ended before anything is undone.
    const groups = trackedGroups(entries);
    await endScriptProcesses(begin.tx, groups, log);
    const ctx: StepContext = { root, stateDir, txDir, log };
    await undoSteps(steps, startedSteps(entries), ctx, {
      trackGroup: async (group) => {
        groups.push(group);
        await journal.append({ t: 'group', ...group });
      },
    });
    await rm(txDir, { recursive: true, force: true });
    await appendHistory(stateDir, {
      at: new Date().toISOString(),
      tx: begin.tx,
      op: 'recover',
      name,
      result: 'rolled-back',
      message: `interrupted ${begin.op} rolled back`,
    });
    await journal.append({ t: 'end', result: 'rolled-back' });
    await journal.remove();
    await removeOrphanTxDirs(stateDir, null);
    log(`recover: ${begin.op} of ${name} rolled back; the system is as before`);
    return { action: 'rolled-back', tx: begin.tx, op: begin.op, patch: name };
  } catch (error) {
    await journal.close().catch(() => {});
    // A package manager in use is not a failure: the next command recovers once it is done.
    if (isClpError(error) && error.code === 'CLP_E_BUSY') throw error;
    throw new EngineError(
      'CLP_E_RECOVERY_FAILED',
      `recovery of the interrupted ${begin.op} of ${name} could not finish: ${(error as Error).message}; the journal ${join(stateDir, 'journal')} is kept, fix the cause and run 'clpctl recover' again`,
      { cause: error, details: { tx: begin.tx, patch: name } },
    );
  }
}

/** Removes transaction folders no journal refers to; ROOT/var/lib/clp/tx must not be a link (rm would delete through it). */
async function removeOrphanTxDirs(stateDir: string, keep: string | null): Promise<void> {
  const txRoot = join(stateDir, TX_DIR);
  const st = await lstatOwn(txRoot, "clp's folder of transactions");
  if (st === null || !st.isDirectory()) return;
  // rm does not follow a link it is given (it removes the link), only links above it.
  for (const n of await readdir(txRoot))
    if (n !== keep) await rm(join(txRoot, n), { recursive: true, force: true });
}
