import { mkdir } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { comparePatchNames } from '@clp/format';
import { finishUninstall, type UninstallInfo } from './bookkeeping.ts';
import { mapLimit } from './concurrency.ts';
import { EngineError } from './errors.ts';
import {
  type FileUndo,
  fileUndo,
  identityOf,
  missingDirs,
  runFileBatch,
  stageFiles,
  stagePathFor,
} from './file-step.ts';
import { sha256OrNull } from './hash.ts';
import { asEngineError, type Progress } from './install.ts';
import { type PackageUndo, undoPackageStep } from './package-managers/index.ts';
import { rebaseRecords } from './rebase.ts';
import {
  DEFAULT_SCRIPT_TIMEOUT_MS,
  interpreterOf,
  prepareScriptStep,
  type ScriptUndo,
} from './script-step.ts';
import { prepareServiceStep, type ServiceUndo } from './service-step.ts';
import { withSession } from './session.ts';
import { appendHistory, type PatchRecord, patchDirOf, readIndex, readPatchRecord } from './state.ts';
import type { StepContext, StepRecord } from './step.ts';
import { newTxId, type StepGroup, Transaction, txDirOf } from './transaction.ts';

export interface UninstallOptions {
  root?: string;
  /** Take the patch back even where its files changed since (drift). */
  force?: boolean;
  log?: (line: string) => void;
  progress?: (p: Progress) => void;
}

export interface UninstallResult {
  name: string;
  tx: string;
  root: string;
  steps: Array<{ kind: string; description: string }>;
  /** Files that had changed since the install and were overwritten anyway (--force). */
  drift: Drift[];
}

function safeCompare(a: string, b: string): number {
  try {
    return comparePatchNames(a, b);
  } catch {
    return a.localeCompare(b);
  }
}

export interface Drift {
  path: string;
  problem: string;
}

/** Files of an installed patch that are no longer what it wrote. */
export async function findDrift(record: PatchRecord): Promise<Drift[]> {
  const files = record.steps.filter((s) => s.kind === 'file').map(fileUndo);
  const found = await mapLimit(files, 32, async (u): Promise<Drift | null> => {
    const now = await sha256OrNull(u.target);
    if (u.stage === null) {
      return now !== null ? { path: u.path, problem: 'was removed by the patch but exists again' } : null;
    }
    if (now === null) return { path: u.path, problem: 'was written by the patch but is gone' };
    if (u.sha256 !== null && now !== u.sha256) {
      return { path: u.path, problem: `has sha256 ${now}, the patch wrote ${u.sha256}` };
    }
    return null;
  });
  return found.filter((d): d is Drift => d !== null);
}

/**
 * Takes an installed patch back as one transaction: runs its remove script, puts every file back
 * from the install's backups (content, mode, owner), reverts its packages, reloads its services.
 */
export async function uninstallPatch(name: string, options: UninstallOptions = {}): Promise<UninstallResult> {
  return withSession(options.root, options.log, async ({ root, stateDir, log }) => {
    const index = await readIndex(stateDir);
    const stored = index.installed.some((p) => p.name === name)
      ? await readPatchRecord(stateDir, name)
      : null;
    const record =
      stored === null ? null : { ...stored, steps: rebaseRecords(stored.steps, stored.root, root), root };
    if (record === null) {
      throw new EngineError(
        'CLP_E_NOT_INSTALLED',
        `${name} is not installed under ${root}; 'clpctl list' shows what is`,
        { details: { name } },
      );
    }
    // Patches of a series stack: a newer one was made against what this one left.
    const above = index.installed.filter(
      (p) => p.series === record.summary.series && p.name !== name && safeCompare(p.name, name) > 0,
    );
    if (above.length > 0 && !options.force) {
      const names = above.map((p) => p.name).join(', ');
      throw new EngineError(
        'CLP_E_DOWNGRADE',
        `${name} is older than ${names} of series ${record.summary.series}, installed after it; uninstall ${names} first (or use --force)`,
        { details: { name, newer: above.map((p) => p.name) } },
      );
    }
    const drift = await findDrift(record);
    if (drift.length > 0) {
      const lines = drift.map((d) => `  - ${d.path} ${d.problem}`).join('\n');
      if (!options.force) {
        throw new EngineError(
          'CLP_E_DRIFT',
          `${name} cannot be uninstalled safely: ${drift.length} file(s) changed since it was installed:\n${lines}\nuse --force to put the files from before the patch back anyway`,
          {
            details: { drift },
          },
        );
      }
      log(`uninstall ${name}: --force overrides drift:\n${lines}`);
    }

    const tx = newTxId();
    const txDir = txDirOf(stateDir, tx);
    const installDir = patchDirOf(stateDir, name);
    const ctx: StepContext = { root, stateDir, txDir, log };
    const { records, groups, fileRecords } = await buildUninstallSteps(record, { ctx, tx, installDir });
    await mkdir(txDir, { recursive: true });
    const total = groups.length;
    const progressed = groups.map((g, i) => ({
      records: g.records,
      run: () => {
        options.progress?.({
          step: i + 1,
          total,
          description: g.records.map((r) => r.description).join(', '),
        });
        return g.run();
      },
    }));
    const removeDirs = record.steps.filter((s) => s.kind === 'file').flatMap((s) => fileUndo(s).createdDirs);
    const info: UninstallInfo = { patch: { name }, patchDir: installDir, removeDirs, root };
    log(`uninstall ${name} (transaction ${tx})`);
    const transaction = new Transaction('uninstall', ctx, tx);
    try {
      await transaction.prepare(records, info, () => stageFiles(fileRecords));
      await transaction.commit(progressed);
    } catch (error) {
      const failure = asEngineError(error, `uninstalling ${name} failed`);
      if (transaction.state === 'rolled-back') {
        log(
          `uninstall ${name} failed and was rolled back (the patch stays installed): ${failure.code}: ${failure.message}`,
        );
        await appendHistory(stateDir, {
          at: new Date().toISOString(),
          tx,
          op: 'uninstall',
          name,
          result: 'rolled-back',
          code: failure.code,
          message: failure.message,
        });
      }
      throw failure;
    }
    await transaction.finish(() => finishUninstall(stateDir, tx, info));
    log(`uninstalled ${name}`);
    return {
      name,
      tx,
      root,
      steps: records.map((r) => ({ kind: r.kind, description: r.description })),
      drift,
    };
  });
}

