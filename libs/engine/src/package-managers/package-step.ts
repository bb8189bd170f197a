import { createHash } from 'node:crypto';
import { constants, createReadStream, createWriteStream } from 'node:fs';
import { mkdir, open, rm, stat } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { ReadableStream as WebReadableStream } from 'node:stream/web';
import type { PackageAction } from '@clp/format';
import type { PreparedStep, StepContext, StepRecord } from '../step.ts';
import { createPackageManager, PACKAGE_MANAGER_KINDS, type PackageManagerKind } from './detect.ts';
import { PackageError } from './errors.ts';
import type { PackageManager } from './package-manager.ts';

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
}

/** How a package step is undone: reinstall the kept file, remove the package, nothing, or impossible. */
export type PackageUndoAction = 'install' | 'remove' | 'none' | 'irreversible';

/** The StepRecord.undo of a package step: everything needed to take it back after a crash. */
export interface PackageUndo {
  packageManager: PackageManagerKind;
  name: string;
  /** Installed version before the step; null when the package was not installed. */
  fromVersion: string | null;
  toVersion: string;
  /** The package file the step installs, and where it came from. */
  packageFile: string;
  origin: 'file' | 'patch' | 'cache' | 'url';
  /** The package file of fromVersion kept in the transaction folder (action 'install'). */
  keptFile: string | null;
  action: PackageUndoAction;
}

async function sha256File(file: string): Promise<string> {
  const hash = createHash('sha256');
  await pipeline(createReadStream(file), hash);
  return hash.digest('hex');
}

async function exists(file: string): Promise<boolean> {
  return (await stat(file).catch(() => null))?.isFile() ?? false;
}

/** Makes a kept or downloaded file durable before the journal may point at it. */
async function fsyncFileAndDir(file: string): Promise<void> {
  for (const [path, flags] of [
    [file, constants.O_RDONLY],
    [dirname(file), constants.O_RDONLY | constants.O_DIRECTORY],
  ] as const) {
    const fh = await open(path, flags);
    try {
      await fh.sync();
    } finally {
      await fh.close();
    }
  }
}

/** Attempts per download; only network errors and 5xx answers are tried again. */
const DOWNLOAD_ATTEMPTS = 3;

class RetryableDownloadError extends Error {}

async function downloadOnce(url: string, file: string): Promise<string> {
  const hash = createHash('sha256');
  let response: Response;
  try {
    response = await fetch(url, { redirect: 'follow', signal: AbortSignal.timeout(30 * 60_000) });
  } catch (error) {
    throw new RetryableDownloadError((error as Error).message, { cause: error });
  }
  if (!response.ok || response.body === null) {
    const message = `the server answered ${response.status} ${response.statusText}`.trim();
    throw response.status >= 500 ? new RetryableDownloadError(message) : new Error(message);
  }
  const body = Readable.fromWeb(response.body as WebReadableStream<Uint8Array>);
  body.on('data', (chunk: Buffer) => hash.update(chunk));
  try {
    await pipeline(body, createWriteStream(file));
  } catch (error) {
    throw new RetryableDownloadError((error as Error).message, { cause: error });
  }
  return hash.digest('hex');
}

/** Downloads a package file into destDir (streamed, never whole in memory) and checks its sha256. */
async function download(url: string, sha256: string, destDir: string): Promise<string> {
  await mkdir(destDir, { recursive: true });
  const last = basename(new URL(url).pathname);
  const file = join(destDir, last === '' || last === '.' || last === '..' ? 'package' : last);
  let actual = '';
  for (let attempt = 1; ; attempt++) {
    try {
      actual = await downloadOnce(url, file);
      break;
    } catch (error) {
      if (error instanceof RetryableDownloadError && attempt < DOWNLOAD_ATTEMPTS) {
        await new Promise((r) => setTimeout(r, 500 * 2 ** attempt));
        continue;
      }
      throw new PackageError(
        'CLP_E_PACKAGE_DOWNLOAD_FAILED',
        `could not download ${url} (attempt ${attempt} of ${DOWNLOAD_ATTEMPTS}): ${(error as Error).message}`,
        {
          cause: error,
          details: { url, attempts: attempt },
        },
      );
    }
  }
  if (actual !== sha256) {
    await rm(file, { force: true });
    throw new PackageError(
      'CLP_E_PACKAGE_HASH_MISMATCH',
      `the package file downloaded from ${url} has sha256 ${actual}, not the expected ${sha256}; refusing it`,
      {
        details: { url, expected: sha256, actual },
      },
    );
  }
  await fsyncFileAndDir(file);
  return file;
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
    return {
      file: await download(action.url, action.sha256, join(ctx.txDir, 'packages', 'new')),
      origin: 'url',
    };
  }
  throw new PackageError(
    'CLP_E_PACKAGE_NOT_FOUND',
    `no package file for ${wanted}: not in the patch, not in the ${ctx.packageManager.kind} cache, and no URL given`,
    { details: { name: action.name, version: action.version } },
  );
}

