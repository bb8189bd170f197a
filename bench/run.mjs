// `npm run bench -- NAME…` runs bench/NAME.mjs for each NAME (the build runs first).
// With no NAME it lists the benchmarks. Each one writes bench/results/NAME*.json and .md.
import { readdir } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
// Shared helper modules (NAME-common.mjs) are not benchmarks.
const available = (await readdir(here))
  .filter((f) => f.endsWith('.mjs') && f !== 'run.mjs' && !f.endsWith('-common.mjs'))
  .map((f) => f.slice(0, -4));
const [name, ...rest] = process.argv.slice(2);

if (name === undefined || !available.includes(name)) {
  if (name !== undefined) console.error(`no benchmark "${name}"`);
  console.error(`usage: npm run bench -- NAME [options]\nbenchmarks: ${available.sort().join(', ')}`);
  process.exit(name === undefined ? 0 : 2);
}
process.argv = [process.argv[0], join(here, `${name}.mjs`), ...rest];
await import(pathToFileURL(join(here, `${name}.mjs`)).href);
