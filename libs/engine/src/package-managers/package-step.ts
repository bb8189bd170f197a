/**
 * A package step: set package NAME to VERSION with the system's package manager, undoable.
 *
 * Crash story. Before `begin`, prepare checks that no other process holds the package database
 * (CLP_E_BUSY otherwise), and keeps in the transaction folder both the installed version's
 * package file and the one the step installs (copied out of any cache: clp owns what its undo
 * and its uninstall need). The package manager may then be killed anywhere, with clpctl (a power
 * cut): the undo waits for a package manager that still runs, clears only the lock that the
 * step's own killed tool left (made after the step was prepared, held by no process), lets the
 * package manager's implementation put the package back from the kept file (a half-written
 * pacman entry, an unfinished dpkg unpack), and says "as before" only when the package
 * database's own verdict agrees.
 */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { pipeline } from 'node:stream/promises';
import type { PackageAction } from '@clp/format';
import type { PreparedStep, StepContext, StepRecord } from '../step.ts';
import { createPackageManager, PACKAGE_MANAGER_KINDS, type PackageManagerKind } from './detect.ts';
import { DEFAULT_DOWNLOAD_LIMIT, type DownloadRules, download } from './download.ts';
import { PackageError } from './errors.ts';
import { fsyncFileAndDir, keepCopy, packageFileAt } from './keep-file.ts';
import type { PackageManager, RestorePlan } from './package-manager.ts';

export interface PackageStepContext extends StepContext {
  /** The folder the patch was extracted to; `action.source` is taken under it. */
  patchDir: string;
  packageManager: PackageManager;
  /** Go ahead when the installed version cannot be kept for undo (the step is then not undoable). */
  allowIrreversible: boolean;
  /** Index of the step within its transaction (default 0). */
  index?: number;
  /** A package file to use instead of the patch, cache or URL (clpctl pkg revert --file). */
  packageFile?: string;
  /** Let an action's plain http:// URL through (the sha256 still decides); default: https only. */
  allowHttp?: boolean;
  /** The cap on a download whose action names no size (default DEFAULT_DOWNLOAD_LIMIT). */
  maxDownloadBytes?: number;
}

/** How a package step is undone: reinstall the kept file, remove the package, nothing, or impossible. */
export type PackageUndoAction = 'install' | 'remove' | 'none' | 'irreversible';

/** The StepRecord.undo of a package step: everything needed to take it back after a crash. */
export interface PackageUndo {
  packageManager: PackageManagerKind;
  name: string;
  /** Installed version before the step; null when the package was not installed. */
  fromVersion: string | null;
  /** The version the step sets; null when it removes the package (the uninstall of a new package). */
  toVersion: string | null;
  /** The package file the step installs, kept by clp (null when the step removes the package). */
  packageFile: string | null;
  /** Where that file came from. */
  origin: 'file' | 'patch' | 'cache' | 'url' | 'kept';
  /** The package file of fromVersion kept in the transaction folder (action 'install'). */
  keptFile: string | null;
  action: PackageUndoAction;
  /** When the step was prepared (epoch ms): a package manager lock newer than this was made by the step's own tool. */
  preparedAt: number;
  /** Paths of either package file that were on disk, outside the package, before the step: an undo never removes them. */
  keepPaths: string[];
}

async function sha256File(file: string): Promise<string> {
  const hash = createHash('sha256');
  await pipeline(createReadStream(file), hash);
  return hash.digest('hex');
}

const KEPT = 'the package file clp kept';

async function exists(file: string): Promise<boolean> {
  return (await stat(file).catch(() => null))?.isFile() ?? false;
}

