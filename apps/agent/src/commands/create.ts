import { createHash, createPublicKey, randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rename, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, dirname, join, resolve } from 'node:path';
import {
  ClpError,
  collectPatchDir,
  FormatError,
  openPatch,
  type PatchMeta,
  parsePatchName,
  readPatchMeta,
  serializePatchMeta,
  writePatch,
} from '@clp/format';
import {
  buildManifest,
  checkDeclaredHashes,
  createSignature,
  type EntryDigest,
  hashFile,
  keyIdOf,
  loadPrivateKey,
  SIGNATURE_ENTRY,
  TrustStore,
  verifyPatch,
} from '@clp/trust';
import { type FilledValue, fillInHashes } from '../authoring/fill-in.ts';
import { patchFolderFromDiff } from '../authoring/patch-from-diff.ts';
import { printResult } from '../output.ts';
import { signerFromKeyFile } from './authoring.ts';
import type { RegisterCommand } from './index.ts';

const PKGINFO = 'PKGINFO.meta';
const MAX_PKGINFO = 1024 * 1024;

interface CreateOptions {
  output?: string;
  sign?: string;
  signer?: string;
  expectFrom?: string;
  fromDiff?: string;
  name?: string;
  targetDir: string;
  description?: string;
  folder?: string;
}

async function readPkginfo(file: string): Promise<string> {
  const size = (await stat(file)).size;
  if (size > MAX_PKGINFO) {
    throw new FormatError(
      'CLP_E_PKGINFO_TOO_LARGE',
      `${PKGINFO} is ${size} bytes; the limit is ${MAX_PKGINFO}`,
      {
        details: { entry: PKGINFO },
      },
    );
  }
  return readFile(file, 'utf8');
}

function sameDigests(
  a: ReadonlyMap<string, EntryDigest>,
  b: ReadonlyMap<string, EntryDigest>,
): string | undefined {
  for (const [name, d] of a) {
    const o = b.get(name);
    if (!o || o.sha256 !== d.sha256 || o.size !== d.size) return name;
  }
  for (const name of b.keys()) if (!a.has(name)) return name;
  return undefined;
}

export interface CreateResult {
  file: string;
  meta: PatchMeta;
  entries: number;
  keyId: string | null;
  /** The hashes create computed and wrote into the archive's PKGINFO.meta. */
  filled: FilledValue[];
}

/**
 * Builds a .clp from a folder. PKGINFO.meta is validated, the hashes it leaves out are filled in
 * (and the ones it gives checked against their files), and the written archive is read back and
 * compared before it is put in place.
 */
/** The folder's PKGINFO.meta; one that does nothing yet (as `clpctl new` makes it) says where to add what. */
function readAuthoredMeta(
  text: string,
  entryNames: string[],
  file: string,
): ReturnType<typeof readPatchMeta> {
  try {
    return readPatchMeta(text, entryNames);
  } catch (error) {
    if (!(error instanceof FormatError) || error.code !== 'CLP_E_EMPTY_PATCH') throw error;
    throw new FormatError(
      'CLP_E_EMPTY_PATCH',
      `${error.message}: add a File, Package, Service or Script action under <Actions> in ${file} (its comments show each kind)`,
      { details: { ...error.details, file } },
    );
  }
}

