/**
 * `clpctl pkg revert NAME VERSION`: one package step run on its own, outside any patch.
 *
 * It runs under the engine's lock after recovery, like every entry point. The previous version's
 * package file is kept in ROOT/var/lib/clp/packages/TX/ (so a later revert can go back to it), the
 * step's record is written durably to ROOT/var/lib/clp/packages/pending.json before the package
 * manager runs, and a failure undoes the step at once. A revert killed half-way is undone from that
 * record by the next `pkg revert` (or `finishInterruptedRevert`). Each revert is one line of
 * ROOT/var/lib/clp/packages/reverts.jsonl.
 */
import { appendFile, mkdir, readdir, readFile, rm, unlink } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import type { PackageAction } from '@clp/format';
import { fsyncFile, writeFileDurable } from '../durable.ts';
import { withSession } from '../session.ts';
import { PATCHES_DIR } from '../state.ts';
import type { StepContext, StepRecord } from '../step.ts';
import { detectPackageManager } from './detect.ts';
import { PackageError } from './errors.ts';
import type { PackageManager } from './package-manager.ts';
import { type PackageUndo, preparePackageStep, undoPackageStep } from './package-step.ts';

export interface RevertOptions {
  root?: string;
  name: string;
  version: string;
  /** pacman or dpkg; default: the root's own. */
  packageManager?: string;
  /** A package file to install instead of looking in the cache and the kept files. */
  file?: string;
  /** Go ahead when the installed version cannot be kept. */
  allowIrreversible?: boolean;
  log?: (line: string) => void;
}

export interface RevertResult {
  name: string;
  packageManager: PackageManager['kind'];
  fromVersion: string | null;
  toVersion: string;
  changed: boolean;
  /** Where the installed file came from: the package cache, a file kept by clp, or --file. */
  origin: PackageUndo['origin'] | 'kept';
  packageFile: string;
  /** The previous version's package file, kept for going back; null when nothing changed or it could not be kept. */
  keptFile: string | null;
  /** Set when an interrupted revert was undone first. */
  finishedInterrupted?: string;
}

export const PACKAGES_STATE_DIR = 'packages';
const PENDING = 'pending.json';
const REVERTS_LOG = 'reverts.jsonl';

/** Package files clp kept (earlier reverts, installed patches) that are name@version. */
async function findKept(
  stateDir: string,
  pm: PackageManager,
  name: string,
  version: string,
): Promise<string | null> {
  const dirs: string[] = [];
  for (const top of [PACKAGES_STATE_DIR, PATCHES_DIR]) {
    for (const entry of await readdir(join(stateDir, top)).catch(() => [] as string[]))
      dirs.push(join(stateDir, top, entry, 'packages', 'kept'));
  }
  for (const dir of dirs) {
    for (const entry of await readdir(dir).catch(() => [] as string[])) {
      const file = join(dir, entry);
      const info = await pm.inspectFile(file).catch(() => null);
      if (info?.name === name && info.version === version) return file;
    }
  }
  return null;
}

/** Undoes a revert that was killed while its package manager ran; returns its description, or null. */
async function undoPending(stateDir: string, ctx: Omit<StepContext, 'txDir'>): Promise<string | null> {
  const file = join(stateDir, PACKAGES_STATE_DIR, PENDING);
  let record: StepRecord;
  try {
    record = JSON.parse(await readFile(file, 'utf8')) as StepRecord;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return null;
    // A torn pending file was never acted on: it is written in full before the package manager runs.
    await unlink(file);
    return null;
  }
  ctx.log(`pkg revert: undoing the interrupted "${record.description}"`);
  await undoPackageStep(record, { ...ctx, txDir: join(stateDir, PACKAGES_STATE_DIR) });
  await unlink(file);
  return record.description;
}

/** Undoes an interrupted `pkg revert`, if one was left; part of every revert, exported for recovery. */
export async function finishInterruptedRevert(options: {
  root?: string;
  log?: (line: string) => void;
}): Promise<string | null> {
  return withSession(options.root, options.log, (s) =>
    undoPending(s.stateDir, { root: s.root, stateDir: s.stateDir, log: s.log }),
  );
}

