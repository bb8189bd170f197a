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
 * entry (a/b as a file and a/b/c), whichever comes first.
 */
export class EntryNameSet {
  readonly #files = new Set<string>();
  readonly #folders = new Set<string>();
  readonly #archive: string;

  constructor(archive: string) {
    this.#archive = archive;
  }

  addFile(name: string): void {
    if (this.#files.has(name) || this.#folders.has(name)) this.#duplicate(name);
    const parents = parentsOf(name);
    if (parents.some((p) => this.#files.has(p))) this.#duplicate(name);
    this.#files.add(name);
    for (const p of parents) this.#folders.add(p);
  }

  addFolder(name: string): void {
    if (this.#files.has(name)) this.#duplicate(name);
    for (const p of [...parentsOf(name), name]) {
      if (this.#files.has(p)) this.#duplicate(name);
      this.#folders.add(p);
    }
  }

  #duplicate(name: string): never {
    throw new FormatError(
      'CLP_E_DUPLICATE_ENTRY',
      `${this.#archive}: entry ${JSON.stringify(name)} appears twice (or as both a file and a folder); rebuild the patch`,
      { details: { archive: this.#archive, entry: name } },
    );
  }
}

function parentsOf(name: string): string[] {
  const segments = name.split('/');
  const out: string[] = [];
  for (let i = 1; i < segments.length; i++) out.push(segments.slice(0, i).join('/'));
  return out;
}
