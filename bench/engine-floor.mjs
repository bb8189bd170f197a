// How fast can Node install the P1 patch durably? A stripped-down installer, for comparison with
// `clpctl install` and dpkg (bar P1): one pass over the zip (inflate, sha256 against the
// manifest, write straight to a staging name beside the target, fchmod/fchown/fsync on the open
// descriptor), then rename every staged file and fsync each folder once. No journal, backups,
// signature check or bookkeeping: it is a floor, not an installer.
//
//   npx node bench/engine-floor.mjs PATCH.clp ROOT [per-file|batch|syncfs]
//   npm run bench -- engine-floor PATCH.clp ROOT [per-file|batch|syncfs]
//
// Durability modes: per-file fsyncs each staged file before the next (what a simple loop does);
// batch writes every staged file first and then fsyncs them all concurrently (like dpkg, which
// starts writeback of each file as it goes and fsyncs them all before renaming); syncfs writes
// them all and then flushes the filesystem once (`sync -f`), as pacman + sync does.
//
// `npm run bench -- engine --floor` runs it beside the real install in the P1 loop.
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  closeSync,
  fchmodSync,
  fchownSync,
  fsyncSync,
  mkdirSync,
  openSync,
  renameSync,
  writeSync,
} from 'node:fs';
import { open } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import yauzl from 'yauzl';

const [patch, root, mode = 'batch'] = process.argv.slice(2);
if (!patch || !root || !['per-file', 'batch', 'syncfs'].includes(mode)) {
  console.error('usage: engine-floor PATCH.clp ROOT [per-file|batch|syncfs]');
  process.exit(2);
}

const zip = await new Promise((resolve, reject) =>
  yauzl.open(patch, { lazyEntries: true, autoClose: false }, (e, z) => (e ? reject(e) : resolve(z))),
);
const entries = await new Promise((resolve, reject) => {
  const list = [];
  zip.on('entry', (e) => {
    list.push(e);
    zip.readEntry();
  });
  zip.on('end', () => resolve(list));
  zip.on('error', reject);
  zip.readEntry();
});

const readEntry = (entry) =>
  new Promise((resolve, reject) =>
    zip.openReadStream(entry, (error, stream) => {
      if (error) return reject(error);
      const chunks = [];
      stream.on('data', (c) => chunks.push(c));
      stream.on('end', () => resolve(Buffer.concat(chunks)));
      stream.on('error', reject);
    }),
  );

const meta = (await readEntry(entries.find((e) => e.fileName === 'PKGINFO.meta'))).toString('utf8');
const actions = new Map();
for (const m of meta.matchAll(
  /<File action="add" path="([^"]+)" source="([^"]+)" sha256="([0-9a-f]{64})" mode="([0-7]+)"/g,
)) {
  actions.set(m[2], { path: m[1], sha256: m[3], mode: Number.parseInt(m[4], 8) });
}

const made = new Set();
/** Every folder whose entries change: the target folders and, for those created, their parents up to the root. */
const toSync = new Set();
const staged = [];
for (const entry of entries) {
  const action = actions.get(entry.fileName);
  if (!action) continue;
  const data = await readEntry(entry);
  if (createHash('sha256').update(data).digest('hex') !== action.sha256)
    throw new Error(`${entry.fileName}: sha256 differs`);
  const target = join(root, action.path);
  const dir = dirname(target);
  if (!made.has(dir)) {
    const first = mkdirSync(dir, { recursive: true });
    made.add(dir);
    toSync.add(dir);
    for (let d = dir; first !== undefined && d.length >= first.length; d = dirname(d)) toSync.add(dirname(d));
  }
  const stage = join(dir, `.clp-floor-${entry.fileName.split('/').pop()}`);
  const fd = openSync(stage, 'w', action.mode);
  writeSync(fd, data);
  fchownSync(fd, 0, 0);
  fchmodSync(fd, action.mode);
  if (mode === 'per-file') fsyncSync(fd);
  closeSync(fd);
  staged.push([stage, target]);
}
if (mode === 'batch') {
  await Promise.all(
    staged.map(async ([stage]) => {
      const fh = await open(stage, 'r');
      await fh.sync();
      await fh.close();
    }),
  );
} else if (mode === 'syncfs') {
  execFileSync('sync', ['-f', root]);
}
for (const [stage, target] of staged) renameSync(stage, target);
for (const dir of toSync) {
  const fd = openSync(dir, 'r');
  fsyncSync(fd);
  closeSync(fd);
}
zip.close();