/** Finds the package file for the action: explicit file, then the patch, then the cache, then the URL. */
async function locate(
  action: PackageAction,
  ctx: PackageStepContext,
): Promise<{ file: string; origin: PackageUndo['origin'] }> {
  const wanted = `${action.name} ${action.version}`;
  if (ctx.packageFile !== undefined) {
    const file = resolve(ctx.packageFile);
    if (!(await exists(file)))
      throw new PackageError('CLP_E_PACKAGE_NOT_FOUND', `package file ${file} does not exist`, {
        details: { file },
      });
    return { file, origin: 'file' };
  }
  if (action.source !== undefined) {
    const file = join(ctx.patchDir, action.source);
    if (!(await exists(file))) {
      throw new PackageError(
        'CLP_E_PACKAGE_NOT_FOUND',
        `the patch does not contain ${action.source}, the package file for ${wanted}`,
        {
          details: { source: action.source },
        },
      );
    }
    if (action.sha256 !== undefined) {
      const actual = await sha256File(file);
      if (actual !== action.sha256) {
        throw new PackageError(
          'CLP_E_PACKAGE_HASH_MISMATCH',
          `${action.source} has sha256 ${actual}, not the expected ${action.sha256}`,
          {
            details: { source: action.source, expected: action.sha256, actual },
          },
        );
      }
    }
    return { file, origin: 'patch' };
  }
  const cached = await ctx.packageManager.findInCache(action.name, action.version);
  // A cached file of the same version but another build does not match the patch's hash: skip it.
  if (cached !== null && (action.sha256 === undefined || (await sha256File(cached)) === action.sha256))
    return { file: cached, origin: 'cache' };
  if (action.url !== undefined) {
    if (action.sha256 === undefined) {
      throw new PackageError(
        'CLP_E_PACKAGE_HASH_MISMATCH',
        `the action for ${wanted} names a URL but no sha256; refusing an unverified download`,
        {
          details: { url: action.url },
        },
      );
    }
    const rules: DownloadRules =
      action.size !== undefined
        ? { maxBytes: action.size, limitFrom: 'size', allowHttp: ctx.allowHttp ?? false }
        : {
            maxBytes: ctx.maxDownloadBytes ?? DEFAULT_DOWNLOAD_LIMIT,
            limitFrom: 'cap',
            allowHttp: ctx.allowHttp ?? false,
          };
    return {
      file: await download(action.url, action.sha256, join(ctx.txDir, 'packages', 'new'), rules),
      origin: 'url',
    };
  }
  throw new PackageError(
    'CLP_E_PACKAGE_NOT_FOUND',
    `no package file for ${wanted}: not in the patch, not in the ${ctx.packageManager.kind} cache, and no URL given`,
    { details: { name: action.name, version: action.version } },
  );
}

/** Installs `file` and checks the package database's own verdict that `name` is now at `version`. */
async function installChecked(
  pm: PackageManager,
  file: string,
  name: string,
  version: string,
): Promise<void> {
  await pm.installFile(file);
  const wrong = await pm.problems(name, version);
  if (wrong.length > 0) {
    throw new PackageError(
      'CLP_E_PACKAGE_MANAGER_FAILED',
      `${pm.kind} reported success installing ${file}, but ${wrong.join('; ')}`,
      { details: { name, expected: version, problems: wrong } },
    );
  }
}

/**
 * Prepares a package action (set package NAME to VERSION): finds and checks the package file,
 * keeps the installed version's file and the new one in ctx.txDir, and returns the step. Nothing
 * on the system changes until run().
 */
