import { createHash } from 'node:crypto';
import { type PatchMeta, PKGINFO_ENTRY, readPatchMeta } from '@clp/format';
import { checkDeclaredHashes } from './declared-hashes.ts';
import { TrustError } from './errors.ts';
import { type EntryDigest, SIGNATURE_ENTRY } from './manifest.ts';

const MAX_PKGINFO_BYTES = 1024 * 1024;

import { MAX_SIGNATURE_BYTES, verifyManifestSignature } from './signature.ts';
import type { TrustStore } from './trust-store.ts';

/** What verifyPatch needs of an archive; @clp/format's PatchArchive has it. */
export interface VerifiableArchive {
  readonly file: string;
  readonly meta: PatchMeta;
  /** sha256 of the PKGINFO.meta bytes `meta` was parsed from, when the archive kept it. */
  readonly metaSha256?: string;
  /** The entries as the archive declares them; verifySignedEntries compares these, unread. */
  readonly entries: readonly { name: string; size: number }[];
  has(name: string): boolean;
  readEntry(name: string, maxBytes: number): Promise<Buffer>;
  hashEntries(): Promise<Map<string, EntryDigest>>;
}

/**
 * The verified manifest: entry name → { sha256, size } for every entry except SIGNATURE, ready
 * to pass to `archive.extractTo(dir, { expected })`, plus who signed it.
 */
export class VerifiedManifest extends Map<string, EntryDigest> {
  readonly keyId: string;
  readonly keyName: string;
  /** The signer label from SIGNATURE (not covered by the signature; keyId/keyName are what count). */
  readonly signer: string;
  readonly patchName: string;
  readonly manifestText: string;

  constructor(
    entries: Iterable<[string, EntryDigest]>,
    info: { keyId: string; keyName: string; signer: string; patchName: string; manifestText: string },
  ) {
    super(entries);
    this.keyId = info.keyId;
    this.keyName = info.keyName;
    this.signer = info.signer;
    this.patchName = info.patchName;
    this.manifestText = info.manifestText;
  }
}

/** Reads and parses the archive's SIGNATURE entry; CLP_E_UNSIGNED when there is none. */
export async function readSignatureEntry(
  archive: Pick<VerifiableArchive, 'file' | 'has' | 'readEntry'>,
): Promise<Buffer> {
  if (!archive.has(SIGNATURE_ENTRY)) {
    throw new TrustError(
      'CLP_E_UNSIGNED',
      `${archive.file} has no ${SIGNATURE_ENTRY} entry; sign it with 'clpctl sign'`,
      {
        details: { file: archive.file },
      },
    );
  }
  return archive.readEntry(SIGNATURE_ENTRY, MAX_SIGNATURE_BYTES);
}

/**
 * Verifies a patch: the signature by a trusted, unrevoked key, then every entry's sha256 and size
 * against the signed manifest (an added, removed or changed entry is an error naming it), then
 * the sha256s PKGINFO.meta declares. Returns the manifest for a re-checked extraction.
 */
export function verifyPatch(archive: VerifiableArchive, store: TrustStore): Promise<VerifiedManifest> {
  return verifySigned(archive, store, async (signed) => {
    const actual = await archive.hashEntries();
    actual.delete(SIGNATURE_ENTRY);
    compareWithManifest(archive.file, signed, actual, true);
  });
}

/**
 * The steps every verification shares: the signature by a trusted, unrevoked key over a manifest
 * for this patch, `checkEntries` against the signed entries, then the sha256s PKGINFO.meta declares.
 */
async function verifySigned(
  archive: VerifiableArchive,
  store: TrustStore,
  checkEntries: (signed: ReadonlyMap<string, EntryDigest>) => Promise<void>,
): Promise<VerifiedManifest> {
  const signed = verifyManifestSignature(await readSignatureEntry(archive), store);
  if (signed.patchName !== archive.meta.name) {
    throw new TrustError(
      'CLP_E_MANIFEST_MISMATCH',
      `${archive.file}: the signed manifest is for ${signed.patchName}, but PKGINFO.meta names ${archive.meta.name}`,
      { details: { expected: signed.patchName, actual: archive.meta.name } },
    );
  }
  await checkEntries(signed.entries);
  checkDeclaredHashes(archive.meta, signed.entries);
  return new VerifiedManifest(signed.entries, {
    keyId: signed.keyId,
    keyName: signed.keyName,
    signer: signed.signer,
    patchName: signed.patchName,
    manifestText: signed.manifest,
  });
}

