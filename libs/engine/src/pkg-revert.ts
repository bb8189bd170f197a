/**
 * `clpctl pkg revert NAME VERSION`: a transaction of one package step, made on the fly.
 *
 * It is journaled like an install (op `pkg-revert`): a crash before its commit point is rolled
 * back by `recover` (the kept previous version is put back), a crash after it is finished. Once it
 * commits, its folder becomes ROOT/var/lib/clp/packages/NAME/ (the previous version's package file,
 * so that a later revert can go back to it) in place of the folder of the package's last revert,
 * one line is added to ROOT/var/lib/clp/packages/reverts.jsonl and one to the history.
 */
import { readdir, rm } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { type PackageAction, PackageAction as PackageActionSchema } from '@clp/format';
import { finishPkgRevert, type PkgRevertInfo } from './bookkeeping.ts';
import { asEngineError } from './install.ts';
import {
  detectPackageManager,
  PackageError,
  type PackageManager,
  type PackageUndo,
  preparePackageStep,
} from './package-managers/index.ts';
import { packageFileAt } from './package-managers/keep-file.ts';
import type { RecoverResult } from './recover.ts';
import { withSession } from './session.ts';
import { appendHistory, PACKAGES_DIR, PATCHES_DIR, revertDirOf } from './state.ts';
import type { StepContext } from './step.ts';
import { newTxId, Transaction, txDirOf } from './transaction.ts';

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
  tx: string;
  packageManager: PackageManager['kind'];
  fromVersion: string | null;
  toVersion: string;
  changed: boolean;
  /** Where the installed file came from: the package cache, a file kept by clp, or --file. */
  origin: PackageUndo['origin'] | 'kept';
  packageFile: string;
  /** The previous version's package file, kept for going back; null when nothing changed or it could not be kept. */
  keptFile: string | null;
  /** What recovery of an interrupted transaction did first. */
  recovered: RecoverResult;
}

/** Package files of `name` that clp keeps (earlier reverts, installed patches), with their versions. */
async function keptFilesOf(
  stateDir: string,
  pm: PackageManager,
  name: string,
): Promise<Array<{ file: string; version: string }>> {
  const dirs: string[] = [];
  for (const top of [PACKAGES_DIR, PATCHES_DIR]) {
    for (const entry of await readdir(join(stateDir, top)).catch(() => [] as string[]))
      dirs.push(join(stateDir, top, entry, 'packages', 'kept'));
  }
  const found: Array<{ file: string; version: string }> = [];
  for (const dir of dirs) {
    for (const entry of await readdir(dir).catch(() => [] as string[])) {
      const file = join(dir, entry);
      if (!(await packageFileAt(pm.root, file, 'the package file clp kept'))) continue;
      const info = await pm.inspectFile(file).catch(() => null);
      if (info?.name === name) found.push({ file, version: info.version });
    }
  }
  return found;
}

/**
 * The version meant by `version`: itself when a package file of it is at hand (or installed), else
 * the one version with a release number added (1.0 → 1.0-1) among the cached, kept and installed
 * ones; several such versions are listed for the caller to choose from.
 */
async function versionMeant(
  pm: PackageManager,
  name: string,
  version: string,
  kept: ReadonlyArray<{ version: string }>,
): Promise<string> {
  const installed = await pm.installedVersion(name);
  const known = new Set([...(await pm.cachedVersions(name)), ...kept.map((k) => k.version)]);
  if (installed !== null) known.add(installed);
  if (known.has(version)) return version;
  const candidates = [...known].filter((v) => v.startsWith(`${version}-`)).sort();
  if (candidates.length === 1) return candidates[0] as string;
  if (candidates.length > 1) {
    throw new PackageError(
      'CLP_E_PACKAGE_AMBIGUOUS',
      `${name} ${version} could be any of ${candidates.join(', ')} (in the ${pm.kind} cache, kept by clp or installed); name one of them`,
      { details: { name, version, candidates } },
    );
  }
  return version;
}