export async function createPatch(
  dir: string,
  /** Default: PATCHNAME.clp in the current folder. */
  outputFile: string | undefined,
  options: {
    expectName?: string;
    key?: string;
    signer?: string;
    /** A reference root: expect-sha256 of replaced and removed files is taken from it. */
    expectFrom?: string;
  },
): Promise<CreateResult> {
  const files = await collectPatchDir(dir);
  if (files.some((f) => f.name === SIGNATURE_ENTRY)) {
    throw new ClpError(
      'CLP_E_USAGE',
      `${join(dir, SIGNATURE_ENTRY)} exists; a patch folder must not hold a signature: remove it and use --sign`,
      { details: { file: join(dir, SIGNATURE_ENTRY) } },
    );
  }
  const pkginfo = files.find((f) => f.name === PKGINFO);
  if (!pkginfo) {
    throw new FormatError('CLP_E_MISSING_PKGINFO', `${dir} has no ${PKGINFO}; every patch needs one`, {
      details: { entry: PKGINFO },
    });
  }
  const entryNames = files.map((f) => f.name);
  const meta0 = readAuthoredMeta(await readPkginfo(pkginfo.file), entryNames, join(dir, PKGINFO));
  if (options.expectName !== undefined) {
    try {
      parsePatchName(options.expectName);
    } catch (error) {
      // The name came from the command line, not from a patch: a usage error.
      if (!(error instanceof FormatError)) throw error;
      throw new ClpError('CLP_E_USAGE', `create ${dir} ${options.expectName}: ${error.message}`, {
        details: { name: options.expectName },
      });
    }
    if (meta0.name !== options.expectName) {
      throw new ClpError(
        'CLP_E_USAGE',
        `${PKGINFO} names the patch ${meta0.name}, but the command line says ${options.expectName}; make them agree`,
        { details: { expected: options.expectName, actual: meta0.name } },
      );
    }
  }
  const hashes = new Map<string, EntryDigest>();
  for (const f of files) hashes.set(f.name, await hashFile(f.file));
  const { meta: completed, filled } = await fillInHashes(meta0, hashes, options.expectFrom);
  // With values filled in, the archive holds PKGINFO.meta as written out from the model (the
  // folder's own copy, comments and all, is left as the author wrote it).
  let meta = meta0;
  let pkginfoData: Buffer | undefined;
  if (filled.length > 0) {
    pkginfoData = Buffer.from(serializePatchMeta(completed), 'utf8');
    meta = readPatchMeta(pkginfoData.toString('utf8'), entryNames);
    hashes.set(PKGINFO, {
      sha256: createHash('sha256').update(pkginfoData).digest('hex'),
      size: pkginfoData.length,
    });
  }
  checkDeclaredHashes(meta, hashes);
  const output = outputFile ?? resolve(`${meta.name}.clp`);

  // Load the key before writing anything, so a bad key leaves no output behind.
  const key = options.key === undefined ? undefined : await loadPrivateKey(resolve(options.key));
  const entries: Array<{ name: string; file?: string; data?: Buffer }> = files.map((f) =>
    f.name === PKGINFO && pkginfoData !== undefined
      ? { name: f.name, data: pkginfoData }
      : { name: f.name, file: f.file },
  );
  let keyId: string | null = null;
  if (key) {
    keyId = keyIdOf(key);
    const manifest = buildManifest(meta.name, hashes);
    const signer = options.signer ?? signerFromKeyFile(options.key!);
    entries.push({
      name: SIGNATURE_ENTRY,
      data: Buffer.from(createSignature(manifest, key, signer), 'utf8'),
    });
  }

  const temp = join(dirname(output), `.${basename(output)}.tmp-${randomBytes(4).toString('hex')}`);
  try {
    await writePatch(temp, entries);
    const archive = await openPatch(temp);
    try {
      if (JSON.stringify(archive.meta) !== JSON.stringify(meta)) {
        throw new FormatError(
          'CLP_E_PKGINFO_INVALID',
          `${PKGINFO} read back from ${output} differs from the folder's`,
          {
            details: { entry: PKGINFO },
          },
        );
      }
      const written = await archive.hashEntries();
      written.delete(SIGNATURE_ENTRY);
      const changed = sameDigests(hashes, written);
      if (changed !== undefined) {
        throw new FormatError(
          'CLP_E_HASH_MISMATCH',
          `${changed} changed while the patch was being written; run create again`,
          {
            details: { entry: changed },
          },
        );
      }
      if (key) {
        const publicKey = createPublicKey(key);
        await verifyPatch(
          archive,
          new TrustStore([{ keyId: keyId!, name: 'signing key', file: options.key!, publicKey }]),
        );
      }
    } finally {
      await archive.close();
    }
    await rename(temp, output);
  } finally {
    await rm(temp, { force: true });
  }
  return { file: output, meta, entries: files.length, keyId, filled };
}

