import { lstat, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { PatchMeta } from '@clp/format';
import { fsyncDir } from './durable.ts';
import { removeEmptyDirs } from './file-step.ts';
import type { TransactionOp } from './journal.ts';
import { appendOwnFile, lstatOwn, ownDir, readOwnFile } from './own-files.ts';
import {
  appendHistory,
  type InstalledPatch,
  PACKAGES_DIR,
  PATCHES_DIR,
  patchDirOf,
  readIndex,
  readPatchRecord,
  revertDirOf,
  writeIndex,
  writePatchRecord,
} from './state.ts';
import type { StepRecord } from './step.ts';
import { txDirOf } from './transaction.ts';

export interface InstallInfo {
  [key: string]: unknown;
  patch: InstalledPatch;
  meta: PatchMeta;
  root?: string;
}

export interface UninstallInfo {
  [key: string]: unknown;
  patch: { name: string };
  /** The uninstall's own tx dir is separate from the patch's folder. */
  patchDir: string;
  root?: string;
  /** Folders the install created, top first; removed when empty once the files are gone. */
  removeDirs?: string[];
}

export interface PkgRevertInfo {
  [key: string]: unknown;
  patch: { name: string };
  root?: string;
  /** What the revert does, as ROOT/var/lib/clp/packages/reverts.jsonl records it. */
  revert: {
    name: string;
    packageManager: string;
    fromVersion: string | null;
    toVersion: string;
    origin: string;
    packageFile: string;
    /** Where the previous version's file is kept once the revert is finished. */
    keptFile: string | null;
  };
}

const REVERTS_LOG = 'reverts.jsonl';

async function exists(path: string): Promise<boolean> {
  return (await lstat(path).catch(() => null)) !== null;
}

const PATCHES = "clp's folder of installed patches";

/** Rewrites absolute paths inside the transaction folder to the patch folder they moved to. */
function moveRecords(steps: StepRecord[], from: string, to: string): StepRecord[] {
  const text = JSON.stringify(steps);
  return JSON.parse(
    text.split(JSON.stringify(from).slice(1, -1)).join(JSON.stringify(to).slice(1, -1)),
  ) as StepRecord[];
}

/**
 * After the commit point of an install: the transaction folder (backups, extracted patch, kept
 * packages) becomes ROOT/var/lib/clp/patches/NAME, then the patch record, the index and the
 * history are written. Every part can run again after a crash.
 */
export async function finishInstall(
  stateDir: string,
  tx: string,
  steps: StepRecord[],
  info: InstallInfo,
): Promise<void> {
  const name = info.patch.name;
  const txDir = txDirOf(stateDir, tx);
  const dest = patchDirOf(stateDir, name);
  if (await exists(txDir)) {
    await ownDir(join(stateDir, PATCHES_DIR), PATCHES);
    if ((await readPatchRecord(stateDir, name)) === null) await rm(dest, { recursive: true, force: true });
    await rename(txDir, dest);
    await fsyncDir(join(stateDir, PATCHES_DIR));
  }
  await writePatchRecord(stateDir, {
    summary: info.patch,
    meta: info.meta,
    steps: moveRecords(steps, txDir, dest),
    ...(info.root !== undefined ? { root: info.root } : {}),
  });
  const index = await readIndex(stateDir);
  index.installed = [...index.installed.filter((p) => p.name !== name), info.patch].sort((a, b) =>
    a.name.localeCompare(b.name),
  );
  index.failed = index.failed.filter((f) => f.name !== name);
  await writeIndex(stateDir, index);
  await appendHistory(stateDir, {
    at: new Date().toISOString(),
    tx,
    op: 'install',
    name,
    result: 'installed',
  });
}

/** After the commit point of an uninstall: forget the patch and drop its backups. */
export async function finishUninstall(stateDir: string, tx: string, info: UninstallInfo): Promise<void> {
  const name = info.patch.name;
  const index = await readIndex(stateDir);
  if (index.installed.some((p) => p.name === name)) {
    index.installed = index.installed.filter((p) => p.name !== name);
    await writeIndex(stateDir, index);
  }
  await removeEmptyDirs(info.removeDirs ?? [], info.root ?? '/');
  await lstatOwn(join(stateDir, PATCHES_DIR), PATCHES);
  await rm(patchDirOf(stateDir, name), { recursive: true, force: true });
  await rm(txDirOf(stateDir, tx), { recursive: true, force: true });
  await appendHistory(stateDir, {
    at: new Date().toISOString(),
    tx,
    op: 'uninstall',
    name,
    result: 'uninstalled',
  });
}

/**
 * After the commit point of a pkg revert: its folder (the previous version's package file) becomes
 * ROOT/var/lib/clp/packages/NAME in place of the last revert's, whose kept file is no longer the
 * way back; then reverts.jsonl and the history get their line. Every part can run again.
 */
export async function finishPkgRevert(stateDir: string, tx: string, info: PkgRevertInfo): Promise<void> {
  const { name } = info.revert;
  const txDir = txDirOf(stateDir, tx);
  if (await exists(txDir)) {
    // The copy of the file the revert installed served only its undo.
    await rm(join(txDir, 'packages', 'new'), { recursive: true, force: true });
    const dest = revertDirOf(stateDir, name);
    await ownDir(join(stateDir, PACKAGES_DIR), "clp's folder of kept packages");
    await rm(dest, { recursive: true, force: true });
    await rename(txDir, dest);
    await fsyncDir(join(stateDir, PACKAGES_DIR));
  }
  const log = join(stateDir, PACKAGES_DIR, REVERTS_LOG);
  const what = "clp's list of package reverts";
  const lines = await readOwnFile(log, what).catch((error: NodeJS.ErrnoException) => {
    if (error.code === 'ENOENT') return '';
    throw error;
  });
  if (!lines.split('\n').some((l) => l.includes(`"tx":${JSON.stringify(tx)}`))) {
    const line = `${JSON.stringify({ at: new Date().toISOString(), tx, ...info.revert })}\n`;
    await appendOwnFile(log, line, what, true);
  }
  const r = info.revert;
  await appendHistory(stateDir, {
    at: new Date().toISOString(),
    tx,
    op: 'pkg-revert',
    name,
    result: 'installed',
    message: `${name} ${r.fromVersion ?? '(not installed)'} -> ${r.toVersion} (${r.packageManager})`,
  });
}

/** The bookkeeping after the commit point of each kind of transaction; recovery runs it again after a crash. */
export function finishTransaction(
  op: TransactionOp,
  stateDir: string,
  tx: string,
  steps: StepRecord[],
  info: Record<string, unknown>,
): Promise<void> {
  switch (op) {
    case 'install':
      return finishInstall(stateDir, tx, steps, info as InstallInfo);
    case 'uninstall':
      return finishUninstall(stateDir, tx, info as UninstallInfo);
    case 'pkg-revert':
      return finishPkgRevert(stateDir, tx, info as PkgRevertInfo);
  }
}

/** Marks a patch as failed on this machine (a later install refuses it unless retryFailed). */
export async function markFailed(
  stateDir: string,
  name: string,
  code: string,
  reason: string,
): Promise<void> {
  const index = await readIndex(stateDir);
  index.failed = [
    ...index.failed.filter((f) => f.name !== name),
    { name, at: new Date().toISOString(), code, reason },
  ];
  await writeIndex(stateDir, index);
}
