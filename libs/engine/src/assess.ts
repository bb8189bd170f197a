/**
 * Every rule that can stop a patch on this machine, checked without writing anything. Install
 * and explain share it: install stops at the first assessment with refusals, explain lists them.
 */
import { resolve } from 'node:path';
import { comparePatchNames, type FileAction, type PatchMeta, type ScriptAction } from '@clp/format';
import type { FileIdentity } from './backup.ts';
import { mapLimit } from './concurrency.ts';
import type { Refusal } from './errors.ts';
import { identityOf } from './file-step.ts';
import { sha256File } from './hash.ts';
import { compareVersions, type HostFacts } from './host.ts';
import { Owners } from './owners.ts';
import { checkedUrl } from './package-managers/download.ts';
import type { PackageError } from './package-managers/errors.ts';
import { resolveUnderRoot } from './paths.ts';
import {
  DEFAULT_SCRIPT_TIMEOUT_MS,
  type Interpreter,
  interpreterFromHead,
  missingInterpreter,
} from './script-step.ts';
import type { StagingArchive } from './stage-direct.ts';
import type { StateIndex } from './state.ts';

/** What the engine needs of an opened patch (@clp/format's PatchArchive has it). */
export interface EngineArchive extends StagingArchive {
  readonly file: string;
  readonly meta: PatchMeta;
  readonly entries: readonly { name: string; size: number; mode: number }[];
  has(name: string): boolean;
  readEntry(name: string, maxBytes: number): Promise<Buffer>;
  hashEntries(): Promise<Map<string, { sha256: string; size: number }>>;
  extractTo(
    dir: string,
    opts?: {
      only?: (name: string) => boolean;
      expected?: ReadonlyMap<string, { sha256: string; size: number }>;
    },
  ): Promise<void>;
  close(): Promise<void>;
}

export interface PlannedFile {
  action: FileAction;
  /** The real path under the root. */
  target: string;
  /** What is there now (null: nothing). */
  current: (FileIdentity & { isFile: boolean; kind: string }) | null;
  /** Mode and owner the new file gets (null for a removal). */
  next: FileIdentity | null;
}

export interface PlannedScript {
  /** The entry inside the patch. */
  entry: string;
  when: 'pre' | 'post';
  interpreter: Interpreter;
  timeoutMs: number;
  /** The patch's remove script, run when this step is taken back (the historic install script only). */
  undoScript: string | null;
  undoInterpreter: Interpreter | null;
}

export interface Assessment {
  refusals: Refusal[];
  files: PlannedFile[];
  scripts: PlannedScript[];
}

export interface AssessOptions {
  root: string;
  host: HostFacts;
  index: StateIndex;
  /** Install again even though the patch failed here before. */
  retryFailed: boolean;
  /** Under a --root other than /, let the patch's scripts run (on this host: they are not confined to the root). */
  runScriptsOnHost?: boolean;
  /** Let a package action's plain http:// URL through (its sha256 still decides). */
  allowHttp?: boolean;
}

const MAX_SCRIPT_HEAD = 16 << 20;
/** How many target paths are looked up (and hashed) at once. */
const LOOKUP_CONCURRENCY = 32;

export async function assessPatch(archive: EngineArchive, options: AssessOptions): Promise<Assessment> {
  const meta = archive.meta;
  const refusals: Refusal[] = [];
  const refuse = (code: string, rule: string, message: string): void => {
    refusals.push({ code, rule, message });
  };

  if (meta.architecture !== 'any' && meta.architecture !== options.host.architecture) {
    refuse(
      'CLP_E_ARCHITECTURE',
      'architecture',
      `the patch is for ${meta.architecture}, this machine is ${options.host.architecture}`,
    );
  }
  if (meta.systems.length > 0) {
    const osProblem = checkSystems(meta, options.host);
    if (osProblem !== null) refuse('CLP_E_OS', 'os', osProblem);
  }

  const installed = options.index.installed;
  if (installed.some((p) => p.name === meta.name)) {
    refuse(
      'CLP_E_ALREADY_INSTALLED',
      'installed',
      `${meta.name} is already installed; uninstall it first to install it again`,
    );
  }
  for (const p of installed.filter((p) => p.series === meta.series && p.name !== meta.name)) {
    if (safeCompare(p.name, meta.name) > 0) {
      refuse(
        'CLP_E_DOWNGRADE',
        'downgrade',
        `${p.name} of series ${meta.series} is installed and newer than ${meta.name}; uninstall it first to go back`,
      );
    }
  }
  const failed = options.index.failed.find((f) => f.name === meta.name);
  if (failed !== undefined && !options.retryFailed) {
    refuse(
      'CLP_E_PREVIOUSLY_FAILED',
      'failed-before',
      `${meta.name} failed on this machine at ${failed.at} (${failed.code}: ${failed.reason}); it is not applied again until you pass --force`,
    );
  }

  const scriptsOnHost = scriptsUnderRoot(meta, options.root);
  if (scriptsOnHost !== null && !options.runScriptsOnHost)
    refuse('CLP_E_SCRIPT_ON_HOST', 'scripts', scriptsOnHost);

  for (const action of meta.actions) {
    if (action.type !== 'package' || action.source !== undefined || action.url === undefined) continue;
    const wanted = `${action.name} ${action.version}`;
    if (action.sha256 === undefined)
      refuse(
        'CLP_E_PACKAGE_HASH_MISMATCH',
        'package',
        `the action for ${wanted} names a URL but no sha256; an unverified download is refused`,
      );
    try {
      checkedUrl(
        action.url,
        { allowHttp: options.allowHttp ?? false },
        `the URL of ${wanted}, ${action.url}`,
      );
    } catch (error) {
      refuse((error as PackageError).code, 'package', (error as Error).message);
    }
  }

  const files = await planFiles(archive, options.root, refuse);
  const scripts = await planScripts(archive, refuse);
  return { refusals, files, scripts };
}

