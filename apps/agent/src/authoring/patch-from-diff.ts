import { copyFile, lstat, mkdir, writeFile } from 'node:fs/promises';
import { dirname, join, posix } from 'node:path';
import {
  type Action,
  ClpError,
  FormatError,
  type PatchMeta,
  parsePatchName,
  serializePatchMeta,
} from '@clp/format';
import { SystemNames } from './system-names.ts';
import { diffTrees, type TreeFile } from './tree-diff.ts';

export interface FromDiffOptions {
  before: string;
  after: string;
  /** The patch folder to write; it must not exist. */
  folder: string;
  name: string;
  /** Where the trees stand on the machines (default `/`). */
  targetDir?: string;
  description?: string;
}

/**
 * Writes a patch folder (PKGINFO.meta and payload/) whose actions turn the files of BEFORE into
 * those of AFTER, each with its precondition (the expect-sha256 of what BEFORE has) and with mode,
 * owner and group taken from AFTER. Answers the number of actions.
 */
export async function patchFolderFromDiff(options: FromDiffOptions): Promise<{ actions: number }> {
  try {
    parsePatchName(options.name);
  } catch (error) {
    if (!(error instanceof FormatError)) throw error;
    throw new ClpError('CLP_E_USAGE', `--name ${options.name}: ${error.message}`, {
      details: { name: options.name },
    });
  }
  const targetDir = posix.normalize(options.targetDir ?? '/');
  if (!targetDir.startsWith('/')) {
    throw new ClpError('CLP_E_USAGE', `--target-dir ${options.targetDir}: give an absolute path, e.g. /etc`);
  }
  const changes = await diffTrees(options.before, options.after);
  if (changes.length === 0) {
    throw new FormatError(
      'CLP_E_EMPTY_PATCH',
      `${options.before} and ${options.after} hold the same files with the same modes and owners: there is nothing to patch`,
    );
  }
  if (await lstat(options.folder).catch(() => null)) {
    throw new ClpError('CLP_E_USAGE', `--folder ${options.folder} exists already; give a new folder`, {
      details: { folder: options.folder },
    });
  }
  const names = await SystemNames.load();
  const identity = (f: TreeFile) => ({
    mode: f.mode,
    owner: names.user(f.uid),
    group: names.group(f.gid),
  });
  await mkdir(join(options.folder, 'payload'), { recursive: true });
  const payload = async (f: TreeFile): Promise<string> => {
    const entry = `payload/${f.rel}`;
    await mkdir(dirname(join(options.folder, entry)), { recursive: true });
    await copyFile(f.file, join(options.folder, entry));
    return entry;
  };
  const actions: Action[] = [];
  for (const change of changes) {
    const rel = change.kind === 'add' ? change.after.rel : change.before.rel;
    const path = posix.join(targetDir, rel);
    if (change.kind === 'remove') {
      actions.push({ type: 'file', action: 'remove', path, expectSha256: change.before.sha256 });
    } else {
      actions.push({
        type: 'file',
        action: change.kind,
        path,
        source: await payload(change.after),
        ...(change.kind === 'replace' ? { expectSha256: change.before.sha256 } : {}),
        sha256: change.after.sha256,
        ...identity(change.after),
      });
    }
  }
  const parsed = parsePatchName(options.name);
  const meta: PatchMeta = {
    name: options.name,
    version: '1',
    architecture: 'any',
    description: options.description ?? `Makes the files under ${targetDir} as in ${options.after}`,
    created: parsed.date,
    series: `CLP${parsed.dateCode}`,
    systems: [],
    actions,
    dialect: 'xml',
  };
  await writeFile(join(options.folder, 'PKGINFO.meta'), serializePatchMeta(meta));
  return { actions: actions.length };
}
