/**
 * The transaction: an explicit state machine with a journal.
 *
 *   idle --begin--> prepared --commit--> committing --> committed
 *                      |                     |
 *                      +------ failure ------+--> rolled-back
 *   (a crash anywhere leaves it interrupted; recover() finishes or rolls back)
 *
 * Crash story, journal entry by entry (ROOT/var/lib/clp/journal, each append fdatasync'ed):
 * - `begin` holds every step record, including the hidden staging name of each new file, before
 *   any of them is created. A crash after it: recovery undoes every file step, which removes the
 *   staged files and folders it finds; nothing at a target has been touched yet.
 * - Staging writes each new file next to its target, in the target's folder pinned by a descriptor
 *   (pinned-dir.ts), created with O_EXCL and given owner and mode through its own descriptor:
 *   straight from the patch (stage-direct.ts), or from a file in the transaction folder. Every
 *   staged file is durable (an fsync each, or one syncfs per filesystem for a large batch) before
 *   staging ends, so before the first rename. Staged files are not journaled one by one: `begin`
 *   already names them all, and undo removes whichever of them exist.
 * - `run [steps…]` covers a whole batch of file steps with one fsync. The batch backs up every
 *   original first (hard link, or a copy renamed into place only once complete) and fsyncs the
 *   backup folder once, and only then renames the staged files over their targets and fsyncs each
 *   target folder once. File undo is correct at any point of that: no backup means the target is
 *   untouched; a backup under its final name is complete and is put back. So the batch needs no
 *   per-file journal write.
 * - Scripts, services and packages get one `run` entry each, because their undo must not run for
 *   a step that never started (recovery undoes them only when their `run` is in the journal).
 * - `done [steps…]` after a batch or step; informational for people reading the journal.
 * - Health checks run as a last group (`run []`) after every change and before `commit`: a check
 *   that fails, or a crash within its window, takes the whole patch back.
 * - `commit` is the commit point: every step ran. Recovery after it finishes the bookkeeping
 *   (installed index, patch record, history), which is idempotent, instead of undoing.
 * - `rollback` before undoing, `end` when everything (undo or bookkeeping) is over; then the
 *   journal is removed. A crash during undo is recovered by undoing again (undo is idempotent).
 * - Step records hold real paths under the root; `begin` also names that root, so a root used
 *   under another path later is recovered all the same (rebase.ts).
 * The crash tests kill the process after each journal write (CLP_TEST_KILL_AT_STEP, journal.ts)
 * and after each undone step (CLP_TEST_KILL_AT_UNDO, below).
 */
import { mkdir, rm } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { isClpError } from '@clp/format';
import { fsyncDir } from './durable.ts';
import { EngineError } from './errors.ts';
import { Journal, type JournalEntry, type TransactionInfo, type TransactionOp } from './journal.ts';
import { ownDir } from './own-files.ts';
import { endScriptProcesses } from './script-processes.ts';
import { TX_DIR } from './state.ts';
import type { StepContext, StepRecord, StepRun, TrackedGroup } from './step.ts';
import { UNDO, undoIsSafeUnstarted } from './undo-table.ts';

export type TransactionState =
  | 'idle'
  | 'prepared'
  | 'committing'
  | 'committed'
  | 'rolled-back'
  | 'interrupted';

/** Steps that run together under one `run` journal entry. */
export interface StepGroup {
  records: StepRecord[];
  run(run?: StepRun): Promise<void>;
}

export function newTxId(): string {
  return `${Date.now().toString(36)}-${process.pid.toString(36)}-${Math.floor(Math.random() * 1e6).toString(36)}`;
}

export function txDirOf(stateDir: string, tx: string): string {
  return join(stateDir, TX_DIR, tx);
}

/** Makes a transaction's folder (and ROOT/var/lib/clp/tx), refusing a link at either. */
export async function makeTxDir(txDir: string): Promise<void> {
  await ownDir(dirname(txDir));
  await ownDir(txDir);
}

export class Transaction {
  readonly tx: string;
  readonly op: TransactionOp;
  readonly ctx: StepContext;
  #state: TransactionState = 'idle';
  #journal: Journal | undefined;
  #records: StepRecord[] = [];
  readonly #started = new Set<number>();
  readonly #groups: TrackedGroup[] = [];

  constructor(op: TransactionOp, ctx: StepContext, tx: string) {
    this.op = op;
    this.ctx = ctx;
    this.tx = tx;
  }

  get state(): TransactionState {
    return this.#state;
  }

  #expect(...states: TransactionState[]): void {
    if (!states.includes(this.#state)) {
      throw new EngineError(
        'CLP_E_BAD_STATE',
        `transaction ${this.tx} is ${this.#state}, expected ${states.join(' or ')}`,
      );
    }
  }