/**
 * Prepares a package action (set package NAME to VERSION): finds and checks the package file,
 * keeps the installed version's file in ctx.txDir for undo, and returns the step. Nothing on
 * the system changes until run().
 */
export async function preparePackageStep(
  action: PackageAction,
  ctx: PackageStepContext,
): Promise<PreparedStep> {
  const pm = ctx.packageManager;
  const { name, version } = action;
  const fromVersion = await pm.installedVersion(name);
  const { file, origin } = await locate(action, ctx);
  const info = await pm.inspectFile(file);
  if (info.name !== name || info.version !== version) {
    throw new PackageError(
      'CLP_E_PACKAGE_MISMATCH',
      `${file} is ${info.name} ${info.version}, but the action sets ${name} to ${version}`,
      {
        details: { file, expected: { name, version }, actual: { name: info.name, version: info.version } },
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

  const undo: PackageUndo = {
    packageManager: pm.kind,
    name,
    fromVersion,
    toVersion: version,
    packageFile: file,
    origin,
    keptFile,
    action: undoAction,
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
      ctx.log(`${pm.kind}: installing ${file}`);
      await pm.installFile(file);
      const now = await pm.installedVersion(name);
      if (now !== version) {
        throw new PackageError(
          'CLP_E_PACKAGE_MANAGER_FAILED',
          `${pm.kind} reported success, but ${name} is at ${now ?? '(not installed)'} instead of ${version}`,
          {
            details: { name, expected: version, actual: now },
          },
        );
      }
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
 * Takes a package step back from its record alone: reinstalls the kept file, or removes a package
 * that was not installed before. Idempotent: a package already back where it was is left alone.
 */
export async function undoPackageStep(
  record: StepRecord,
  ctx: StepContext & { packageManager?: PackageManager },
): Promise<void> {
  const undo = readUndo(record);
  const pm = ctx.packageManager ?? createPackageManager(undo.packageManager, ctx.root);
  // After a crash the package manager this step started may still be finishing: read the version only once it is done.
  await pm.waitIdle();
  const now = await pm.installedVersion(undo.name);
  if (now === undo.fromVersion) return;
  switch (undo.action) {
    case 'none':
      return;
    case 'remove':
      ctx.log(`${pm.kind}: removing ${undo.name} (it was not installed before)`);
      await pm.remove(undo.name);
      return;
    case 'install': {
      if (undo.keptFile === null || !(await exists(undo.keptFile))) {
        throw new PackageError(
          'CLP_E_PACKAGE_NOT_FOUND',
          `cannot restore ${undo.name} ${undo.fromVersion}: its kept package file ${undo.keptFile} is gone`,
          {
            details: { keptFile: undo.keptFile },
          },
        );
      }
      ctx.log(`${pm.kind}: reinstalling ${undo.name} ${undo.fromVersion} from ${undo.keptFile}`);
      await pm.installFile(undo.keptFile, { restoring: true });
      const after = await pm.installedVersion(undo.name);
      if (after !== undo.fromVersion) {
        throw new PackageError(
          'CLP_E_PACKAGE_MANAGER_FAILED',
          `${pm.kind} reported success, but ${undo.name} is at ${after} instead of ${undo.fromVersion}`,
          {
            details: { name: undo.name, expected: undo.fromVersion, actual: after },
          },
        );
      }
      return;
    }
    case 'irreversible':
      throw new PackageError(
        'CLP_E_PACKAGE_IRREVERSIBLE',
        `cannot restore ${undo.name} ${undo.fromVersion}: no package file of it was kept (the change was allowed as irreversible); it is at ${now ?? '(not installed)'}`,
        { details: { name: undo.name, fromVersion: undo.fromVersion, now } },
      );
  }
}