export const create: RegisterCommand = (program, globals) =>
  program
    .command('create')
    .description(
      'build a .clp from a patch folder (PKGINFO.meta + payload), filling in the hashes it can compute; or from the differences of two trees (--from-diff); historic form: create PATH NAME → NAME.clp',
    )
    .argument('<dir>', 'the patch folder (with --from-diff: AFTER, the tree as it should be)')
    .argument('[name]', 'historic form: the patch name; writes NAME.clp in the current folder')
    .option('-o, --output <file>', 'output file (default: NAME.clp in the current folder)')
    .option('--sign <key>', 'sign with this private key (NAME.key from clpctl keygen)')
    .option('--signer <name>', 'signer label stored in SIGNATURE (default: the key file name)')
    .option(
      '--expect-from <root>',
      'fill in expect-sha256 of every replaced and removed file from the file at its path under ROOT',
    )
    .option(
      '--from-diff <before>',
      'build the patch from BEFORE (the tree as it is) and DIR (as it should be)',
    )
    .option('--name <name>', 'with --from-diff: the patch name, e.g. CLP1251201')
    .option('--target-dir <dir>', 'with --from-diff: where the trees stand on the machines, e.g. /etc', '/')
    .option('--description <text>', 'with --from-diff: the description of the patch')
    .option(
      '--folder <dir>',
      'with --from-diff: keep the patch folder made from the trees here (a new folder)',
    )
    .addHelpText(
      'after',
      `
The sha256 of every payload file is filled in when PKGINFO.meta leaves it out, and checked when
it gives one; PKGINFO.meta itself is not changed, the archive holds the completed copy. The format
of PKGINFO.meta is described in docs/patch-format.md.

Examples:
  clpctl create CLP1251201 --sign release.key
  clpctl create CLP1251201 --expect-from /srv/reference-root --sign release.key
  clpctl create --from-diff /srv/etc-shipped /srv/etc-fixed --target-dir /etc --name CLP1251202 --sign release.key`,
    )
    .action(async (dir: string, name: string | undefined, options: CreateOptions) => {
      const g = globals();
      let output = options.output === undefined ? undefined : resolve(options.output);
      const common = {
        ...(options.sign === undefined ? {} : { key: options.sign }),
        ...(options.signer === undefined ? {} : { signer: options.signer }),
        ...(options.expectFrom === undefined ? {} : { expectFrom: await referenceRoot(options.expectFrom) }),
      };
      if (options.fromDiff !== undefined) {
        const patchName = options.name ?? name;
        if (patchName === undefined) {
          throw new ClpError(
            'CLP_E_USAGE',
            '--from-diff needs the name of the patch: --name CLP + revision + YYMMDD',
          );
        }
        if (output === undefined) output = resolve(`${patchName}.clp`);
        const kept = options.folder === undefined ? undefined : resolve(options.folder);
        const folder = kept ?? (await mkdtemp(join(tmpdir(), 'clp-from-diff-')));
        const made = kept ?? join(folder, patchName);
        try {
          const diff = await patchFolderFromDiff({
            before: resolve(options.fromDiff),
            after: resolve(dir),
            folder: made,
            name: patchName,
            targetDir: options.targetDir,
            ...(options.description === undefined ? {} : { description: options.description }),
          });
          const result = await createPatch(made, output, common);
          printCreated(g, result, { actions: diff.actions, folder: kept ?? null });
        } finally {
          if (kept === undefined) await rm(folder, { recursive: true, force: true });
        }
        return;
      }
      if (options.name !== undefined || options.folder !== undefined || options.description !== undefined) {
        throw new ClpError(
          'CLP_E_USAGE',
          '--name, --folder and --description go with --from-diff; a patch folder says them in PKGINFO.meta',
        );
      }
      if (output === undefined && name !== undefined) output = resolve(`${name}.clp`);
      const result = await createPatch(resolve(dir), output, {
        ...(name === undefined ? {} : { expectName: name }),
        ...common,
      });
      printCreated(g, result, {});
    });

/** --expect-from ROOT must be a folder. */
async function referenceRoot(root: string): Promise<string> {
  const dir = resolve(root);
  const info = await stat(dir).catch(() => null);
  if (info === null) {
    throw new ClpError('CLP_E_NOT_FOUND', `--expect-from ${root}: there is no such folder`, {
      details: { dir },
    });
  }
  if (!info.isDirectory()) {
    throw new ClpError(
      'CLP_E_USAGE',
      `--expect-from ${root} is not a folder; give the root the patch is made for`,
      {
        details: { dir },
      },
    );
  }
  return dir;
}

function printCreated(
  g: { json: boolean },
  result: CreateResult,
  extra: { actions?: number; folder?: string | null },
): void {
  printResult(
    g,
    {
      file: result.file,
      name: result.meta.name,
      entries: result.entries,
      signed: result.keyId !== null,
      keyId: result.keyId,
      filled: result.filled,
      ...extra,
    },
    () =>
      [
        `created ${result.file} (${result.meta.name}, ${result.entries} entries${extra.actions === undefined ? '' : `, ${extra.actions} action${extra.actions === 1 ? '' : 's'} from the differences`}, ${result.keyId ? `signed with key ${result.keyId}` : 'unsigned'})`,
        ...(result.filled.length > 0 ? ['filled in:'] : []),
        ...result.filled.map((f) => `  ${f.action} ${f.attribute}=${f.value} (from ${f.from})`),
        ...(extra.folder ? [`the patch folder is kept in ${extra.folder}`] : []),
      ].join('\n'),
  );
}
