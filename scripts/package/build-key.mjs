// Skips a packaging step whose inputs did not change: the key is a sha256 over every input
// file's path, mode and content, stored beside the output.
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { readdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join, relative } from 'node:path';

async function hashInto(hash, base, path) {
  const info = await stat(path);
  if (info.isDirectory()) {
    hash.update(`dir ${relative(base, path)} ${info.mode}\n`);
    for (const name of (await readdir(path)).sort()) await hashInto(hash, base, join(path, name));
    return;
  }
  hash.update(`file ${relative(base, path)} ${info.mode} ${info.size}\n`);
  hash.update(await readFile(path));
}

export async function buildKey(base, paths, extra = '') {
  const hash = createHash('sha256').update(`${extra}\n`);
  for (const path of paths) await hashInto(hash, base, join(base, path));
  return hash.digest('hex');
}

/** Runs MAKE unless OUTPUT exists and was made from inputs with the same KEY. */
export async function unlessUnchanged(output, key, make) {
  const stamp = `${output}.build-key`;
  if (existsSync(output) && existsSync(stamp) && (await readFile(stamp, 'utf8')) === key) {
    return { output, cached: true };
  }
  const made = await make();
  await writeFile(`${made}.build-key`, key);
  return { output: made, cached: false };
}