/** Every signed entry present with its size (and sha256 when known), and nothing unsigned added. */
function compareWithManifest(
  file: string,
  signed: ReadonlyMap<string, EntryDigest>,
  actual: ReadonlyMap<string, { sha256?: string; size: number }>,
  hashed: boolean,
): void {
  const problems: Array<{ entry: string; problem: string }> = [];
  for (const [name, want] of signed) {
    const got = actual.get(name);
    if (!got)
      problems.push({ entry: name, problem: 'is in the signed manifest but missing from the archive' });
    else if (got.size !== want.size || (hashed && got.sha256 !== want.sha256)) {
      problems.push({
        entry: name,
        problem: hashed
          ? `was changed after signing (sha256 ${got.sha256}, size ${got.size}; signed: sha256 ${want.sha256}, size ${want.size})`
          : `was changed after signing (size ${got.size}; signed: size ${want.size})`,
      });
    }
  }
  for (const name of actual.keys()) {
    if (!signed.has(name))
      problems.push({ entry: name, problem: 'was added after signing (not in the signed manifest)' });
  }
  if (problems.length > 0) {
    const first = problems[0]!;
    const more =
      problems.length > 1
        ? ` (and ${problems.length - 1} more: ${problems
            .slice(1, 6)
            .map((p) => p.entry)
            .join(', ')})`
        : '';
    throw new TrustError('CLP_E_MANIFEST_MISMATCH', `${file}: entry ${first.entry} ${first.problem}${more}`, {
      details: { entry: first.entry, problems },
    });
  }
}

/**
 * The signature-first check for installing: the signature by a trusted, unrevoked key, the entry
 * list and sizes against the signed manifest, and PKGINFO.meta (read again and hashed) — without
 * reading the payload. The caller MUST extract with `expected` set to the returned manifest, which
 * checks every payload byte as it streams; nothing may be used from the archive before that.
 * Installing reads each payload once instead of twice.
 */
export function verifySignedEntries(
  archive: VerifiableArchive,
  store: TrustStore,
): Promise<VerifiedManifest> {
  return verifySigned(archive, store, async (signed) => {
    const declared = new Map(
      archive.entries
        .filter((e) => e.name !== SIGNATURE_ENTRY)
        .map((e) => [e.name, { size: e.size }] as const),
    );
    compareWithManifest(archive.file, signed, declared, false);
    const want = signed.get(PKGINFO_ENTRY);
    // An archive that kept the digest of the bytes its metadata was parsed from needs no second
    // read and parse: those very bytes are what the signature must cover.
    let sha256 = archive.metaSha256;
    let same = true;
    if (sha256 === undefined) {
      const pkginfo = await archive.readEntry(PKGINFO_ENTRY, MAX_PKGINFO_BYTES);
      sha256 = createHash('sha256').update(pkginfo).digest('hex');
      same = sameMeta(pkginfo, archive);
    }
    if (!want || want.sha256 !== sha256 || !same) {
      throw new TrustError(
        'CLP_E_MANIFEST_MISMATCH',
        `${archive.file}: entry ${PKGINFO_ENTRY} was changed after signing (sha256 ${sha256}; signed: ${want?.sha256 ?? 'none'})`,
        { details: { entry: PKGINFO_ENTRY } },
      );
    }
  });
}

/** The metadata the archive was opened with is the one in the signed PKGINFO.meta bytes. */
function sameMeta(pkginfo: Buffer, archive: VerifiableArchive): boolean {
  const reparsed = readPatchMeta(
    pkginfo.toString('utf8'),
    archive.entries.map((e) => e.name),
  );
  return JSON.stringify(reparsed) === JSON.stringify(archive.meta);
}
