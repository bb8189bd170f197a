import { basename, dirname, join } from 'node:path';
import { comparePatchNames } from '@clp/format';
import { scriptsUnderRoot } from './assess.ts';
import type { FileIdentity } from './backup.ts';
import { finishUninstall, type UninstallInfo } from './bookkeeping.ts';
import { EngineError, notInstalledError } from './errors.ts';
import {
  type FileUndo,
  fileUndo,
  identityOf,
  missingDirs,
  runFileBatch,
  stageFiles,
  stagePathFor,
} from './file-step.ts';
import { sha256File } from './hash.ts';
import { asEngineError, type Progress } from './install.ts';
import { lstatOwn } from './own-files.ts';
import { type PackageUndo, prepareReversePackageStep } from './package-managers/index.ts';
import { forEachInPinnedDir } from './pinned-dir.ts';
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
import type { StepContext, StepRecord, StepRun } from './step.ts';
import { makeTxDir, newTxId, type StepGroup, Transaction, txDirOf } from './transaction.ts';

export interface UninstallOptions {
  root?: string;
  /** Take the patch back even where its files changed since (drift). */
  force?: boolean;
  /** Under a --root other than /, let the patch's remove script run on this host (it is not confined to the root). */
  runScriptsOnHost?: boolean;
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

/** What is at each patched path of an installed patch now, looked up in its pinned folder. */
interface TargetNow {
  identity: (FileIdentity & { isFile: boolean; kind: string }) | null;
  sha256: string | null;
}

async function lookAtTargets(record: PatchRecord, root: string): Promise<Map<StepRecord, TargetNow>> {
  const steps = record.steps.filter((s) => s.kind === 'file');
  const found = new Map<StepRecord, TargetNow>();
  await forEachInPinnedDir(
    steps,
    (s) => dirname(fileUndo(s).target),
    (s) => ({ root, subject: fileUndo(s).path }),
    32,
    async (dir, s) => {
      const u = fileUndo(s);
      const at = dir?.at(basename(u.target));
      const identity = at === undefined ? null : await identityOf(at);
      // Only a regular file is read: a FIFO at a patched path would block the read forever.
      const sha256 = at !== undefined && identity?.isFile ? await sha256File(at, u.path) : null;
      found.set(s, { identity, sha256 });
    },
  );
  return found;
}

/**
 * Refuses (before anything changes, also with --force) a patch whose paths now hold something
 * clp does not replace: a folder, FIFO, socket, device or link.
 */
function refuseOddTargets(name: string, now: Map<StepRecord, TargetNow>): void {
  const odd = [...now].filter(([, n]) => n.identity !== null && !n.identity.isFile);
  if (odd.length === 0) return;
  const lines = odd.map(([s, n]) => `  - ${fileUndo(s).path} is a ${n.identity?.kind}`).join('\n');
  throw new EngineError(
    'CLP_E_TARGET_NOT_FILE',
    `${name} cannot be uninstalled: ${odd.length} of its paths no longer hold a regular file, and clp only puts back regular files (--force does not change that); nothing was changed:\n${lines}\nmove them away and run the command again`,
    {
      details: {
        paths: odd.map(([s, n]) => ({ path: fileUndo(s).path, kind: n.identity?.kind })),
      },
    },
  );
}

function driftOf(record: PatchRecord, now: Map<StepRecord, TargetNow>): Drift[] {
  const drift: Drift[] = [];
  for (const s of record.steps.filter((x) => x.kind === 'file')) {
    const u = fileUndo(s);
    const n = now.get(s)?.sha256 ?? null;
    const there = now.get(s)?.identity != null;
    if (u.stage === null) {
      if (there) drift.push({ path: u.path, problem: 'was removed by the patch but exists again' });
    } else if (!there) drift.push({ path: u.path, problem: 'was written by the patch but is gone' });
    else if (u.sha256 !== null && n !== u.sha256)
      drift.push({ path: u.path, problem: `has sha256 ${n}, the patch wrote ${u.sha256}` });
  }
  return drift;
}

/**
 * Files of an installed patch that are no longer what it wrote. Paths are looked up in their
 * folders as recorded, never through a link; a patched path that holds anything but a regular file
 * is refused with CLP_E_TARGET_NOT_FILE, a folder that became a link with CLP_E_LINK_REFUSED.
 */
export async function findDrift(record: PatchRecord, root = record.root ?? '/'): Promise<Drift[]> {
  const now = await lookAtTargets(record, root);
  refuseOddTargets(record.summary.name, now);
  return driftOf(record, now);
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
      throw notInstalledError(name, root);
    }
    // Its remove script would run on this host, not in the root (its install script, if the uninstall is taken back).
    if (record.meta.removeScript !== undefined && !options.runScriptsOnHost) {
      const why = scriptsUnderRoot({ ...record.meta, actions: [], installScript: undefined }, root);
      if (why !== null) throw new EngineError('CLP_E_SCRIPT_ON_HOST', why, { details: { name } });
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
    const now = await lookAtTargets(record, root);
    refuseOddTargets(name, now);
    const drift = driftOf(record, now);
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
    await checkInstallDir(installDir);
    const { records, groups, fileRecords } = await buildUninstallSteps(record, { ctx, tx, installDir, now });
    await makeTxDir(txDir);
    const total = groups.length;
    const progressed = groups.map((g, i) => ({
      records: g.records,
      run: (run?: StepRun) => {
        options.progress?.({
          step: i + 1,
          total,
          description: g.records.map((r) => r.description).join(', '),
        });
        return g.run(run);
      },
    }));
    const removeDirs = record.steps.filter((s) => s.kind === 'file').flatMap((s) => fileUndo(s).createdDirs);
    const info: UninstallInfo = { patch: { name }, patchDir: installDir, removeDirs, root };
    log(`uninstall ${name} (transaction ${tx})`);
    const transaction = new Transaction('uninstall', ctx, tx);
    try {
      await transaction.prepare(records, info, () => stageFiles(fileRecords, root));
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

/** The installed patch's folder and its backups are clp's own: none of them may be a link. */
async function checkInstallDir(installDir: string): Promise<void> {
  for (const sub of ['', 'backup', 'patch']) {
    await lstatOwn(sub === '' ? installDir : join(installDir, sub), "clp's folder of an installed patch");
  }
}

/**
 * The uninstall is a transaction of its own, made of ordinary steps whose "new content" is the
 * install's backups: so it is staged, journaled, rolled back and recovered exactly like an install.
 */
async function buildUninstallSteps(
  install: PatchRecord,
  b: { ctx: StepContext; tx: string; installDir: string; now: Map<StepRecord, TargetNow> },
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
  for (const step of fileSteps) {
    const was = fileUndo(step);
    const now = b.now.get(step)?.identity ?? null;
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
    const reverse = await prepareReversePackageStep(step, { ...b.ctx, index: records.length });
    records.push(reverse.record);
    groups.push({ records: [reverse.record], run: reverse.run });
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