/** Sets package NAME to VERSION from the local cache (or a kept or given file), keeping the previous version's file. */
export async function revertPackage(options: RevertOptions): Promise<RevertResult> {
  return withSession(options.root, options.log, async (s) => {
    const { root, stateDir, log } = s;
    const finishedInterrupted = (await undoPending(stateDir, { root, stateDir, log })) ?? undefined;
    const pm = await detectPackageManager(root, options.packageManager);
    const { name, version } = options;
    const tx = `${new Date().toISOString().replace(/[-:]/g, '').replace(/\..*/, '')}-${name}-${process.pid}`;
    const txDir = join(stateDir, PACKAGES_STATE_DIR, tx);

    let packageFile = options.file === undefined ? undefined : resolve(options.file);
    let kept = false;
    if (packageFile === undefined && (await pm.findInCache(name, version)) === null) {
      const found = await findKept(stateDir, pm, name, version);
      if (found !== null) {
        packageFile = found;
        kept = true;
      }
    }
    const action: PackageAction = { type: 'package', action: 'set-version', name, version };
    let step: Awaited<ReturnType<typeof preparePackageStep>>;
    try {
      step = await preparePackageStep(action, {
        root,
        stateDir,
        txDir,
        log,
        patchDir: txDir,
        packageManager: pm,
        allowIrreversible: options.allowIrreversible ?? false,
        ...(packageFile === undefined ? {} : { packageFile }),
      });
    } catch (error) {
      await rm(txDir, { recursive: true, force: true });
      if (
        error instanceof PackageError &&
        error.code === 'CLP_E_PACKAGE_NOT_FOUND' &&
        options.file === undefined
      ) {
        throw new PackageError(
          'CLP_E_PACKAGE_NOT_FOUND',
          `no package file for ${name} ${version}: not in the ${pm.kind} cache (${pm.cacheDir}) and not kept by clp; download it there or pass --file`,
          { cause: error, details: { name, version, packageManager: pm.kind } },
        );
      }
      throw error;
    }
    const undo = step.record.undo as unknown as PackageUndo;
    const result: RevertResult = {
      name,
      packageManager: pm.kind,
      fromVersion: undo.fromVersion,
      toVersion: version,
      changed: undo.action !== 'none',
      origin: kept ? 'kept' : undo.origin,
      packageFile: undo.packageFile,
      keptFile: undo.keptFile,
      ...(finishedInterrupted === undefined ? {} : { finishedInterrupted }),
    };
    if (undo.action === 'none') {
      await rm(txDir, { recursive: true, force: true });
      log(`pkg revert: ${name} is already at ${version}; nothing to do`);
      return result;
    }

    const pending = join(stateDir, PACKAGES_STATE_DIR, PENDING);
    await mkdir(join(stateDir, PACKAGES_STATE_DIR), { recursive: true });
    await writeFileDurable(pending, JSON.stringify(step.record));
    log(
      `pkg revert: ${step.record.description}${undo.keptFile ? `; previous version kept at ${undo.keptFile}` : ''}`,
    );
    try {
      await step.run();
    } catch (error) {
      log(`pkg revert: ${(error as Error).message}; rolling back`);
      try {
        await undoPackageStep(step.record, { root, stateDir, txDir, log, packageManager: pm });
      } catch (undoError) {
        throw new PackageError(
          'CLP_E_PACKAGE_MANAGER_FAILED',
          `${(error as Error).message}; and putting ${name} ${undo.fromVersion} back failed too: ${(undoError as Error).message}; the record is kept in ${pending}, fix the cause and run 'clpctl pkg revert' again`,
          { cause: error, details: { name, version, undoError: (undoError as Error).message } },
        );
      }
      await unlink(pending);
      await rm(txDir, { recursive: true, force: true });
      log(`pkg revert: rolled back; ${name} is at ${undo.fromVersion ?? '(not installed)'} as before`);
      throw error;
    }
    await unlink(pending);
    if (undo.keptFile === null) await rm(txDir, { recursive: true, force: true });
    const line = { at: new Date().toISOString(), tx, ...result };
    const logFile = join(stateDir, PACKAGES_STATE_DIR, REVERTS_LOG);
    await appendFile(logFile, `${JSON.stringify(line)}\n`);
    await fsyncFile(logFile);
    log(`pkg revert: ${name} is now at ${version} (was ${undo.fromVersion ?? 'not installed'})`);
    return result;
  });
}
