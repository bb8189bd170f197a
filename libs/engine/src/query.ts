import { isClpError, openPatch, type PackageAction } from '@clp/format';
import { TrustStore, verifyPatch } from '@clp/trust';
import { assessPatch, type EngineArchive } from './assess.ts';
import { notInstalledError, type Refusal } from './errors.ts';
import { readHostFacts } from './host.ts';
import { checkTrustStore } from './own-files.ts';
import { detectPackageManager } from './package-managers/index.ts';
import { keysDirOf, logFileOf } from './paths.ts';
import type { RecoverResult } from './recover.ts';
import { withSession } from './session.ts';
import {
  type FailedMark,
  type HistoryEntry,
  type InstalledPatch,
  type PatchRecord,
  readHistoryFile,
  readIndex,
  readPatchRecord,
} from './state.ts';

interface QueryOptions {
  root?: string;
  log?: (line: string) => void;
}

export async function listInstalled(options: QueryOptions = {}): Promise<InstalledPatch[]> {
  return withSession(
    options.root,
    options.log,
    async ({ stateDir }) => (await readIndex(stateDir)).installed,
  );
}

/** The record of an installed patch (its metadata and steps); CLP_E_NOT_INSTALLED when it is not. */
export async function getPatch(name: string, options: QueryOptions = {}): Promise<PatchRecord> {
  return withSession(options.root, options.log, async ({ root, stateDir }) => {
    const index = await readIndex(stateDir);
    const record = index.installed.some((p) => p.name === name)
      ? await readPatchRecord(stateDir, name)
      : null;
    if (record === null) {
      throw notInstalledError(name, root);
    }
    return record;
  });
}

export async function readHistory(options: QueryOptions = {}): Promise<HistoryEntry[]> {
  return withSession(options.root, options.log, async ({ stateDir }) => readHistoryFile(stateDir));
}

export interface EngineStatus {
  root: string;
  stateDir: string;
  log: string;
  installed: InstalledPatch[];
  failed: FailedMark[];
  /** What recovery found when status ran. */
  recovered: RecoverResult;
  lastEvent: HistoryEntry | null;
  trustedKeys: number;
}

export async function engineStatus(options: QueryOptions = {}): Promise<EngineStatus> {
  return withSession(options.root, options.log, async ({ root, stateDir, recovered }) => {
    const index = await readIndex(stateDir);
    const history = await readHistoryFile(stateDir);
    await checkTrustStore(root);
    const store = await TrustStore.load(keysDirOf(root)).catch(() => null);
    return {
      root,
      stateDir,
      log: logFileOf(root),
      installed: index.installed,
      failed: index.failed,
      recovered,
      lastEvent: history.at(-1) ?? null,
      trustedKeys: store?.keys.length ?? 0,
    };
  });
}

export interface Explanation {
  name: string;
  applies: boolean;
  refusals: Refusal[];
  /** What installing would do, step by step (when it applies). */
  plan: string[];
}

/**
 * Every rule that would stop the patch here, all at once, without changing anything (beyond the
 * recovery every command runs first).
 */
export async function explainPatch(
  file: string,
  options: QueryOptions & {
    insecure?: boolean;
    architecture?: string;
    packageManager?: string;
    force?: boolean;
    runScriptsOnHost?: boolean;
    allowHttp?: boolean;
  } = {},
): Promise<Explanation> {
  return withSession(options.root, options.log, async ({ root, stateDir }) => {
    const archive = (await openPatch(file)) as unknown as EngineArchive;
    try {
      const refusals: Refusal[] = [];
      if (!options.insecure) {
        try {
          await checkTrustStore(root);
          await verifyPatch(archive, await TrustStore.load(keysDirOf(root)));
        } catch (error) {
          if (!isClpError(error)) throw error;
          refusals.push({ code: error.code, rule: 'trust', message: error.message });
        }
      }
      const host = await readHostFacts(root, options.architecture);
      const assessment = await assessPatch(archive, {
        root,
        host,
        index: await readIndex(stateDir),
        retryFailed: options.force ?? false,
        runScriptsOnHost: options.runScriptsOnHost ?? false,
        allowHttp: options.allowHttp ?? false,
      });
      refusals.push(...assessment.refusals);
      if (archive.meta.actions.some((a): a is PackageAction => a.type === 'package')) {
        const pm = await detectPackageManager(root, options.packageManager).catch((error: unknown) => {
          if (!isClpError(error)) throw error;
          refusals.push({ code: error.code, rule: 'package-manager', message: error.message });
          return null;
        });
        for (const action of pm === null ? [] : archive.meta.actions) {
          if (action.type !== 'package' || action.source !== undefined || action.url !== undefined) continue;
          if ((await pm?.findInCache(action.name, action.version)) == null) {
            refusals.push({
              code: 'CLP_E_PACKAGE_NOT_FOUND',
              rule: 'package',
              message: `no package file for ${action.name} ${action.version}: not in the patch, not in the ${pm?.kind} cache, and no URL given`,
            });
          }
        }
      }
      const plan = [
        ...assessment.scripts
          .filter((s) => s.when === 'pre')
          .map((s) => `run ${s.entry} (${s.interpreter.label})`),
        ...assessment.files.map((f) => `${f.action.action} ${f.action.path}`),
        ...archive.meta.actions.flatMap((a) =>
          a.type === 'package' ? [`set package ${a.name} to ${a.version}`] : [],
        ),
        ...assessment.scripts
          .filter((s) => s.when === 'post')
          .map((s) => `run ${s.entry} (${s.interpreter.label})`),
        ...archive.meta.actions.flatMap((a) =>
          a.type === 'service' ? [`systemctl ${a.action} ${a.unit}`] : [],
        ),
        ...archive.meta.actions.flatMap((a) =>
          a.type === 'check'
            ? [`check ${a.command ?? `unit ${a.unit} is active`} within ${a.withinMs} ms`]
            : [],
        ),
      ];
      return { name: archive.meta.name, applies: refusals.length === 0, refusals, plan };
    } finally {
      await archive.close();
    }
  });
}