/** The package name and version as a package action, refused when they could name no package. */
function actionFor(name: string, version: string): PackageAction {
  const parsed = PackageActionSchema.safeParse({ type: 'package', action: 'set-version', name, version });
  if (!parsed.success || /^\.+$/.test(name)) {
    throw new PackageError(
      'CLP_E_PACKAGE_NOT_FOUND',
      `"${name} ${version}" cannot name a package: a name is letters, digits and @._+- (not only dots), a version letters, digits and .:~_+-`,
      { details: { name, version } },
    );
  }
  return parsed.data;
}

/** Sets package NAME to VERSION from the local cache (or a kept or given file), keeping the previous version's file. */
export async function revertPackage(options: RevertOptions): Promise<RevertResult> {
  return withSession(options.root, options.log, async (session) => {
    const { root, stateDir, log } = session;
    const pm = await detectPackageManager(root, options.packageManager);
    const asked = actionFor(options.name, options.version);
    const kept = await keptFilesOf(stateDir, pm, asked.name);
    const version =
      options.file === undefined ? await versionMeant(pm, asked.name, asked.version, kept) : asked.version;
    if (version !== asked.version)
      log(`pkg revert: ${asked.name} ${asked.version} is ${version}, the only such version at hand`);
    const action: PackageAction = { ...asked, version };
    const { name } = action;
    const tx = newTxId();
    const txDir = txDirOf(stateDir, tx);
    const ctx: StepContext = { root, stateDir, txDir, log };

    const cached = await pm.findInCache(name, version);
    let packageFile = options.file === undefined ? undefined : resolve(options.file);
    if (packageFile === undefined && cached === null)
      packageFile = kept.find((k) => k.version === version)?.file;
    const fromKept = options.file === undefined && packageFile !== undefined;
    // Everything up to Transaction.prepare writes only inside txDir, which recovery removes if we die.
    let step: Awaited<ReturnType<typeof preparePackageStep>>;
    try {
      step = await preparePackageStep(action, {
        ...ctx,
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
      tx,
      packageManager: pm.kind,
      fromVersion: undo.fromVersion,
      toVersion: version,
      changed: undo.action !== 'none',
      origin: fromKept ? 'kept' : undo.origin,
      packageFile: packageFile ?? cached ?? (undo.packageFile as string),
      keptFile: undo.keptFile === null ? null : undo.keptFile.replace(txDir, revertDirOf(stateDir, name)),
      recovered: session.recovered,
    };
    if (undo.action === 'none') {
      await rm(txDir, { recursive: true, force: true });
      log(`pkg revert: ${name} is already at ${version}; nothing to do`);
      return result;
    }

    const info: PkgRevertInfo = {
      patch: { name },
      root,
      revert: {
        name,
        packageManager: pm.kind,
        fromVersion: result.fromVersion,
        toVersion: version,
        origin: result.origin,
        packageFile: result.packageFile,
        keptFile: result.keptFile,
      },
    };
    log(`pkg revert ${name} (transaction ${tx}): ${step.record.description}`);
    const transaction = new Transaction('pkg-revert', ctx, tx);
    try {
      await transaction.prepare([step.record], info, async () => {});
      await transaction.commit([{ records: [step.record], run: step.run }]);
    } catch (error) {
      const failure = asEngineError(error, `pkg revert of ${name} failed`);
      if (transaction.state === 'rolled-back') {
        log(
          `pkg revert: ${failure.message}; rolled back, ${name} is at ${undo.fromVersion ?? '(not installed)'} as before`,
        );
        await appendHistory(stateDir, {
          at: new Date().toISOString(),
          tx,
          op: 'pkg-revert',
          name,
          result: 'rolled-back',
          code: failure.code,
          message: failure.message,
        });
      }
      throw failure;
    }
    await transaction.finish(() => finishPkgRevert(stateDir, tx, info));
    log(`pkg revert: ${name} is now at ${version} (was ${undo.fromVersion ?? 'not installed'})`);
    return result;
  });
}
