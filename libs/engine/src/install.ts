import { mkdir, rm } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import {
  type CheckAction,
  isClpError,
  openPatch,
  type PackageAction,
  type PatchMeta,
  type ServiceAction,
  SMALL_ENTRY_BYTES,
} from '@clp/format';
import { SIGNATURE_ENTRY, TrustStore, verifySignedEntries } from '@clp/trust';
import { assessPatch, type EngineArchive, type PlannedScript } from './assess.ts';
import { finishInstall, type InstallInfo, markFailed } from './bookkeeping.ts';
import { mapLimit } from './concurrency.ts';
import { codeForSystemError, EngineError, refusalError } from './errors.ts';
import {
  type DirectSource,
  type FileUndo,
  missingDirs,
  runFileBatch,
  stageFiles,
  stagePathFor,
} from './file-step.ts';
import { type CheckResult, runCheck } from './health-check.ts';
import { readHostFacts } from './host.ts';
import { checkTrustStore } from './own-files.ts';
import { detectPackageManager, type PackageManager, preparePackageStep } from './package-managers/index.ts';
import { keysDirOf } from './paths.ts';
import { patchDirIn, prepareScriptStep, type ScriptUndo } from './script-step.ts';
import { prepareServiceStep, type ServiceUndo, whySkipService } from './service-step.ts';
import { type Session, withSession } from './session.ts';
import { appendHistory, type InstalledPatch, readIndex } from './state.ts';
import type { StepContext, StepRecord } from './step.ts';
import { makeTxDir, newTxId, type StepGroup, Transaction, txDirOf } from './transaction.ts';

export interface Progress {
  /** 1-based number of the step group running now. */
  step: number;
  total: number;
  description: string;
}

export interface InstallOptions {
  root?: string;
  /** Install without checking the signature (local development only; loud about it). */
  insecure?: boolean;
  /** Go ahead when a package step cannot keep the installed version for undo. */
  allowIrreversible?: boolean;
  /** pacman or dpkg; detected from the root when not given. */
  packageManager?: string;
  /** Install a patch that failed on this machine before. */
  force?: boolean;
  /** Under a --root other than /, let the patch's scripts run on this host (they are not confined to the root). */
  runScriptsOnHost?: boolean;
  /** Fetch a package action's plain http:// URL (its signed sha256 still decides); default: https only. */
  allowHttp?: boolean;
  /** The most bytes a package download whose action names no size may have (default 1 GiB). */
  maxDownloadBytes?: number;
  /** The machine's architecture, for tests (default: this machine's). */
  architecture?: string;
  log?: (line: string) => void;
  /** Loud notes for people (the --insecure warning); default stderr. */
  warn?: (message: string) => void;
  progress?: (p: Progress) => void;
}

export interface InstallResult {
  name: string;
  tx: string;
  root: string;
  signedBy: string | null;
  steps: Array<{ kind: string; description: string }>;
  /** Steps that were recorded but not carried out here, and why (services under another root). */
  skipped: string[];
  checks: CheckResult[];
  recovered: Session['recovered'];
}

/** Signature and hashes: the verified manifest, or (insecure) the archive's own hashes. */
async function trustOf(
  archive: EngineArchive,
  root: string,
  insecure: boolean,
  log: (line: string) => void,
  warn: (message: string) => void,
): Promise<{ expected: ReadonlyMap<string, { sha256: string; size: number }>; signedBy: string | null }> {
  if (!insecure) {
    await checkTrustStore(root);
    const store = await TrustStore.load(keysDirOf(root));
    // Each payload byte is checked against this manifest as it is extracted, before anything is used.
    const manifest = await verifySignedEntries(archive, store);
    log(
      `${archive.meta.name}: signature by ${manifest.keyName} (${manifest.keyId}) verified over ${manifest.size} entries`,
    );
    return { expected: manifest, signedBy: manifest.keyId };
  }
  const message = `WARNING: installing ${archive.meta.name} WITHOUT checking its signature (--insecure); never do this on a production machine`;
  warn(message);
  log(message);
  const expected = await archive.hashEntries();
  expected.delete(SIGNATURE_ENTRY);
  return { expected, signedBy: null };
}

/** A refused install changes nothing but is kept in the history, so that `history` explains it. */
function recordRefusal(
  stateDir: string,
  name: string,
  error: { code: string; message: string },
): Promise<void> {
  return appendHistory(stateDir, {
    at: new Date().toISOString(),
    tx: `refused-${newTxId()}`,
    op: 'install',
    name,
    result: 'refused',
    code: error.code,
    message: error.message,
  });
}