/**
 * Why the patch's scripts cannot run under this root without leave: they run on this host, with
 * CLP_ROOT pointing at the root, and nothing keeps them inside it. Null under / or without scripts.
 */
export function scriptsUnderRoot(meta: PatchMeta, root: string): string | null {
  if (resolve(root) === '/') return null;
  const scripts = [
    ...meta.actions.filter((a): a is ScriptAction => a.type === 'script').map((a) => a.path),
    ...[meta.installScript, meta.removeScript].filter((s): s is string => s !== undefined),
  ];
  if (scripts.length === 0) return null;
  return `${meta.name} runs scripts (${scripts.join(', ')}); under --root ${root} they would run on this host, not in the root: pass --run-scripts-on-host to allow that`;
}

function safeCompare(a: string, b: string): number {
  try {
    return comparePatchNames(a, b);
  } catch {
    return a.localeCompare(b);
  }
}

function checkSystems(meta: PatchMeta, host: HostFacts): string | null {
  const wanted = meta.systems
    .map(
      (s) =>
        `${s.os}${s.minVersion ? ` >= ${s.minVersion}` : ''}${s.maxVersion ? ` <= ${s.maxVersion}` : ''}`,
    )
    .join(', ');
  if (host.osIds.length === 0)
    return `the patch is for ${wanted}, and this root has no os-release to tell its system`;
  const here = `${host.osIds[0]}${host.osVersion ? ` ${host.osVersion}` : ''}`;
  for (const s of meta.systems) {
    if (!host.osIds.includes(s.os)) continue;
    if (
      s.minVersion !== undefined &&
      (host.osVersion === null || compareVersions(host.osVersion, s.minVersion) < 0)
    )
      continue;
    if (
      s.maxVersion !== undefined &&
      (host.osVersion === null || compareVersions(host.osVersion, s.maxVersion) > 0)
    )
      continue;
    return null;
  }
  return `the patch is for ${wanted}; this system is ${here}`;
}

