import { FormatError } from './errors.ts';

const MAX_NAME_BYTES = 1024;
const MAX_SEGMENT_BYTES = 255;

/**
 * Checks one archive entry name and returns it without a trailing '/'. Names are relative,
 * '/'-separated, with no '.', '..' or empty segments, no backslashes and no control characters:
 * an archive is refused rather than "cleaned", so that what is signed is what is written.
 */
export function checkEntryName(raw: string, archive: string): string {
  const shown = JSON.stringify(raw);
  const fail = (
    code: 'CLP_E_PATH_TRAVERSAL' | 'CLP_E_ABSOLUTE_PATH' | 'CLP_E_BAD_PATH',
    why: string,
  ): never => {
    throw new FormatError(code, `${archive}: entry ${shown} ${why}; rebuild the patch with 'clpctl create'`, {
      details: { archive, entry: raw },
    });
  };
  if (raw === '' || raw === '/') fail('CLP_E_BAD_PATH', 'has an empty name');
  // biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are exactly what is refused
  if (/[\u0000-\u001f\u007f]/.test(raw)) fail('CLP_E_BAD_PATH', 'has a control character in its name');
  if (raw.includes('\uFFFD')) fail('CLP_E_BAD_PATH', 'has a name that is not valid UTF-8');
  if (raw.startsWith('/') || /^[A-Za-z]:/.test(raw)) fail('CLP_E_ABSOLUTE_PATH', 'is an absolute path');
  if (raw.includes('\\')) fail('CLP_E_BAD_PATH', "uses '\\' in its name; entry names use '/'");
  const name = raw.endsWith('/') ? raw.slice(0, -1) : raw;
  const segments = name.split('/');
  if (segments.includes('..')) fail('CLP_E_PATH_TRAVERSAL', "climbs out of the patch with '..'");
  if (segments.some((s) => s === '' || s === '.')) fail('CLP_E_BAD_PATH', "has an empty or '.' path segment");
  if (Buffer.byteLength(name) > MAX_NAME_BYTES)
    fail('CLP_E_BAD_PATH', `has a name longer than ${MAX_NAME_BYTES} bytes`);
  if (segments.some((s) => Buffer.byteLength(s) > MAX_SEGMENT_BYTES)) {
    fail('CLP_E_BAD_PATH', `has a path segment longer than ${MAX_SEGMENT_BYTES} bytes`);
  }
  return name;
}

/**
 * Tracks entry names: a name may appear once, and a file may not also be a folder of another
 * entry (a/b as a file and a/b/c). Exact repeats are caught as they are added; file-as-folder
 * clashes by `finish()`, in one sort, so that deep paths do not cost quadratic time.
 */
export class EntryNameSet {
  readonly #seen = new Set<string>();
  readonly #entries: Array<{ key: string; name: string; file: boolean }> = [];
  readonly #archive: string;

  constructor(archive: string) {
    this.#archive = archive;
  }

  addFile(name: string): void {
    this.#add(name, true);
  }

  addFolder(name: string): void {
    this.#add(name, false);
  }

  /** Throws CLP_E_DUPLICATE_ENTRY when a file is also the folder of another entry. */
  finish(): void {
    // With '/' mapped to the lowest code unit, every entry under X sorts right after X.
    const sorted = [...this.#entries].sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
    for (let i = 0; i + 1 < sorted.length; i++) {
      const current = sorted[i]!;
      const next = sorted[i + 1]!;
      if (next.key === current.key && (current.file || next.file)) this.#duplicate(next.name);
      if (current.file && next.key.startsWith(`${current.key}\u0000`)) this.#duplicate(next.name);
    }
  }

  #add(name: string, file: boolean): void {
    if (file && this.#seen.has(name)) this.#duplicate(name);
    this.#seen.add(name);
    this.#entries.push({ key: name.replaceAll('/', '\u0000'), name, file });
  }

  #duplicate(name: string): never {
    throw new FormatError(
      'CLP_E_DUPLICATE_ENTRY',
      `${this.#archive}: entry ${JSON.stringify(name)} appears twice (or as both a file and a folder); rebuild the patch`,
      { details: { archive: this.#archive, entry: name } },
    );
  }
}
