import { createPublicKey, randomBytes } from 'node:crypto';
import { readFile, rename, rm, stat } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import {
  ClpError,
  collectPatchDir,
  FormatError,
  openPatch,
  type PatchMeta,
  parsePatchName,
  readPatchMeta,
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
import { printResult } from '../output.ts';
import { signerFromKeyFile } from './authoring.ts';
import type { RegisterCommand } from './index.ts';

const PKGINFO = 'PKGINFO.meta';
const MAX_PKGINFO = 1024 * 1024;

interface CreateOptions {
  output?: string;
  sign?: string;
  signer?: string;
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

/**
 * Builds a .clp from a folder. PKGINFO.meta is validated, every sha256 it declares is checked
 * against its file, and the written archive is read back and compared before it is put in place.
 */
export async function createPatch(
  dir: string,
  /** Default: PATCHNAME.clp in the current folder. */
  outputFile: string | undefined,
  options: { expectName?: string; key?: string; signer?: string },
): Promise<{ file: string; meta: PatchMeta; entries: number; keyId: string | null }> {
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
  const meta = readPatchMeta(
    await readPkginfo(pkginfo.file),
    files.map((f) => f.name),
  );
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
    if (meta.name !== options.expectName) {
      throw new ClpError(
        'CLP_E_USAGE',
        `${PKGINFO} names the patch ${meta.name}, but the command line says ${options.expectName}; make them agree`,
        { details: { expected: options.expectName, actual: meta.name } },
      );
    }
  }
  const hashes = new Map<string, EntryDigest>();
  for (const f of files) hashes.set(f.name, await hashFile(f.file));
  checkDeclaredHashes(meta, hashes);
  const output = outputFile ?? resolve(`${meta.name}.clp`);

  // Load the key before writing anything, so a bad key leaves no output behind.
  const key = options.key === undefined ? undefined : await loadPrivateKey(resolve(options.key));
  const entries: Array<{ name: string; file?: string; data?: Buffer }> = files.map((f) => ({
    name: f.name,
    file: f.file,
  }));
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
  return { file: output, meta, entries: files.length, keyId };
}

export const create: RegisterCommand = (program, globals) =>
  program
    .command('create')
    .description(
      'build a .clp from a patch folder (PKGINFO.meta + payload); historic form: create PATH NAME → NAME.clp',
    )
    .argument('<dir>', 'the patch folder')
    .argument('[name]', 'historic form: the patch name; writes NAME.clp in the current folder')
    .option('-o, --output <file>', 'output file (default: NAME.clp in the current folder)')
    .option('--sign <key>', 'sign with this private key (NAME.key from clpctl keygen)')
    .option('--signer <name>', 'signer label stored in SIGNATURE (default: the key file name)')
    .action(async (dir: string, name: string | undefined, options: CreateOptions) => {
      const source = resolve(dir);
      let output = options.output === undefined ? undefined : resolve(options.output);
      if (output === undefined && name !== undefined) output = resolve(`${name}.clp`);
      const result = await createPatch(source, output, {
        ...(name === undefined ? {} : { expectName: name }),
        ...(options.sign === undefined ? {} : { key: options.sign }),
        ...(options.signer === undefined ? {} : { signer: options.signer }),
      });
      printResult(
        globals(),
        {
          file: result.file,
          name: result.meta.name,
          entries: result.entries,
          signed: result.keyId !== null,
          keyId: result.keyId,
        },
        () =>
          `created ${result.file} (${result.meta.name}, ${result.entries} entries, ${result.keyId ? `signed with key ${result.keyId}` : 'unsigned'})`,
      );
    });
