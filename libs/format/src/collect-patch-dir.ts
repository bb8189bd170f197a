import { lstat, readdir } from 'node:fs/promises';
import { join, relative, sep } from 'node:path';
import { FormatError } from './errors.ts';

export interface CollectedFile {
  /** The entry name: the path relative to the folder, '/'-separated. */
  name: string;
  file: string;
  size: number;
  mode: number;
}

/** Lists the regular files of a patch folder, sorted by entry name; links and devices are refused. */
export async function collectPatchDir(dir: string): Promise<CollectedFile[]> {
  let top: Awaited<ReturnType<typeof lstat>>;
  try {
    top = await lstat(dir);
  } catch (error) {
    throw new FormatError('CLP_E_SOURCE_DIR', `${dir} cannot be read: ${(error as Error).message}`, {
      cause: error,
      details: { dir },
    });
  }
  if (!top.isDirectory()) {
    throw new FormatError(
      'CLP_E_SOURCE_DIR',
      `${dir} is not a folder; give the patch folder holding PKGINFO.meta`,
      {
        details: { dir },
      },
    );
  }
  const out: CollectedFile[] = [];
  const walk = async (folder: string): Promise<void> => {
    for (const item of await readdir(folder, { withFileTypes: true })) {
      const path = join(folder, item.name);
      const name = relative(dir, path).split(sep).join('/');
      if (item.isDirectory()) await walk(path);
      else if (item.isFile()) {
        const info = await lstat(path);
        out.push({ name, file: path, size: info.size, mode: info.mode & 0o7777 });
      } else {
        throw new FormatError(
          'CLP_E_SOURCE_DIR',
          `${path} is ${item.isSymbolicLink() ? 'a symbolic link' : 'not a regular file'}; a patch folder may hold regular files only (copy the content instead)`,
          { details: { dir, entry: name } },
        );
      }
    }
  };
  await walk(dir);
  return out.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}