/** Installs a .clp patch as one transaction; throws a ClpError naming the cause, with the system as before. */
export async function installPatch(file: string, options: InstallOptions = {}): Promise<InstallResult> {
  const warn = options.warn ?? ((m: string) => process.stderr.write(`${m}\n`));
  return withSession(options.root, options.log, async (session) => {
    const archive = (await openPatch(file)) as unknown as EngineArchive;
    try {
      return await installOpened(archive, session, options, warn);
    } finally {
      await archive.close();
    }
  });
}

async function installOpened(
  archive: EngineArchive,
  session: Session,
  options: InstallOptions,
  warn: (m: string) => void,
): Promise<InstallResult> {
  const { root, stateDir, log } = session;
  const meta = archive.meta;
  const name = meta.name;
  const trust = await trustOf(archive, root, options.insecure ?? false, log, warn).catch(
    async (error: unknown) => {
      if (isClpError(error)) {
        log(`install ${name} refused: ${error.code}: ${error.message}`);
        await recordRefusal(stateDir, name, error);
      }
      throw error;
    },
  );
  const index = await readIndex(stateDir);
  const host = await readHostFacts(root, options.architecture);
  const assessment = await assessPatch(archive, {
    root,
    host,
    index,
    retryFailed: options.force ?? false,
    runScriptsOnHost: options.runScriptsOnHost ?? false,
    allowHttp: options.allowHttp ?? false,
  });
  const packageActions = meta.actions.filter((a): a is PackageAction => a.type === 'package');
  let pm: PackageManager | null = null;
  if (packageActions.length > 0) {
    pm = await detectPackageManager(root, options.packageManager).catch((error: unknown) => {
      if (!isClpError(error)) throw error;
      assessment.refusals.push({ code: error.code, rule: 'package-manager', message: error.message });
      return null;
    });
  }
  if (assessment.refusals.length > 0) {
    const error = refusalError(assessment.refusals, name);
    log(error.message);
    await recordRefusal(stateDir, name, error);
    throw error;
  }

  const tx = newTxId();
  const txDir = txDirOf(stateDir, tx);
  const patchDir = patchDirIn(txDir);
  const ctx: StepContext = { root, stateDir, txDir, log };
  log(`install ${name} (transaction ${tx}) from ${archive.file}`);

  // Everything up to Transaction.prepare writes only inside txDir, which recovery removes if we die.
  let records: StepRecord[];
  let groups: StepGroup[];
  let fileRecords: StepRecord[];
  const direct = stagedStraight(meta);
  const inTxDirNot = notExtracted(meta, direct);
  await makeTxDir(txDir);
  try {
    await mkdir(patchDir, { recursive: true });
    const extracted = archive.entries.filter((e) => e.name !== SIGNATURE_ENTRY && !inTxDirNot.has(e.name));
    await archive.extractTo(patchDir, {
      only: (entry) => entry !== SIGNATURE_ENTRY && !inTxDirNot.has(entry),
      expected: trust.expected,
    });
    log(`${name}: extracted and re-checked ${extracted.length} entries`);
    ({ records, groups, fileRecords } = await buildSteps(archive, assessment, {
      ctx,
      patchDir,
      tx,
      pm,
      expected: trust.expected,
      options,
    }));
  } catch (error) {
    await rm(txDir, { recursive: true, force: true });
    throw asEngineError(error, `could not prepare ${name}`);
  }

  const checks = meta.actions.filter((a): a is CheckAction => a.type === 'check');
  const checkResults: CheckResult[] = [];
  if (checks.length > 0) {
    // Checks run inside the transaction, after every change and before the commit point: a check
    // that fails (or a crash during the health window) takes the whole patch back.
    groups.push({
      records: [],
      async run() {
        for (const check of checks) {
          const result = await runCheck(check, { root, patchDir, log });
          checkResults.push(result);
          if (!result.ok) {
            throw new EngineError(
              'CLP_E_CHECK_FAILED',
              `health ${result.check} failed after installing ${name}: ${result.detail}; the patch was rolled back and is marked failed on this machine`,
              {
                details: { check: result.check },
              },
            );
          }
        }
      },
    });
  }
  const total = groups.length;
  groups = groups.map((g, i) => ({
    records: g.records,
    run: (run) => {
      options.progress?.({
        step: i + 1,
        total,
        description: g.records.map((r) => r.description).join(', ') || 'health checks',
      });
      return g.run(run);
    },
  }));

  const summary: InstalledPatch = {
    name,
    series: meta.series,
    version: meta.version,
    architecture: meta.architecture,
    ...(meta.description !== undefined ? { description: meta.description } : {}),
    ...(meta.severity !== undefined ? { severity: meta.severity } : {}),
    installedAt: new Date().toISOString(),
    signedBy: trust.signedBy,
    files: fileRecords.length,
    steps: records.length,
  };
  const info: InstallInfo = { patch: summary, meta, root };
  const sizes = new Map(archive.entries.map((e) => [e.name, e.size]));
  const entryOf = new Map<StepRecord, { name: string; size: number }>();
  for (const [i, f] of assessment.files.entries()) {
    const source = f.action.source;
    if (source !== undefined && direct.has(source))
      entryOf.set(fileRecords[i] as StepRecord, { name: source, size: sizes.get(source) ?? 0 });
  }
  const source: DirectSource = { archive, expected: trust.expected, entryOf, smallBytes: SMALL_ENTRY_BYTES };
  const transaction = new Transaction('install', ctx, tx);
  try {
    await transaction.prepare(records, info, async () => {
      await stageFiles(fileRecords, root, source);
      log(`${name}: staged ${fileRecords.length} file(s) next to their targets`);
    });
    await transaction.commit(groups);
  } catch (error) {
    const failure = asEngineError(error, `installing ${name} failed`);
    if (failure.code === 'CLP_E_ROLLBACK_FAILED' || transaction.state !== 'rolled-back') throw failure;
    log(`install ${name} failed and was rolled back: ${failure.code}: ${failure.message}`);
    await appendHistory(stateDir, {
      at: new Date().toISOString(),
      tx,
      op: 'install',
      name,
      result: failure.code === 'CLP_E_CHECK_FAILED' ? 'failed' : 'rolled-back',
      code: failure.code,
      message: failure.message,
    });
    if (failure.code === 'CLP_E_CHECK_FAILED')
      await markFailed(stateDir, name, failure.code, failure.message);
    throw failure;
  }
  await transaction.finish(() => finishInstall(stateDir, tx, records, info));
  log(`installed ${name}`);
  const skipped = records
    .filter((r) => r.kind === 'service' && (r.undo as ServiceUndo).skipped !== null)
    .map((r) => `${r.description}: ${(r.undo as ServiceUndo).skipped}`);
  return {
    name,
    tx,
    root,
    signedBy: trust.signedBy,
    steps: records.map((r) => ({ kind: r.kind, description: r.description })),
    skipped,
    checks: checkResults,
    recovered: session.recovered,
  };
}