  /**
   * Journals every step record (durably, in one write), then runs `stage` (staging of new files).
   * A failure while staging rolls back and rethrows.
   */
  async prepare(records: StepRecord[], info: TransactionInfo, stage: () => Promise<void>): Promise<void> {
    this.#expect('idle');
    this.#records = records;
    await makeTxDir(this.ctx.txDir);
    this.#journal = await Journal.create(this.ctx.stateDir, {
      t: 'begin',
      tx: this.tx,
      op: this.op,
      at: new Date().toISOString(),
      steps: records,
      info,
    });
    this.#state = 'prepared';
    try {
      await stage();
    } catch (error) {
      await this.rollback(error);
      throw error;
    }
  }

  /** Runs each group in order, journaling `run` before and `done` after. Reaches the commit point. */
  async commit(groups: StepGroup[]): Promise<void> {
    this.#expect('prepared');
    this.#state = 'committing';
    const journal = this.#journal!;
    try {
      for (const group of groups) {
        const ids = group.records.map((r) => r.index);
        await journal.append({ t: 'run', steps: ids });
        for (const id of ids) this.#started.add(id);
        for (const r of group.records) this.ctx.log(`${this.op}: ${r.description}`);
        await group.run(this.#stepRun());
        await journal.append({ t: 'done', steps: ids });
      }
      await journal.append({ t: 'commit' });
      this.#state = 'committed';
    } catch (error) {
      await this.rollback(error);
      throw error;
    }
  }

  /** Undoes what may have started, in reverse; throws CLP_E_ROLLBACK_FAILED if an undo fails. */
  async rollback(cause: unknown): Promise<void> {
    this.#expect('prepared', 'committing');
    const journal = this.#journal!;
    const reason = cause instanceof Error ? cause.message : String(cause);
    await journal.append({ t: 'rollback', reason });
    // A script that timed out or failed may have left children: none may act during or after the undo.
    await endScriptProcesses(this.tx, this.#groups, this.ctx.log);
    await undoSteps(this.#records, this.#started, this.ctx, this.#stepRun());
    await rm(this.ctx.txDir, { recursive: true, force: true });
    await journal.append({ t: 'end', result: 'rolled-back' });
    await journal.remove();
    this.#state = 'rolled-back';
  }

  /** After the commit point: runs the bookkeeping, then ends and removes the journal. */
  async finish(bookkeeping: () => Promise<void>): Promise<void> {
    this.#expect('committed');
    try {
      await bookkeeping();
    } catch (error) {
      // The changes are in place; the journal stays, and the next command finishes the records.
      throw new EngineError(
        'CLP_E_RECOVERY_FAILED',
        `the ${this.op} took effect, but recording it failed: ${(error as Error).message}; fix the cause and run 'clpctl recover' to finish the records`,
        { cause: error, details: { tx: this.tx } },
      );
    }
    await this.#journal!.append({ t: 'end', result: 'committed' });
    await this.#journal!.remove();
  }

  /** Lets the steps journal the process groups they start. */
  #stepRun(): StepRun {
    return {
      trackGroup: async (group) => {
        this.#groups.push(group);
        await this.#journal!.append({ t: 'group', ...group });
      },
    };
  }

  /** Marks the transaction interrupted (the process goes on without it; recovery takes over). */
  interrupt(): void {
    this.#state = 'interrupted';
  }
}

/** Counts undone steps in this process, for the crash-test hook. */
let undone = 0;

/**
 * Test hook for the crash tests: with CLP_TEST_KILL_AT_UNDO=N the process sends itself SIGKILL
 * right after undoing its N-th step, in the middle of a rollback, which recovery must then finish
 * by undoing again (every undo is idempotent).
 */
function afterUndo(): void {
  undone++;
  const at = process.env.CLP_TEST_KILL_AT_UNDO;
  if (at !== undefined && Number(at) === undone) process.kill(process.pid, 'SIGKILL');
}

/**
 * Undoes steps in reverse order. Steps whose undo is only right once they started are undone only
 * when `started` has them. Services are reloaded last, once every file is back.
 */
export async function undoSteps(
  records: StepRecord[],
  started: ReadonlySet<number>,
  ctx: StepContext,
  run?: StepRun,
): Promise<void> {
  const todo = [...records]
    .filter((r) => undoIsSafeUnstarted(r.kind) || started.has(r.index))
    .sort((a, b) => b.index - a.index);
  const ordered = [...todo.filter((r) => r.kind !== 'service'), ...todo.filter((r) => r.kind === 'service')];
  const failures: Array<{ step: string; error: string; code?: string }> = [];
  for (const record of ordered) {
    try {
      await UNDO[record.kind](record, ctx, run);
    } catch (error) {
      failures.push({
        step: record.description,
        error: (error as Error).message,
        ...(isClpError(error) ? { code: error.code } : {}),
      });
      ctx.log(`rollback: could not undo "${record.description}": ${(error as Error).message}`);
    }
    afterUndo();
  }
  if (failures.length > 0 && failures.every((f) => f.code === 'CLP_E_BUSY')) {
    // Nothing is wrong but that the package database is in use: the undo is tried again later.
    throw new EngineError(
      'CLP_E_BUSY',
      `the undo waits: ${failures.map((f) => f.error).join('; ')}; the journal is kept and the next clpctl command finishes it`,
      { details: { failures } },
    );
  }
  if (failures.length > 0) {
    throw new EngineError(
      'CLP_E_ROLLBACK_FAILED',
      `could not undo ${failures.length} step(s): ${failures.map((f) => `${f.step} (${f.error})`).join('; ')}; the journal is kept: fix the cause and run 'clpctl recover'`,
      { details: { failures } },
    );
  }
}

/** The process groups the journal says steps started. */
export function trackedGroups(entries: JournalEntry[]): TrackedGroup[] {
  return entries.flatMap((e) => (e.t === 'group' ? [{ step: e.step, pgid: e.pgid, start: e.start }] : []));
}

/** Which steps the journal says started. */
export function startedSteps(entries: JournalEntry[]): Set<number> {
  const started = new Set<number>();
  for (const e of entries) if (e.t === 'run') for (const i of e.steps) started.add(i);
  return started;
}

export async function ensureDir(dir: string): Promise<void> {
  await mkdir(dir, { recursive: true });
  await fsyncDir(join(dir, '..'));
}