async function planFiles(
  archive: EngineArchive,
  root: string,
  refuse: (code: string, rule: string, message: string) => void,
): Promise<PlannedFile[]> {
  const actions = archive.meta.actions.filter((a): a is FileAction => a.type === 'file');
  if (actions.length === 0) return [];
  const owners = await Owners.load(root);
  const folders = new Map<string, Promise<string[]>>();
  // The lookups only read, so they run together; the refusals are then taken in the patch's order.
  const looked = await mapLimit(actions, LOOKUP_CONCURRENCY, async (action) => {
    let target: string;
    try {
      target = await resolveUnderRoot(root, action.path, folders);
    } catch (error) {
      return { action, ok: false as const, error: error as Error & { code?: string } };
    }
    const current = await identityOf(target);
    const problem =
      current === null || current.isFile ? await checkPrecondition(action, target, current !== null) : null;
    return { action, ok: true as const, target, current, problem };
  });
  const seen = new Set<string>();
  const planned: PlannedFile[] = [];
  for (const item of looked) {
    const action = item.action;
    if (!item.ok) {
      refuse(item.error.code ?? 'CLP_E_PATH_ESCAPE', 'path', item.error.message);
      continue;
    }
    const { target, current } = item;
    if (seen.has(target)) {
      refuse(
        'CLP_E_PRECONDITION',
        'precondition',
        `${action.path} is changed by more than one action of the patch`,
      );
      continue;
    }
    seen.add(target);
    if (current !== null && !current.isFile) {
      refuse(
        'CLP_E_TARGET_NOT_FILE',
        'precondition',
        `${action.path} is a ${current.kind} here, not a regular file; clp only changes regular files, and nothing was changed`,
      );
      continue;
    }
    if (item.problem !== null) {
      refuse('CLP_E_PRECONDITION', 'precondition', item.problem);
      continue;
    }
    if (action.action !== 'remove' && (action.source === undefined || !archive.has(action.source))) {
      refuse(
        'CLP_E_PRECONDITION',
        'precondition',
        `${action.path}: the patch has no entry ${action.source ?? '(no source given)'} to ${action.action} it with`,
      );
      continue;
    }
    let next: FileIdentity | null = null;
    if (action.action !== 'remove') {
      try {
        next = {
          mode: action.mode ?? current?.mode ?? 0o644,
          uid: action.owner !== undefined ? owners.uid(action.owner) : (current?.uid ?? 0),
          gid: action.group !== undefined ? owners.gid(action.group) : (current?.gid ?? 0),
        };
      } catch (error) {
        refuse('CLP_E_UNKNOWN_OWNER', 'owner', `${action.path}: ${(error as Error).message}`);
        continue;
      }
    }
    planned.push({ action, target, current, next });
  }
  return planned;
}

async function checkPrecondition(
  action: FileAction,
  target: string,
  exists: boolean,
): Promise<string | null> {
  const expect = action.expectSha256;
  if (expect === 'absent') return exists ? `${action.path} must not exist yet, but it does` : null;
  if (expect !== undefined) {
    if (!exists) return `${action.path} must have sha256 ${expect}, but it does not exist`;
    const actual = await sha256File(target, action.path);
    return actual === expect
      ? null
      : `${action.path} has sha256 ${actual}, the patch expects ${expect} (the file differs from the version the patch was made for)`;
  }
  if (action.action === 'add' && exists)
    return `${action.path} already exists; the patch adds it (a replace with expect-sha256 would say which version it may replace)`;
  if (action.action !== 'add' && !exists)
    return `${action.path} does not exist here, so it cannot be ${action.action === 'remove' ? 'removed' : 'replaced'}`;
  return null;
}

async function interpreterOfEntry(archive: EngineArchive, entry: string): Promise<Interpreter> {
  const head = await archive.readEntry(entry, MAX_SCRIPT_HEAD);
  return interpreterFromHead(head, entry);
}

async function planScripts(
  archive: EngineArchive,
  refuse: (code: string, rule: string, message: string) => void,
): Promise<PlannedScript[]> {
  const meta = archive.meta;
  const planned: PlannedScript[] = [];
  const missingPrograms = new Set<string>();
  const check = async (entry: string): Promise<Interpreter | null> => {
    if (!archive.has(entry)) {
      refuse('CLP_E_PRECONDITION', 'script', `the patch names the script ${entry}, but has no such entry`);
      return null;
    }
    const interpreter = await interpreterOfEntry(archive, entry);
    const missing = await missingInterpreter(entry, interpreter);
    if (missing !== null) {
      // One refusal per missing program: the remove script needing it too adds nothing.
      if (!missingPrograms.has(interpreter.program))
        refuse('CLP_E_INTERPRETER_MISSING', 'interpreter', missing);
      missingPrograms.add(interpreter.program);
      return null;
    }
    return interpreter;
  };
  for (const action of meta.actions.filter((a): a is ScriptAction => a.type === 'script')) {
    const interpreter = await check(action.path);
    if (interpreter === null) continue;
    planned.push({
      entry: action.path,
      when: action.when,
      interpreter,
      timeoutMs: action.timeoutMs ?? DEFAULT_SCRIPT_TIMEOUT_MS,
      undoScript: null,
      undoInterpreter: null,
    });
  }
  if (meta.installScript !== undefined) {
    const interpreter = await check(meta.installScript);
    const undoInterpreter = meta.removeScript !== undefined ? await check(meta.removeScript) : null;
    if (interpreter !== null && (meta.removeScript === undefined || undoInterpreter !== null)) {
      planned.push({
        entry: meta.installScript,
        when: 'post',
        interpreter,
        timeoutMs: DEFAULT_SCRIPT_TIMEOUT_MS,
        undoScript: meta.removeScript ?? null,
        undoInterpreter,
      });
    }
  } else if (meta.removeScript !== undefined) {
    await check(meta.removeScript);
  }
  return planned;
}
