import { mkdir, rename, rm, rmdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { PatchMeta } from '@clp/format';
import { fsyncDir } from './durable.ts';
import {
  appendHistory,
  type InstalledPatch,
  PATCHES_DIR,
  patchDirOf,
  readIndex,
  readPatchRecord,
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

async function exists(path: string): Promise<boolean> {
  return (await stat(path).catch(() => null)) !== null;
}

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
    await mkdir(join(stateDir, PATCHES_DIR), { recursive: true });
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
  for (const dir of [...(info.removeDirs ?? [])].reverse()) await rmdir(dir).catch(() => {});
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