/**
 * The uninstall is a transaction of its own, made of ordinary steps whose "new content" is the
 * install's backups: so it is staged, journaled, rolled back and recovered exactly like an install.
 */
async function buildUninstallSteps(
  install: PatchRecord,
  b: { ctx: StepContext; tx: string; installDir: string },
): Promise<{ records: StepRecord[]; groups: StepGroup[]; fileRecords: StepRecord[] }> {
  const records: StepRecord[] = [];
  const groups: StepGroup[] = [];
  const patchDir = join(b.installDir, 'patch');

  if (install.meta.removeScript !== undefined) {
    const script = install.meta.removeScript;
    const undo: ScriptUndo = {
      script,
      interpreter: await interpreterOf(join(patchDir, script)),
      timeoutMs: DEFAULT_SCRIPT_TIMEOUT_MS,
      // Taking the uninstall back means the patch is installed again: its install script reruns.
      undoScript: install.meta.installScript ?? null,
      undoInterpreter:
        install.meta.installScript !== undefined
          ? await interpreterOf(join(patchDir, install.meta.installScript))
          : null,
      patchDir,
    };
    const record: StepRecord = { kind: 'script', index: records.length, description: `run ${script}`, undo };
    records.push(record);
    groups.push({ records: [record], run: prepareScriptStep(record, b.ctx).run });
  }

  const fileRecords: StepRecord[] = [];
  const installed = [...install.steps].reverse();
  const fileSteps = installed.filter((s) => s.kind === 'file');
  const nowOf = await mapLimit(fileSteps, 32, (s) => identityOf(fileUndo(s).target));
  for (const [i, step] of fileSteps.entries()) {
    const was = fileUndo(step);
    const now = nowOf[i] ?? null;
    const index = records.length;
    const nowIdentity = now === null ? null : { mode: now.mode, uid: now.uid, gid: now.gid };
    let undo: FileUndo;
    if (was.existed) {
      if (was.backup === null || was.orig === null) continue;
      undo = {
        target: was.target,
        path: was.path,
        stage: stagePathFor(was.target, b.tx, index),
        source: join(b.installDir, was.backup),
        existed: now !== null,
        backup: now !== null ? `backup/${index}` : null,
        orig: nowIdentity,
        next: was.orig,
        sha256: null,
        createdDirs: now !== null ? [] : await missingDirs(b.ctx.root, dirname(was.target)),
      };
    } else {
      if (now === null) continue;
      undo = {
        target: was.target,
        path: was.path,
        stage: null,
        source: null,
        existed: true,
        backup: `backup/${index}`,
        orig: nowIdentity,
        next: null,
        sha256: null,
        createdDirs: [],
      };
    }
    const record: StepRecord = {
      kind: 'file',
      index,
      description: `${was.existed ? 'restore' : 'remove'} ${was.path}`,
      undo,
    };
    records.push(record);
    fileRecords.push(record);
  }
  if (fileRecords.length > 0)
    groups.push({ records: fileRecords, run: () => runFileBatch(fileRecords, b.ctx) });

  for (const step of installed.filter((s) => s.kind === 'package')) {
    const was = step.undo as unknown as PackageUndo;
    if (was.action === 'none') continue;
    if (was.action === 'irreversible') {
      throw new EngineError(
        'CLP_E_IRREVERSIBLE',
        `${was.name} cannot be put back to ${was.fromVersion}: the install kept no package file of it (it was allowed as irreversible); revert it by hand with 'clpctl pkg revert'`,
        {
          details: { name: was.name, fromVersion: was.fromVersion },
        },
      );
    }
    // Reverse of the install step: its undo goes forward, and the install's new file takes it back.
    const reverse: PackageUndo = {
      packageManager: was.packageManager,
      name: was.name,
      fromVersion: was.toVersion,
      toVersion: was.fromVersion ?? '',
      packageFile: was.keptFile ?? '',
      origin: 'file',
      keptFile: was.packageFile,
      action: 'install',
    };
    const record: StepRecord = {
      kind: 'package',
      index: records.length,
      description: `set package ${was.name} ${was.toVersion} -> ${was.fromVersion ?? '(not installed)'} (${was.packageManager})`,
      undo: { ...reverse },
    };
    records.push(record);
    groups.push({ records: [record], run: () => undoPackageStep(step, b.ctx) });
  }

  for (const step of installed.filter((s) => s.kind === 'service')) {
    const was = step.undo as ServiceUndo;
    const record: StepRecord = {
      kind: 'service',
      index: records.length,
      description: step.description,
      undo: { ...was },
    };
    records.push(record);
    groups.push({ records: [record], run: prepareServiceStep(record, b.ctx).run });
  }
  return { records, groups, fileRecords };
}