export async function preparePackageStep(
  action: PackageAction,
  ctx: PackageStepContext,
): Promise<PreparedStep> {
  const pm = ctx.packageManager;
  const { name, version } = action;
  const preparedAt = Date.now();
  await pm.ensureIdle();
  const fromVersion = await pm.installedVersion(name);
  const located = await locate(action, ctx);
  const info = await pm.inspectFile(located.file);
  if (info.name !== name || info.version !== version) {
    throw new PackageError(
      'CLP_E_PACKAGE_MISMATCH',
      `${located.file} is ${info.name} ${info.version}, but the action sets ${name} to ${version}`,
      {
        details: {
          file: located.file,
          expected: { name, version },
          actual: { name: info.name, version: info.version },
        },
      },
    );
  }

  let keptFile: string | null = null;
  let undoAction: PackageUndoAction;
  if (fromVersion === version) {
    undoAction = 'none';
  } else if (fromVersion === null) {
    undoAction = 'remove';
  } else {
    keptFile = await pm.keepInstalledVersion(name, join(ctx.txDir, 'packages', 'kept'));
    if (keptFile !== null) {
      await fsyncFileAndDir(keptFile);
      undoAction = 'install';
    } else if (ctx.allowIrreversible) {
      undoAction = 'irreversible';
    } else {
      throw new PackageError(
        'CLP_E_PACKAGE_IRREVERSIBLE',
        `cannot keep the installed ${name} ${fromVersion} for undo: ${pm.kind}'s cache (${pm.cacheDir}) has no file of it, and it cannot be rebuilt from the package database (a file it installed is missing); put its package file in the cache, or allow an irreversible change (--allow-irreversible)`,
        { details: { name, installed: fromVersion, packageManager: pm.kind } },
      );
    }
  }
  // The patch's own file and a download are in the transaction folder already; a cached or given one is copied there.
  const packageFile =
    undoAction === 'none' || located.origin === 'patch' || located.origin === 'url'
      ? located.file
      : await keepCopy(located.file, join(ctx.txDir, 'packages', 'new'), located.origin === 'cache');

  const undo: PackageUndo = {
    packageManager: pm.kind,
    name,
    fromVersion,
    toVersion: version,
    packageFile,
    origin: located.origin,
    keptFile,
    action: undoAction,
    preparedAt,
    keepPaths: undoAction === 'none' ? [] : await pm.pathsToKeep(name, [packageFile, keptFile]),
  };
  const record: StepRecord = {
    kind: 'package',
    index: ctx.index ?? 0,
    description:
      undoAction === 'none'
        ? `package ${name} is already at ${version}`
        : `set package ${name} ${fromVersion ?? '(not installed)'} -> ${version} (${pm.kind})`,
    undo: { ...undo },
  };
  return {
    record,
    async run() {
      if (undoAction === 'none') return;
      await pm.ensureIdle();
      ctx.log(`${pm.kind}: installing ${packageFile}`);
      await installChecked(pm, packageFile, name, version);
    },
  };
}

/**
 * The uninstall's step for an installed package step: it puts the version from before the install
 * back (or removes a package the install added), and is itself undone by installing the install's
 * own package file again, which clp kept with the patch.
 */
export async function prepareReversePackageStep(
  install: StepRecord,
  ctx: StepContext & { index: number; packageManager?: PackageManager },
): Promise<PreparedStep> {
  const was = readUndo(install);
  const pm = ctx.packageManager ?? createPackageManager(was.packageManager, ctx.root);
  const preparedAt = Date.now();
  await pm.ensureIdle();
  const target = was.fromVersion;
  if (target !== null && (was.keptFile === null || !(await packageFileAt(ctx.root, was.keptFile, KEPT)))) {
    throw new PackageError(
      'CLP_E_PACKAGE_NOT_FOUND',
      `cannot put ${was.name} ${target} back: the package file the install kept (${was.keptFile}) is gone`,
      { details: { name: was.name, keptFile: was.keptFile } },
    );
  }
  // Installs made before clp kept the installed file may point into a cache that was cleaned since.
  const installed =
    was.packageFile !== null && (await packageFileAt(ctx.root, was.packageFile, KEPT))
      ? was.packageFile
      : null;
  if (installed === null)
    ctx.log(
      `uninstall: ${was.name} ${was.toVersion}'s package file ${was.packageFile} is gone; if this uninstall fails, it cannot be put back`,
    );
  const undo: PackageUndo = {
    packageManager: was.packageManager,
    name: was.name,
    fromVersion: was.toVersion,
    toVersion: target,
    packageFile: was.keptFile,
    origin: 'kept',
    keptFile: installed,
    action: installed === null ? 'irreversible' : 'install',
    preparedAt,
    keepPaths: await pm.pathsToKeep(was.name, [was.keptFile, installed]),
  };
  const record: StepRecord = {
    kind: 'package',
    index: ctx.index,
    description: `set package ${was.name} ${was.toVersion} -> ${target ?? '(not installed)'} (${was.packageManager})`,
    undo: { ...undo },
  };
  return {
    record,
    async run() {
      await pm.ensureIdle();
      if (target === null) {
        ctx.log(`${pm.kind}: removing ${was.name} (it was not installed before the patch)`);
        await pm.remove(was.name);
        const wrong = await pm.problems(was.name, null);
        if (wrong.length > 0)
          throw new PackageError(
            'CLP_E_PACKAGE_MANAGER_FAILED',
            `${pm.kind} reported success removing ${was.name}, but ${wrong.join('; ')}`,
            { details: { name: was.name, problems: wrong } },
          );
        return;
      }
      ctx.log(`${pm.kind}: putting ${was.name} ${target} back from ${was.keptFile}`);
      // A plain install: a file in the way that the package did not own stops it, as pacman and dpkg do.
      await installChecked(pm, was.keptFile as string, was.name, target);
    },
  };
}

