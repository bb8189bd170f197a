import { constants } from 'node:fs';
import { type FileHandle, open, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { fsyncDir } from './durable.ts';
import { EngineError } from './errors.ts';
import { openOwn, readOwnFile } from './own-files.ts';
import type { StepRecord, TrackedGroup } from './step.ts';

export type TransactionOp = 'install' | 'uninstall' | 'pkg-revert';

/** What the bookkeeping after the commit point needs; written with `begin`, so recovery can finish it. */
export interface TransactionInfo {
  /** The patch summary to record (install) or to forget (uninstall); the package of a pkg-revert. */
  patch: { name: string };
  /** The root the step records were made under (see rebase.ts). */
  root?: string;
  [key: string]: unknown;
}

/** One line of the journal. */
export type JournalEntry =
  | { t: 'begin'; tx: string; op: TransactionOp; at: string; steps: StepRecord[]; info: TransactionInfo }
  /** These steps are about to run (one record covers a batch). */
  | { t: 'run'; steps: number[] }
  /** These steps have run. */
  | { t: 'done'; steps: number[] }
  /** A step started this process group (a script); a rollback ends it before undoing anything. */
  | ({ t: 'group' } & TrackedGroup)
  /** The commit point: every step ran; only bookkeeping is left. */
  | { t: 'commit' }
  /** Undo has started (after a failure, or during recovery). */
  | { t: 'rollback'; reason: string }
  | { t: 'end'; result: 'committed' | 'rolled-back' };

export const JOURNAL_FILE = 'journal';

/** Counts journal writes in this process, for the crash-test hook. */
let writes = 0;

/**
 * Test hook, documented for the crash tests (bar R1): with CLP_TEST_KILL_AT_STEP=N in the
 * environment, the process sends itself SIGKILL right after its N-th durable journal write, which
 * is exactly what a power loss or `kill -9` at that point looks like to recovery.
 */
function afterWrite(): void {
  writes++;
  const at = process.env.CLP_TEST_KILL_AT_STEP;
  if (at !== undefined && Number(at) === writes) process.kill(process.pid, 'SIGKILL');
}

/**
 * The append-only journal of one transaction in ROOT/var/lib/clp/journal: one JSON object per
 * line, each append fdatasync'ed before the caller goes on. A torn last line (a crash during the
 * write) is ignored by the reader: the entry it would have added had not been acted upon.
 */
export class Journal {
  readonly path: string;
  readonly #fh: FileHandle;

  private constructor(path: string, fh: FileHandle) {
    this.path = path;
    this.#fh = fh;
  }

  /** Creates the journal (there must be none) and durably writes its first entry. */
  static async create(stateDir: string, begin: Extract<JournalEntry, { t: 'begin' }>): Promise<Journal> {
    const path = join(stateDir, JOURNAL_FILE);
    const fh = await open(
      path,
      constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_APPEND | constants.O_NOFOLLOW,
      0o600,
    );
    const journal = new Journal(path, fh);
    await fh.write(`${JSON.stringify(begin)}\n`);
    await fh.sync();
    await fsyncDir(stateDir);
    afterWrite();
    return journal;
  }

  /** Reopens an existing journal to continue it (recovery). */
  static async reopen(stateDir: string): Promise<Journal> {
    const path = join(stateDir, JOURNAL_FILE);
    // A torn last line must not be glued to the next entry: start on a fresh line.
    const text = await readOwnFile(path, "clp's journal");
    const fh = await openOwn(path, constants.O_WRONLY | constants.O_APPEND, "clp's journal");
    if (text.length > 0 && !text.endsWith('\n')) {
      await fh.write('\n');
      await fh.datasync();
    }
    return new Journal(path, fh);
  }

  async append(entry: JournalEntry): Promise<void> {
    await this.#fh.write(`${JSON.stringify(entry)}\n`);
    await this.#fh.datasync();
    afterWrite();
  }

  /** The transaction is over: the journal goes away, durably. */
  async remove(): Promise<void> {
    await this.#fh.close();
    await unlink(this.path).catch((error: NodeJS.ErrnoException) => {
      if (error.code !== 'ENOENT') throw error;
    });
    await fsyncDir(join(this.path, '..'));
  }

  async close(): Promise<void> {
    await this.#fh.close();
  }
}

/** The entries of the journal in stateDir, or null when no transaction is open. */
export async function readJournal(stateDir: string): Promise<JournalEntry[] | null> {
  let text: string;
  try {
    text = await readOwnFile(join(stateDir, JOURNAL_FILE), "clp's journal");
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw error;
  }
  const lines = text.split('\n');
  const entries: JournalEntry[] = [];
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i] as string;
    if (line === '') continue;
    try {
      entries.push(JSON.parse(line) as JournalEntry);
    } catch (error) {
      // A torn line is what a crash during an append leaves. It is last, or followed only by what
      // recovery appends after reopening (rollback, end). Anywhere else the file is damaged.
      if (lines.slice(i + 1).every((l) => l === '' || writtenByRecovery(l))) continue;
      throw new EngineError(
        'CLP_E_JOURNAL_CORRUPT',
        `the journal ${join(stateDir, JOURNAL_FILE)} is damaged at line ${i + 1}`,
        {
          cause: error,
        },
      );
    }
  }
  if (entries.length === 0) return [];
  if (entries[0]?.t !== 'begin') {
    throw new EngineError(
      'CLP_E_JOURNAL_CORRUPT',
      `the journal ${join(stateDir, JOURNAL_FILE)} does not start with a begin entry`,
    );
  }
  return entries;
}

function writtenByRecovery(line: string): boolean {
  try {
    const t = (JSON.parse(line) as { t?: unknown }).t;
    // An undo script run by recovery journals its process group too.
    return t === 'rollback' || t === 'end' || t === 'group';
  } catch {
    return false;
  }
}