/** The entries that are the content of exactly one file action: staged straight from the patch. */
function stagedStraight(meta: PatchMeta): Set<string> {
  const uses = new Map<string, number>();
  for (const a of meta.actions)
    if (a.type === 'file' && a.source !== undefined) uses.set(a.source, (uses.get(a.source) ?? 0) + 1);
  return new Set([...uses].filter(([, count]) => count === 1).map(([entry]) => entry));
}

/**
 * Which of those the transaction folder need not hold as well. Scripts and checks run in the
 * extracted patch folder and may read any entry, so with any of them it keeps every entry (their
 * content is then read twice); a package file is always extracted for its package manager.
 */
function notExtracted(meta: PatchMeta, direct: ReadonlySet<string>): Set<string> {
  const runsInPatchFolder =
    meta.installScript !== undefined ||
    meta.removeScript !== undefined ||
    meta.actions.some((a) => a.type === 'script' || a.type === 'check');
  if (runsInPatchFolder) return new Set();
  const skipped = new Set(direct);
  for (const a of meta.actions) if (a.type === 'package' && a.source !== undefined) skipped.delete(a.source);
  return skipped;
}

/** Errors that already name their cause pass through; system errors get the code of their errno. */
export function asEngineError(error: unknown, what: string): EngineError | (Error & { code: string }) {
  if (isClpError(error)) return error as Error & { code: string };
  const code = codeForSystemError(error);
  return new EngineError(
    code,
    `${what}: ${(error as Error).message}; nothing was changed (any partial change was rolled back)`,
    { cause: error },
  );
}

