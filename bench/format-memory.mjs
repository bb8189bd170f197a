// Resident memory of the .clp reader (issue 2: a 512 MiB entry keeps the process under 200 MiB).
//
//   npx node bench/format-memory.mjs [--size-mib 512] [--variants stored,deflate,targz] [--no-results] [--json]
//   npm run bench -- format-memory [same options]
//
// For each variant it writes a .clp holding PKGINFO.meta and one entry of --size-mib MiB of
// random bytes (generated as a stream, never held in memory), then, in a fresh child process on
// this Node, opens the patch, hashes every entry and extracts it into a temporary folder checked
// against those hashes. The child reports its peak resident set (VmHWM from /proc/self/status)
// and its resident set once the library is loaded; /usr/bin/time -v, when installed, measures
// the same peak from outside. "stored" names the entry *.pkg.tar.zst, which writePatch does not
// compress (a package file, the real reason a patch gets big); "deflate" names it *.bin, so it is
// deflated at a ratio near 1 and inflated on every read. Writing is measured the same way.
// "targz" is the historic format (INI PKGINFO.meta, Install-Patch.ps1, the entry in a gzip'd tar
// written here as a stream); only its reading is measured, since writePatch writes zip only.
// Writes bench/results/format-memory.json and .md unless --no-results.
import { spawn } from 'node:child_process';
import { createHash, randomFillSync } from 'node:crypto';
import { createReadStream, createWriteStream, existsSync, readFileSync } from 'node:fs';
import { mkdir, mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import { cpus, release, tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { createGzip } from 'node:zlib';

const SELF = fileURLToPath(import.meta.url);
const REPO = resolve(dirname(SELF), '..');
const RESULTS = join(REPO, 'bench/results');
const FORMAT = join(REPO, 'libs/format/src/index.ts');
const MiB = 1024 * 1024;
const BAR_MIB = 200;
const TIME = '/usr/bin/time';

const { values: opts } = parseArgs({
  options: {
    'size-mib': { type: 'string', default: '512' },
    variants: { type: 'string', default: 'stored,deflate,targz' },
    from: { type: 'string', default: 'bundle' },
    library: { type: 'string' },
    'no-results': { type: 'boolean', default: false },
    json: { type: 'boolean', default: false },
    child: { type: 'string' },
    clp: { type: 'string' },
    out: { type: 'string' },
    payload: { type: 'string' },
    entry: { type: 'string' },
  },
});

/** VmHWM: peak resident set since the process started; VmRSS: resident set now (both KiB). */
function status() {
  const text = readFileSync('/proc/self/status', 'utf8');
  const kib = (key) => Number(new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(text)?.[1] ?? Number.NaN);
  return { vmHWMKiB: kib('VmHWM'), vmRSSKiB: kib('VmRSS') };
}

// ---- child: runs the library and reports its own memory ----

if (opts.child !== undefined) {
  const format = await import(pathToFileURL(opts.library).href);
  const loaded = status();
  const started = performance.now();
  const report = { mode: opts.child, loadedRSSKiB: loaded.vmRSSKiB };
  if (opts.child === 'write') {
    const meta = readFileSync(join(dirname(opts.payload), 'PKGINFO.meta'));
    await format.writePatch(opts.clp, [
      { name: 'PKGINFO.meta', data: meta },
      { name: opts.entry, file: opts.payload },
    ]);
    report.writeMs = Math.round(performance.now() - started);
  } else {
    const archive = await format.openPatch(opts.clp);
    const t1 = performance.now();
    const digests = await archive.hashEntries();
    const t2 = performance.now();
    await archive.extractTo(opts.out, { expected: digests });
    const t3 = performance.now();
    await archive.close();
    const name = opts.entry;
    const digest = digests.get(name);
    const extracted = await stat(join(opts.out, ...String(name).split('/')));
    Object.assign(report, {
      entry: name,
      sha256: digest?.sha256,
      size: digest?.size,
      extractedSize: extracted.size,
      openMs: Math.round(t1 - started),
      hashMs: Math.round(t2 - t1),
      extractMs: Math.round(t3 - t2),
    });
  }
  Object.assign(report, status());
  process.stdout.write(`${JSON.stringify(report)}\n`);
  process.exit(0);
}

// ---- parent: builds the archives, runs the children, writes the results ----

/** Streams `bytes` of random data to `file`, returning its sha256. */
async function writeRandomFile(file, bytes) {
  const hash = createHash('sha256');
  const chunk = Buffer.alloc(MiB);
  let left = bytes;
  const source = Readable.from(
    (function* () {
      while (left > 0) {
        const n = Math.min(left, chunk.length);
        randomFillSync(chunk, 0, n);
        const piece = Buffer.from(chunk.subarray(0, n));
        hash.update(piece);
        left -= n;
        yield piece;
      }
    })(),
  );
  await pipeline(source, createWriteStream(file));
  return hash.digest('hex');
}

/**
 * The library the child loads: by default an esbuild bundle, built like clpctl's, so the figure is
 * what the agent pays; with --from ts, the TypeScript sources through Node's type stripping.
 */
async function libraryFor(from, work) {
  if (from === 'ts') return FORMAT;
  if (from !== 'bundle') throw new Error(`--from must be bundle or ts, not ${from}`);
  const { build } = await import('esbuild');
  const outfile = join(work, 'format.bundle.mjs');
  await build({
    entryPoints: [FORMAT],
    outfile,
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node24',
    logLevel: 'warning',
    banner: {
      js: "import { createRequire as __clpCreateRequire } from 'node:module';\nconst require = __clpCreateRequire(import.meta.url);",
    },
  });
  return outfile;
}

/** The historic layout as a stream: tar-stream into gzip into the file, the big entry piped from disk. */
async function writeHistoricTarGz(clp, meta, payload, entry) {
  const { pack } = await import('tar-stream');
  const tar = pack();
  const written = pipeline(tar, createGzip({ level: 1 }), createWriteStream(clp));
  const add = (header, data) =>
    new Promise((resolvePromise, reject) => {
      const sink = tar.entry(header, data, (err) => (err ? reject(err) : resolvePromise()));
      if (data === undefined) createReadStream(payload).pipe(sink);
    });
  await add({ name: 'PKGINFO.meta', mode: 0o644 }, Buffer.from(meta));
  await add({ name: 'Install-Patch.ps1', mode: 0o644 }, Buffer.from("Write-Output 'benchmark'\n"));
  await add({ name: entry, mode: 0o644, size: (await stat(payload)).size }, undefined);
  tar.finalize();
  await written;
}

function runChild(args) {
  const useTime = existsSync(TIME);
  const argv = [process.execPath, SELF, '--library', library, ...args];
  const [cmd, ...rest] = useTime ? [TIME, '-v', ...argv] : argv;
  return new Promise((resolvePromise, reject) => {
    const child = spawn(cmd, rest, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => {
      out += d;
    });
    child.stderr.on('data', (d) => {
      err += d;
    });
    child.on('error', reject);
    child.on('close', (code) => {
      if (code !== 0) {
        reject(new Error(`child ${args.join(' ')} exited with ${code}:\n${err}`));
        return;
      }
      const report = JSON.parse(out.trim().split('\n').pop());
      const maxRss = /Maximum resident set size \(kbytes\): (\d+)/.exec(err);
      report.timeMaxRSSKiB = maxRss ? Number(maxRss[1]) : null;
      resolvePromise(report);
    });
  });
}

const sizeMiB = Number(opts['size-mib']);
if (!Number.isFinite(sizeMiB) || sizeMiB <= 0)
  throw new Error(`--size-mib must be a positive number, not ${opts['size-mib']}`);
const size = Math.round(sizeMiB * MiB);
const variants = opts.variants.split(',').filter(Boolean);
const log = opts.json ? () => {} : (line) => console.log(line);
const work = await mkdtemp(join(tmpdir(), 'clp-format-memory-'));
const runs = [];
let library;
try {
  library = await libraryFor(opts.from, work);
  for (const variant of variants) {
    if (!['stored', 'deflate', 'targz'].includes(variant))
      throw new Error(`unknown variant ${variant}; use stored, deflate or targz`);
    const entry = variant === 'stored' ? 'payload/big.pkg.tar.zst' : 'payload/big.bin';
    const src = join(work, `${variant}-src`);
    await mkdir(src, { recursive: true });
    const payload = join(src, 'big');
    log(`${variant}: writing ${sizeMiB} MiB of random bytes`);
    const sha256 = await writeRandomFile(payload, size);
    const meta =
      variant === 'targz'
        ? `[Package]\nName=CLP1251123\nVersion=1\nArchitecture=any\nDescription=memory benchmark: one ${sizeMiB} MiB entry\n`
        : `<?xml version="1.0" encoding="UTF-8"?>
<Package>
  <Name>CLP1251123</Name>
  <Version>1</Version>
  <Architecture>any</Architecture>
  <Description>memory benchmark: one ${sizeMiB} MiB entry</Description>
  <Actions>
    <File action="add" path="/opt/clp-bench/big" source="${entry}" sha256="${sha256}" mode="0644"/>
  </Actions>
</Package>
`;
    await writeFile(join(src, 'PKGINFO.meta'), meta);
    const clp = join(work, `${variant}.clp`);
    log(`${variant}: writing the .clp`);
    let write = null;
    if (variant === 'targz') await writeHistoricTarGz(clp, meta, payload, entry);
    else write = await runChild(['--child', 'write', '--clp', clp, '--payload', payload, '--entry', entry]);
    await rm(src, { recursive: true, force: true });
    const clpSize = (await stat(clp)).size;
    const out = join(work, `${variant}-out`);
    log(`${variant}: opening, hashing and extracting`);
    const read = await runChild(['--child', 'read', '--clp', clp, '--out', out, '--entry', entry]);
    if (read.sha256 !== sha256 || read.size !== size || read.extractedSize !== size) {
      throw new Error(`${variant}: the entry read back is not the one written (${JSON.stringify(read)})`);
    }
    await rm(out, { recursive: true, force: true });
    await rm(clp, { force: true });
    const peakMiB = read.vmHWMKiB / 1024;
    runs.push({
      variant,
      entry,
      entryBytes: size,
      clpBytes: clpSize,
      read: {
        peakRSSMiB: round(peakMiB),
        timeMaxRSSMiB: read.timeMaxRSSKiB === null ? null : round(read.timeMaxRSSKiB / 1024),
        loadedRSSMiB: round(read.loadedRSSKiB / 1024),
        growthMiB: round((read.vmHWMKiB - read.loadedRSSKiB) / 1024),
        openMs: read.openMs,
        hashMs: read.hashMs,
        extractMs: read.extractMs,
      },
      write:
        write === null
          ? null
          : {
              peakRSSMiB: round(write.vmHWMKiB / 1024),
              timeMaxRSSMiB: write.timeMaxRSSKiB === null ? null : round(write.timeMaxRSSKiB / 1024),
              writeMs: write.writeMs,
            },
      pass: peakMiB < BAR_MIB && (read.timeMaxRSSKiB === null || read.timeMaxRSSKiB / 1024 < BAR_MIB),
    });
    log(
      `${variant}: read peak ${round(peakMiB)} MiB (bar ${BAR_MIB} MiB)${write === null ? '' : `, write peak ${round(write.vmHWMKiB / 1024)} MiB`}`,
    );
  }
} finally {
  await rm(work, { recursive: true, force: true });
}

function round(n) {
  return Math.round(n * 10) / 10;
}

const result = {
  benchmark: 'format-memory',
  command: `npx node bench/format-memory.mjs${process.argv.slice(2).length ? ` ${process.argv.slice(2).join(' ')}` : ''}`,
  date: new Date().toISOString(),
  machine: {
    node: process.version,
    kernel: release(),
    cpus: cpus().length,
    cpu: cpus()[0]?.model ?? 'unknown',
  },
  barMiB: BAR_MIB,
  library:
    opts.from === 'ts'
      ? 'libs/format/src (TypeScript through Node type stripping)'
      : 'libs/format bundled by esbuild, as clpctl is',
  sizeMiB,
  runs,
  pass: runs.every((r) => r.pass),
};

if (!opts['no-results']) {
  await mkdir(RESULTS, { recursive: true });
  await writeFile(join(RESULTS, 'format-memory.json'), `${JSON.stringify(result, null, 2)}\n`);
  await writeFile(join(RESULTS, 'format-memory.md'), markdown(result));
  log(`wrote ${join('bench/results', 'format-memory.json')} and .md`);
}
if (opts.json) process.stdout.write(`${JSON.stringify(result)}\n`);
process.exitCode = result.pass ? 0 : 1;

function markdown(r) {
  const rows = r.runs
    .map(
      (x) =>
        `| ${x.variant} | ${x.entry} | ${round(x.clpBytes / MiB)} | ${x.read.peakRSSMiB} | ${x.read.timeMaxRSSMiB ?? 'n/a'} | ${x.read.loadedRSSMiB} | ${x.read.openMs} / ${x.read.hashMs} / ${x.read.extractMs} | ${x.write?.peakRSSMiB ?? 'n/a'} | ${x.write?.writeMs ?? 'n/a'} | ${x.pass ? 'yes' : 'NO'} |`,
    )
    .join('\n');
  return `# .clp reader memory (${r.sizeMiB} MiB entry)

Command: \`${r.command}\` — ${r.date}, Node ${r.machine.node}, ${r.machine.cpus} × ${r.machine.cpu}, Linux ${r.machine.kernel}.

Library: ${r.library}.

A child process opens the patch, hashes every entry and extracts it into a temporary folder,
checking each entry against those hashes while it streams. "Peak RSS" is VmHWM from
/proc/self/status at the end of the child; "time -v" is /usr/bin/time's maximum resident set of
the same child. "Loaded" is the child's resident set once the library is imported, before the
archive is opened. Bar: peak under ${r.barMiB} MiB.

| variant | entry | .clp MiB | peak RSS MiB | time -v MiB | loaded MiB | open / hash / extract ms | write peak MiB | write ms | under bar |
| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |
${rows}

Result: ${r.pass ? 'every variant stays under the bar' : 'a variant is OVER the bar'}.
`;
}
