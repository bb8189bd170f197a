/**
 * The contract between the transaction and the things it changes.
 *
 * A step is prepared first (every check, every download, every staged file) and then run.
 * Before it runs, its StepRecord is written to the journal and fsynced: the record alone must be
 * enough to undo the step after a crash, when nothing of this process is left in memory.
 */
export type StepKind = 'file' | 'package' | 'service' | 'script';

export interface StepRecord {
  kind: StepKind;
  /** Index of the step within its transaction. */
  index: number;
  /** One line for people: "replace /etc/ssh/sshd_config". */
  description: string;
  /** Kind-specific facts needed to undo (backup paths, previous package file, …). JSON only. */
  undo: Record<string, unknown>;
}

/** What every step needs to know about where it runs. */
export interface StepContext {
  /** The system root (`/` or the --root folder). */
  root: string;
  /** ROOT/var/lib/clp */
  stateDir: string;
  /** This transaction's folder for staged files and backups, on the state filesystem. */
  txDir: string;
  log: (line: string) => void;
}

/** A process group a step started (a script's), journaled so that recovery can end it. */
export interface TrackedGroup {
  /** The step that started it. */
  step: number;
  /** Its process group id: the pid of the script, which leads its own group. */
  pgid: number;
  /** The leader's start time (clock ticks after boot), so that a reused pid is not taken for it. */
  start: string | null;
}

/** What a step may tell its transaction while it runs (or is undone). */
export interface StepRun {
  /** Journals a process group before the step waits for it. */
  trackGroup(group: TrackedGroup): Promise<void>;
}

export interface PreparedStep {
  record: StepRecord;
  /** Makes the change. Throws a ClpError naming the cause on failure; partial effects are undone by undo(record). */
  run(run?: StepRun): Promise<void>;
}

/** Undoes a step from its record alone; must be idempotent (it may run again after a crash during undo). */
export type UndoStep = (record: StepRecord, ctx: StepContext, run?: StepRun) => Promise<void>;