interface BuildContext {
  ctx: StepContext;
  patchDir: string;
  tx: string;
  pm: PackageManager | null;
  expected: ReadonlyMap<string, { sha256: string; size: number }>;
  options: InstallOptions;
}

/** Turns the assessed patch into journaled step records and the groups that run them, in order. */
async function buildSteps(
  archive: EngineArchive,
  assessment: Awaited<ReturnType<typeof assessPatch>>,
  b: BuildContext,
): Promise<{ records: StepRecord[]; groups: StepGroup[]; fileRecords: StepRecord[] }> {
  const records: StepRecord[] = [];
  const groups: StepGroup[] = [];
  const scriptGroup = (s: PlannedScript): void => {
    const undo: ScriptUndo = {
      script: s.entry,
      interpreter: s.interpreter,
      timeoutMs: s.timeoutMs,
      undoScript: s.undoScript,
      undoInterpreter: s.undoInterpreter,
      patchDir: b.patchDir,
    };
    const record: StepRecord = { kind: 'script', index: records.length, description: `run ${s.entry}`, undo };
    records.push(record);
    const step = prepareScriptStep(record, b.ctx);
    groups.push({ records: [record], run: step.run });
  };

  for (const s of assessment.scripts.filter((x) => x.when === 'pre')) scriptGroup(s);

  const fileRecords: StepRecord[] = [];
  // Files of one folder share its answer: the folders are looked up once each.
  const missing = new Map<string, Promise<string[]>>();
  const missingOnce = (dir: string): Promise<string[]> => {
    let found = missing.get(dir);
    if (found === undefined) {
      found = missingDirs(b.ctx.root, dir);
      missing.set(dir, found);
    }
    return found;
  };
  const newDirs = await mapLimit(assessment.files, 32, (f) =>
    f.action.action === 'remove' ? Promise.resolve([]) : missingOnce(dirname(f.target)),
  );
  for (const [i, f] of assessment.files.entries()) {
    const index = records.length;
    const remove = f.action.action === 'remove';
    const source = remove ? null : (f.action.source as string);
    const undo: FileUndo = {
      target: f.target,
      path: f.action.path,
      stage: remove ? null : stagePathFor(f.target, b.tx, index),
      source: source === null ? null : join(b.patchDir, source),
      existed: f.current !== null,
      backup: f.current !== null ? `backup/${index}` : null,
      orig: f.current !== null ? { mode: f.current.mode, uid: f.current.uid, gid: f.current.gid } : null,
      next: f.next,
      sha256: source === null ? null : (f.action.sha256 ?? b.expected.get(source)?.sha256 ?? null),
      createdDirs: newDirs[i] ?? [],
    };
    const record: StepRecord = {
      kind: 'file',
      index,
      description: `${f.action.action} ${f.action.path}`,
      undo,
    };
    records.push(record);
    fileRecords.push(record);
  }
  if (fileRecords.length > 0)
    groups.push({ records: fileRecords, run: () => runFileBatch(fileRecords, b.ctx) });

  for (const action of archive.meta.actions.filter((a): a is PackageAction => a.type === 'package')) {
    const step = await preparePackageStep(action, {
      ...b.ctx,
      patchDir: b.patchDir,
      packageManager: b.pm as PackageManager,
      allowIrreversible: b.options.allowIrreversible ?? false,
      index: records.length,
      allowHttp: b.options.allowHttp ?? false,
      ...(b.options.maxDownloadBytes === undefined ? {} : { maxDownloadBytes: b.options.maxDownloadBytes }),
    });
    records.push(step.record);
    groups.push({ records: [step.record], run: step.run });
  }

  for (const s of assessment.scripts.filter((x) => x.when === 'post')) scriptGroup(s);

  const services = archive.meta.actions.filter((a): a is ServiceAction => a.type === 'service');
  if (services.length > 0) {
    const skipped = await whySkipService(b.ctx.root);
    for (const service of services) {
      const undo: ServiceUndo = { unit: service.unit, action: service.action, skipped };
      const record: StepRecord = {
        kind: 'service',
        index: records.length,
        description: `systemctl ${service.action} ${service.unit}${skipped !== null ? ' (skipped)' : ''}`,
        undo,
      };
      records.push(record);
      const step = prepareServiceStep(record, b.ctx);
      groups.push({ records: [record], run: step.run });
    }
  }
  return { records, groups, fileRecords };
}