function readUndo(record: StepRecord): PackageUndo {
  const u = record.undo as Partial<PackageUndo>;
  if (
    typeof u.name !== 'string' ||
    !PACKAGE_MANAGER_KINDS.includes(u.packageManager as PackageManagerKind) ||
    typeof u.action !== 'string'
  ) {
    throw new PackageError(
      'CLP_E_PACKAGE_MANAGER_FAILED',
      `step ${record.index} ("${record.description}") has no usable package undo record`,
      {
        details: { record },
      },
    );
  }
  return u as PackageUndo;
}

/**
 * Takes a package step back from its record alone, from whatever point it was cut at: the step
 * may not have started, may have run to its end, or its package manager may have been killed
 * half-way. Idempotent: a package already back where it was is left alone.
 */
export async function undoPackageStep(
  record: StepRecord,
  ctx: StepContext & { packageManager?: PackageManager },
): Promise<void> {
  const undo = readUndo(record);
  if (undo.action === 'none') return;
  const pm = ctx.packageManager ?? createPackageManager(undo.packageManager, ctx.root);
  // Records from before preparedAt was kept: no lock is taken for this step's own.
  await pm.settle(undo.preparedAt ?? Number.POSITIVE_INFINITY, ctx.log);
  if (undo.action === 'irreversible') {
    const wrong = await pm.problems(undo.name, undo.fromVersion);
    if (wrong.length === 0) return;
    throw new PackageError(
      'CLP_E_PACKAGE_IRREVERSIBLE',
      `cannot restore ${undo.name} ${undo.fromVersion}: no package file of it was kept (the change was allowed as irreversible); ${wrong.join('; ')}`,
      { details: { name: undo.name, fromVersion: undo.fromVersion, problems: wrong } },
    );
  }
  if (
    undo.action === 'install' &&
    (undo.keptFile === null || !(await packageFileAt(ctx.root, undo.keptFile, KEPT)))
  ) {
    throw new PackageError(
      'CLP_E_PACKAGE_NOT_FOUND',
      `cannot restore ${undo.name} ${undo.fromVersion}: its kept package file ${undo.keptFile} is gone`,
      {
        details: { keptFile: undo.keptFile },
      },
    );
  }
  const plan: RestorePlan = {
    name: undo.name,
    version: undo.action === 'remove' ? null : undo.fromVersion,
    keptFile: undo.action === 'remove' ? null : undo.keptFile,
    // Without the record of what was there before, nothing is cleaned away.
    stepFile: Array.isArray(undo.keepPaths) ? undo.packageFile : null,
    keepPaths: undo.keepPaths ?? [],
  };
  await pm.restore(plan, ctx.log);
  const wrong = await pm.problems(plan.name, plan.version);
  if (wrong.length > 0) {
    throw new PackageError(
      'CLP_E_PACKAGE_MANAGER_FAILED',
      `${pm.kind} could not put ${undo.name} back to ${plan.version ?? '(not installed)'}: ${wrong.join('; ')}`,
      { details: { name: undo.name, expected: plan.version, problems: wrong } },
    );
  }
}
