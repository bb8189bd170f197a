import { join } from 'node:path';
import type { PatchMeta } from '@clp/format';
import { writeFileDurable } from './durable.ts';
import { appendOwnFile, lstatOwn, ownDir, readOwnFile } from './own-files.ts';
import type { StepRecord } from './step.ts';

/** One installed patch, as the small index keeps it (enough for `status` and `list`). */
export interface InstalledPatch {
  name: string;
  series: string;
  version: string;
  architecture: string;
  description?: string;
  severity?: string;
  installedAt: string;
  /** Key id that signed it, or null when installed with insecure. */
  signedBy: string | null;
  files: number;
  steps: number;
}

export interface FailedMark {
  name: string;
  at: string;
  reason: string;
  code: string;
}

/** ROOT/var/lib/clp/index.json: read by every command, so kept small. */
export interface StateIndex {
  version: 1;
  installed: InstalledPatch[];
  failed: FailedMark[];
}

/** ROOT/var/lib/clp/patches/NAME/patch.json: what uninstall needs. */
export interface PatchRecord {
  summary: InstalledPatch;
  meta: PatchMeta;
  /** The install's step records; their backups live in patches/NAME/backup. */
  steps: StepRecord[];
  /** The root the records' paths are under (see rebase.ts). */
  root?: string;
}

export interface HistoryEntry {
  at: string;
  tx: string;
  op: 'install' | 'uninstall' | 'recover' | 'check' | 'pkg-revert';
  name: string;
  result: 'installed' | 'uninstalled' | 'rolled-back' | 'failed' | 'refused';
  code?: string;
  message?: string;
}

export const INDEX_FILE = 'index.json';
export const HISTORY_FILE = 'history.jsonl';
export const PATCHES_DIR = 'patches';
/** The folders of `pkg revert`s, one a package: the version it replaced, kept for going back. */
export const PACKAGES_DIR = 'packages';
export const TX_DIR = 'tx';

export function patchDirOf(stateDir: string, name: string): string {
  return join(stateDir, PATCHES_DIR, name);
}

export function revertDirOf(stateDir: string, packageName: string): string {
  return join(stateDir, PACKAGES_DIR, packageName);
}

export async function readIndex(stateDir: string): Promise<StateIndex> {
  try {
    const parsed = JSON.parse(await readOwnFile(join(stateDir, INDEX_FILE), "clp's index")) as StateIndex;
    return { version: 1, installed: parsed.installed ?? [], failed: parsed.failed ?? [] };
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return { version: 1, installed: [], failed: [] };
    throw error;
  }
}

export async function writeIndex(stateDir: string, index: StateIndex): Promise<void> {
  await ownDir(stateDir);
  await writeFileDurable(join(stateDir, INDEX_FILE), `${JSON.stringify(index, null, 1)}\n`);
}

export async function readPatchRecord(stateDir: string, name: string): Promise<PatchRecord | null> {
  const what = "clp's folder of an installed patch";
  if ((await lstatOwn(join(stateDir, PATCHES_DIR), "clp's folder of installed patches")) === null)
    return null;
  if ((await lstatOwn(patchDirOf(stateDir, name), what)) === null) return null;
  try {
    return JSON.parse(
      await readOwnFile(join(patchDirOf(stateDir, name), 'patch.json'), "clp's record of an installed patch"),
    ) as PatchRecord;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw error;
  }
}

export async function writePatchRecord(stateDir: string, record: PatchRecord): Promise<void> {
  const dir = patchDirOf(stateDir, record.summary.name);
  await ownDir(join(stateDir, PATCHES_DIR));
  await ownDir(dir);
  await writeFileDurable(join(dir, 'patch.json'), `${JSON.stringify(record)}\n`);
}

export async function readHistoryFile(stateDir: string): Promise<HistoryEntry[]> {
  let text: string;
  try {
    text = await readOwnFile(join(stateDir, HISTORY_FILE), "clp's history");
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw error;
  }
  const out: HistoryEntry[] = [];
  for (const line of text.split('\n')) {
    if (line.trim() === '') continue;
    try {
      out.push(JSON.parse(line) as HistoryEntry);
    } catch {
      // a line torn by a crash: the entry is lost, the rest stands
    }
  }
  return out;
}

/** Appends once per (tx, op, result): recovery may redo the bookkeeping of a transaction. */
export async function appendHistory(stateDir: string, entry: HistoryEntry): Promise<void> {
  await ownDir(stateDir);
  const existing = await readHistoryFile(stateDir);
  if (existing.some((e) => e.tx === entry.tx && e.op === entry.op && e.result === entry.result)) return;
  await appendOwnFile(join(stateDir, HISTORY_FILE), `${JSON.stringify(entry)}\n`, "clp's history", true);
}
