import { TrustError } from './errors.ts';

/** The sha256 (lowercase hex) and size in bytes of one archive entry. */
export interface EntryDigest {
  sha256: string;
  size: number;
}

export interface Manifest {
  patchName: string;
  entries: Map<string, EntryDigest>;
}

/** The entry that holds the signature; it is the one entry the manifest never lists. */
export const SIGNATURE_ENTRY = 'SIGNATURE';
export const MANIFEST_HEADER = 'clp-manifest 1';

const SHA256 = /^[0-9a-f]{64}$/;
const ENTRY_LINE = /^([0-9a-f]{64}) (0|[1-9][0-9]*) (.+)$/;
const NAME_LINE = /^name ([^\s]+)$/;

/** Entry order of the manifest: by the UTF-8 bytes of the name, so every implementation agrees. */
export function compareEntryNames(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));
}

/** Entry names end at a newline in the manifest; control characters are never valid in names. */
function hasControlCharacter(name: string): boolean {
  for (let i = 0; i < name.length; i++) {
    const c = name.charCodeAt(i);
    if (c < 0x20 || c === 0x7f) return true;
  }
  return false;
}

function invalid(message: string, details: Record<string, unknown> = {}): TrustError {
  return new TrustError('CLP_E_SIGNATURE_INVALID', `signed manifest is malformed: ${message}`, { details });
}

/**
 * The canonical manifest text: `clp-manifest 1`, `name NAME`, then `sha256 size name` per entry,
 * sorted by name, every line ending in \n. The SIGNATURE entry is left out.
 */
export function buildManifest(patchName: string, entries: ReadonlyMap<string, EntryDigest>): string {
  if (!/^[^\s]+$/.test(patchName)) {
    throw new TrustError(
      'CLP_E_MANIFEST_MISMATCH',
      `patch name "${patchName}" cannot be written into a manifest`,
    );
  }
  const names = [...entries.keys()].filter((n) => n !== SIGNATURE_ENTRY).sort(compareEntryNames);
  const lines = [MANIFEST_HEADER, `name ${patchName}`];
  for (const name of names) {
    const digest = entries.get(name)!;
    if (name === '' || hasControlCharacter(name)) {
      throw new TrustError(
        'CLP_E_MANIFEST_MISMATCH',
        `entry name ${JSON.stringify(name)} cannot be listed in a manifest`,
        {
          details: { entry: name },
        },
      );
    }
    if (!SHA256.test(digest.sha256) || !Number.isSafeInteger(digest.size) || digest.size < 0) {
      throw new TrustError(
        'CLP_E_MANIFEST_MISMATCH',
        `entry ${name} has no valid sha256/size to list in a manifest`,
        {
          details: { entry: name },
        },
      );
    }
    lines.push(`${digest.sha256} ${digest.size} ${name}`);
  }
  return `${lines.join('\n')}\n`;
}

/** Parses a manifest; anything not in canonical form (order, spacing, line ends) is refused. */
export function parseManifest(text: string): Manifest {
  if (!text.endsWith('\n')) throw invalid('it does not end with a newline');
  if (text.includes('\r')) throw invalid('it contains carriage returns');
  const lines = text.slice(0, -1).split('\n');
  if (lines[0] !== MANIFEST_HEADER) throw invalid(`the first line is not "${MANIFEST_HEADER}"`);
  const nameMatch = NAME_LINE.exec(lines[1] ?? '');
  if (!nameMatch) throw invalid('the second line is not "name PATCHNAME"');
  const patchName = nameMatch[1]!;
  const entries = new Map<string, EntryDigest>();
  let previous: string | undefined;
  for (let i = 2; i < lines.length; i++) {
    const m = ENTRY_LINE.exec(lines[i]!);
    if (!m) throw invalid(`line ${i + 1} is not "sha256 size name"`, { line: i + 1 });
    const [, sha256, sizeText, name] = m as unknown as [string, string, string, string];
    const size = Number(sizeText);
    if (!Number.isSafeInteger(size)) throw invalid(`line ${i + 1} has an impossible size`, { line: i + 1 });
    if (name === SIGNATURE_ENTRY) throw invalid(`line ${i + 1} lists ${SIGNATURE_ENTRY}`, { line: i + 1 });
    if (hasControlCharacter(name))
      throw invalid(`line ${i + 1} has control characters in its name`, { line: i + 1 });
    if (previous !== undefined && compareEntryNames(previous, name) >= 0) {
      throw invalid(`entry ${name} is out of order or listed twice`, { entry: name });
    }
    previous = name;
    entries.set(name, { sha256, size });
  }
  return { patchName, entries };
}
