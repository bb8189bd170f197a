// Engine benchmarks (bars P1–P3): clpctl install / uninstall against dpkg and pacman, and one
// 512 MiB file against cp + sync, each peer measured in the same run, interleaved, on fresh roots.
//
//   npm run bench -- engine [--runs N] [--big-mib N] [--only P1,P2,P3] [--profile] [--floor] [--work DIR]
//
// Needs the built agent (npm run build) and Node 24; dpkg, dpkg-deb, pacman and bsdtar for the
// peers (a missing peer is reported as skipped, never as passed). Writes bench/results/engine.json
// and bench/results/engine.md.
import { spawn, spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { copyFile, mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { cpus, loadavg, release, tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const CLPCTL = join(REPO, 'apps/agent/dist/clpctl.mjs');
const NODE = process.execPath;
const RESULTS = join(REPO, 'bench/results');

const { values: opts } = parseArgs({
  options: {
    runs: { type: 'string', default: '7' },
    'big-runs': { type: 'string', default: '3' },
    'big-mib': { type: 'string', default: '512' },
    files: { type: 'string', default: '1000' },
    only: { type: 'string', default: 'P1,P2,P3' },
    profile: { type: 'boolean', default: false },
    floor: { type: 'boolean', default: false },
    work: { type: 'string' },
    keep: { type: 'boolean', default: false },
  },
});
const RUNS = Number(opts.runs);
const BIG_RUNS = Number(opts['big-runs']);
const BIG_MIB = Number(opts['big-mib']);
const FILES = Number(opts.files);
const ONLY = new Set(opts.only.split(','));
const PATCH_NAME = 'CLP1260101';
const BIG_NAME = 'CLP1260102';

function log(line) {
  process.stderr.write(`${line}\n`);
}

function has(tool) {
  return spawnSync('sh', ['-c', `command -v ${tool}`], { stdio: 'ignore' }).status === 0;
}

/** Runs a command that must succeed (setup, not timed). */
function run(cmd, args, options = {}) {
  const r = spawnSync(cmd, args, { encoding: 'utf8', maxBuffer: 64 << 20, ...options });
  if (r.status !== 0)
    throw new Error(
      `${cmd} ${args.join(' ')} failed (exit ${r.status}): ${(r.stderr || r.stdout || '').trim().slice(-2000)}`,
    );
  return r.stdout;
}

/** Wall time of one run of a command, in ms; the command must succeed. */
function timed(cmd, args) {
  const startedAt = Date.now();
  const start = process.hrtime.bigint();
  const r = spawnSync(cmd, args, {
    encoding: 'utf8',
    maxBuffer: 64 << 20,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const ms = Number(process.hrtime.bigint() - start) / 1e6;
  if (r.status !== 0)
    throw new Error(
      `${cmd} ${args.join(' ')} failed (exit ${r.status}): ${(r.stderr || r.stdout || '').trim().slice(-2000)}`,
    );
  return { ms, startedAt, endedAt: Date.now() };
}

/** Wall time and peak RSS (KiB) of one run: GNU time's maximum resident set size when present, else VmHWM polled from /proc. */
async function timedWithRss(cmd, args) {
  const startedAt = Date.now();
  if (existsSync('/usr/bin/time')) {
    const start = process.hrtime.bigint();
    const r = spawnSync('/usr/bin/time', ['-f', 'CLP_BENCH_MAXRSS=%M', cmd, ...args], {
      encoding: 'utf8',
      maxBuffer: 64 << 20,
    });
    const ms = Number(process.hrtime.bigint() - start) / 1e6;
    if (r.status !== 0)
      throw new Error(`${cmd} ${args.join(' ')} failed (exit ${r.status}): ${r.stderr.trim().slice(-2000)}`);
    const kib = Number(/CLP_BENCH_MAXRSS=(\d+)/.exec(r.stderr)?.[1]);
    return { ms, rssKiB: kib, startedAt, endedAt: Date.now() };
  }
  const start = process.hrtime.bigint();
  const child = spawn(cmd, args, { stdio: 'ignore' });
  let peak = 0;
  const poll = setInterval(async () => {
    const status = await readFile(`/proc/${child.pid}/status`, 'utf8').catch(() => '');
    const kib = Number(/VmHWM:\s+(\d+)/.exec(status)?.[1] ?? 0);
    if (kib > peak) peak = kib;
  }, 10);
  const code = await new Promise((r) => child.on('close', r));
  clearInterval(poll);
  const ms = Number(process.hrtime.bigint() - start) / 1e6;
  if (code !== 0) throw new Error(`${cmd} ${args.join(' ')} failed (exit ${code})`);
  return { ms, rssKiB: peak, startedAt, endedAt: Date.now() };
}

function stats(samples) {
  const s = [...samples].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  const median = s.length % 2 ? s[mid] : (s[mid - 1] + s[mid]) / 2;
  const mean = s.reduce((a, b) => a + b, 0) / s.length;
  const sd = Math.sqrt(s.reduce((a, b) => a + (b - mean) ** 2, 0) / Math.max(1, s.length - 1));
  const r = (x) => Math.round(x * 10) / 10;
  return {
    median: r(median),
    mean: r(mean),
    min: r(s[0]),
    max: r(s[s.length - 1]),
    stddev: r(sd),
    runs: s.length,
    samples: samples.map(r),
  };
}

/**
 * Measures cases interleaved (A B C A B C …) so that drift in the machine's load hits every case
 * alike; one warm-up round is discarded. Each case: { name, prepare(), cmd, args }.
 */
async function measure(cases, runs) {
  const samples = Object.fromEntries(cases.map((c) => [c.name, []]));
  const rss = Object.fromEntries(cases.map((c) => [c.name, []]));
  const phases = Object.fromEntries(cases.map((c) => [c.name, []]));
  const last = {};
  for (let round = -1; round < runs; round++) {
    for (const c of cases) {
      await c.prepare();
      // The previous run's removed root and the fixtures are written back first, so that no command pays for another's writes.
      run('sync', []);
      const result = c.rss ? await timedWithRss(c.cmd, c.args) : timed(c.cmd, c.args);
      last[c.name] = result.ms;
      if (c.check) await c.check();
      if (round >= 0) {
        samples[c.name].push(result.ms);
        if (result.rssKiB !== undefined) rss[c.name].push(result.rssKiB);
        if (c.phases) phases[c.name].push(await c.phases(result));
      }
    }
    log(
      `  round ${round < 0 ? 'warm-up' : round + 1}/${runs}: ${cases.map((c) => `${c.name} ${Math.round(last[c.name])} ms`).join(', ')}`,
    );
  }
  return Object.fromEntries(
    cases.map((c) => [
      c.name,
      {
        ...stats(samples[c.name]),
        ...(rss[c.name].length ? { peakRssMiB: Math.round(Math.max(...rss[c.name]) / 102.4) / 10 } : {}),
        ...(phases[c.name].length ? { phasesMedianMs: medianPhases(phases[c.name]) } : {}),
      },
    ]),
  );
}

/**
 * Where one clpctl install spent its time, from the timestamps of ROOT/var/log/CLP.log: start-up,
 * open and signature check up to "verified"; checks up to the transaction's start; extraction and
 * staging up to the first step run; the steps; bookkeeping and exit.
 */
async function installPhases(rootDir, result) {
  const lines = (await readFile(join(rootDir, 'var/log/CLP.log'), 'utf8')).trim().split('\n');
  const at = (re) => {
    const line = lines.find((l) => re.test(l));
    return line ? Date.parse(line.split(' ')[0]) : null;
  };
  const verified = at(/ verified over /);
  const begin = at(/ \(transaction /);
  const firstStep = at(/ install: /);
  const installed = at(/ installed CLP/);
  if ([verified, begin, firstStep, installed].includes(null)) return null;
  return {
    'start-up, open, verify': verified - result.startedAt,
    checks: begin - verified,
    'extract and stage': firstStep - begin,
    'run steps': installed - firstStep,
    'bookkeeping and exit': result.endedAt - installed,
  };
}

function medianPhases(list) {
  const ok = list.filter(Boolean);
  if (ok.length === 0) return null;
  return Object.fromEntries(Object.keys(ok[0]).map((k) => [k, stats(ok.map((p) => p[k])).median]));
}

// ---------- fixtures ----------

const sha256 = (buf) => createHash('sha256').update(buf).digest('hex');

/** FILES files of 4 KiB of random bytes in 10 folders, as path (relative, no leading /) → content. */
function smallTree() {
  const files = [];
  for (let i = 0; i < FILES; i++) {
    const dir = `d${String(i % 10).padStart(2, '0')}`;
    files.push({
      path: `usr/share/clp-bench/${dir}/f${String(i).padStart(4, '0')}`,
      data: randomBytes(4096),
    });
  }
  return files;
}

async function writeTree(dir, files) {
  for (const f of files) {
    await mkdir(dirname(join(dir, f.path)), { recursive: true });
    await writeFile(join(dir, f.path), f.data);
  }
}

function patchMeta(name, files) {
  const actions = files.map(
    (f) =>
      `    <File action="add" path="/${f.path}" source="payload/${f.path}" sha256="${f.sha256}" mode="0644" owner="root" group="root"/>`,
  );
  return [
    '<?xml version="1.0" encoding="UTF-8"?>',
    '<Package>',
    `  <Name>${name}</Name>`,
    '  <Version>1</Version>',
    '  <Architecture>any</Architecture>',
    `  <Description>benchmark patch of ${files.length} files</Description>`,
    '  <Author>bench</Author>',
    '  <Created>2026-01-01</Created>',
    '  <Severity>low</Severity>',
    '  <Actions>',
    ...actions,
    '  </Actions>',
    '</Package>',
    '',
  ].join('\n');
}

const clpctl = (...args) => [CLPCTL, ...args];

async function buildPatch(work, name, files, keyFile) {
  const dir = join(work, `patch-${name}`);
  await rm(dir, { recursive: true, force: true });
  await writeTree(join(dir, 'payload'), files);
  await writeFile(
    join(dir, 'PKGINFO.meta'),
    patchMeta(
      name,
      files.map((f) => ({ path: f.path, sha256: f.sha256 ?? sha256(f.data) })),
    ),
  );
  const out = join(work, `${name}.clp`);
  run(NODE, clpctl('create', dir, '-o', out, '--sign', keyFile));
  return out;
}

async function clpRoot(root, pubFile) {
  await rm(root, { recursive: true, force: true });
  await mkdir(join(root, 'etc/clp/keys.d'), { recursive: true });
  await copyFile(pubFile, join(root, 'etc/clp/keys.d/bench.pub'));
}

async function dpkgRoot(root) {
  await rm(root, { recursive: true, force: true });
  for (const d of ['info', 'updates', 'triggers'])
    await mkdir(join(root, 'var/lib/dpkg', d), { recursive: true });
  await writeFile(join(root, 'var/lib/dpkg/status'), '');
  await writeFile(join(root, 'var/lib/dpkg/available'), '');
  await mkdir(join(root, 'var/log'), { recursive: true });
}

// --refuse-unsafe-io: dpkg's own default durability (fsync of every unpacked file), even where a
// container image turned it off in /etc/dpkg/dpkg.cfg.d (Docker's docker-apt-speedup does).
const dpkgArgs = (root) => [
  '--refuse-unsafe-io',
  `--root=${root}`,
  `--admindir=${root}/var/lib/dpkg`,
  `--instdir=${root}`,
  `--log=${root}/var/log/dpkg.log`,
];

async function pacmanRoot(root) {
  await rm(root, { recursive: true, force: true });
  await mkdir(join(root, 'var/lib/pacman'), { recursive: true });
  await mkdir(join(root, 'var/log'), { recursive: true });
}

function pacmanArgs(root, conf) {
  return [
    '--root',
    root,
    '--dbpath',
    `${root}/var/lib/pacman`,
    '--cachedir',
    `${root}/var/cache/pacman/pkg`,
    '--config',
    conf,
    '--hookdir',
    `${root}/etc/pacman.d/hooks`,
    '--gpgdir',
    `${root}/etc/pacman.d/gnupg`,
    '--logfile',
    `${root}/var/log/pacman.log`,
    '--noconfirm',
  ];
}

async function buildDeb(work, files) {
  const tree = join(work, 'deb-tree');
  await rm(tree, { recursive: true, force: true });
  await writeTree(tree, files);
  await mkdir(join(tree, 'DEBIAN'));
  await writeFile(
    join(tree, 'DEBIAN/control'),
    'Package: clp-bench\nVersion: 1.0-1\nArchitecture: all\nMaintainer: bench <bench@example.invalid>\nDescription: benchmark package\n',
  );
  const out = join(work, 'clp-bench_1.0-1_all.deb');
  run('dpkg-deb', ['--root-owner-group', '--build', tree, out]);
  return out;
}

async function buildPacman(work, files) {
  const tree = join(work, 'pacman-tree');
  await rm(tree, { recursive: true, force: true });
  await writeTree(tree, files);
  const size = files.reduce((a, f) => a + f.data.length, 0);
  await writeFile(
    join(tree, '.PKGINFO'),
    `pkgname = clp-bench\npkgbase = clp-bench\npkgver = 1.0-1\npkgdesc = benchmark package\nbuilddate = 1700000000\npackager = bench\nsize = ${size}\narch = any\n`,
  );
  const out = join(work, 'clp-bench-1.0-1-any.pkg.tar.zst');
  run('bsdtar', ['--zstd', '-cf', out, '.PKGINFO', 'usr'], { cwd: tree });
  const conf = join(work, 'pacman.conf');
  await writeFile(conf, '[options]\nArchitecture = auto\nSigLevel = Never\nLocalFileSigLevel = Never\n');
  return { pkg: out, conf };
}

function toolVersion(cmd, args) {
  const r = spawnSync(cmd, args, { encoding: 'utf8' });
  return r.status === 0
    ? (r.stdout
        .split('\n')
        .find((l) => /\d/.test(l))
        ?.trim() ?? null)
    : null;
}

const ratio = (a, b) => Math.round((a / b) * 100) / 100;

// ---------- profile ----------

/** One install under --cpu-prof; returns the functions with the most self time. */
async function profileInstall(work, root, patch, pubFile) {
  const dir = join(work, 'profile');
  await rm(dir, { recursive: true, force: true });
  await clpRoot(root, pubFile);
  run(NODE, ['--cpu-prof', '--cpu-prof-dir', dir, ...clpctl('--root', root, 'install', patch)]);
  const [file] = (await readdir(dir)).filter((f) => f.endsWith('.cpuprofile'));
  const profile = JSON.parse(await readFile(join(dir, file), 'utf8'));
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const self = new Map();
  const dt = profile.timeDeltas;
  profile.samples.forEach((id, i) => {
    const n = byId.get(id);
    const f = n.callFrame;
    const key = `${f.functionName || '(anonymous)'} ${f.url.split('/').slice(-2).join('/')}:${f.lineNumber + 1}`;
    self.set(key, (self.get(key) ?? 0) + (dt[i] ?? 0) / 1000);
  });
  const total = [...self.values()].reduce((a, b) => a + b, 0);
  return {
    totalMs: Math.round(total),
    top: [...self.entries()]
      .sort((a, b) => b[1] - a[1])
      .slice(0, 15)
      .map(([fn, ms]) => ({ fn, ms: Math.round(ms * 10) / 10, share: Math.round((ms / total) * 1000) / 10 })),
  };
}

/** Counts the syscalls of one install (strace -c -f), when strace is present. */
async function syscallsOfInstall(root, patch, pubFile) {
  if (!has('strace')) return null;
  await clpRoot(root, pubFile);
  const r = spawnSync(
    'strace',
    ['-f', '-c', '-S', 'time', NODE, ...clpctl('--root', root, 'install', patch)],
    { encoding: 'utf8' },
  );
  return r.stderr
    .split('\n')
    .filter((l) => !l.startsWith('strace:'))
    .slice(0, 20)
    .join('\n');
}

// ---------- main ----------

async function main() {
  if (Number(process.versions.node.split('.')[0]) < 24)
    throw new Error(`needs Node 24 (this is ${process.version}); run it as: npm run bench -- engine`);
  if (!existsSync(CLPCTL)) throw new Error(`${CLPCTL} is missing; run npm run build first`);
  const help = spawnSync(NODE, clpctl('install', '--help'), { encoding: 'utf8' });
  if (help.status !== 0)
    throw new Error(`this build of clpctl has no install command yet: ${help.stderr.trim()}`);

  const work = opts.work ? resolve(opts.work) : await mkdtemp(join(tmpdir(), 'clp-bench-'));
  await mkdir(work, { recursive: true });
  log(`work folder ${work}`);
  const root = join(work, 'root');
  const result = {
    benchmark: 'engine',
    at: new Date().toISOString(),
    command: `npm run bench -- engine ${process.argv.slice(2).join(' ')}`.trim(),
    machine: {
      cpus: cpus().length,
      cpu: cpus()[0]?.model,
      kernel: release(),
      node: process.version,
      dpkg: toolVersion('dpkg', ['--version']),
      pacman: toolVersion('pacman', ['--version'])?.replace(/^[^A-Za-z]*/, ''),
      filesystem: run('df', ['-T', work]).split('\n')[1]?.split(/\s+/)[1],
      loadAverageAtStart: loadavg().map((x) => Math.round(x * 10) / 10),
    },
    notes: [],
  };

  await rm(join(work, 'keys'), { recursive: true, force: true });
  run(NODE, clpctl('keygen', '--name', 'bench', '--out', join(work, 'keys')));
  const keyFile = join(work, 'keys/bench.key');
  const pubFile = join(work, 'keys/bench.pub');

  const needP1 = ONLY.has('P1') || ONLY.has('P3');
  let p1Patch;
  let files;
  if (needP1) {
    log(`building the ${FILES} × 4 KiB patch, .deb and pacman package`);
    files = smallTree();
    p1Patch = await buildPatch(work, PATCH_NAME, files, keyFile);
  }
  const install = (rootDir, patch) => ({ cmd: NODE, args: clpctl('--root', rootDir, 'install', patch) });
  const haveDpkg = has('dpkg') && has('dpkg-deb');
  const havePacman = has('pacman') && has('bsdtar');
  if (needP1 && !haveDpkg) result.notes.push('skipped: needs dpkg and dpkg-deb (the dpkg peer)');
  if (needP1 && !havePacman) result.notes.push('skipped: needs pacman and bsdtar (the pacman peer)');
  const deb = needP1 && haveDpkg ? await buildDeb(work, files) : null;
  const pac = needP1 && havePacman ? await buildPacman(work, files) : null;
  const checkTree = async () => {
    const probe = files[files.length - 1];
    const got = await readFile(join(root, probe.path)).catch(() => null);
    if (got === null || !got.equals(probe.data))
      throw new Error(`after the run, ${probe.path} is not what the package installs`);
  };

  if (ONLY.has('P1')) {
    log(`P1: install of ${FILES} × 4 KiB files, ${RUNS} runs each, interleaved`);
    const cases = [
      {
        name: 'clpctl install',
        prepare: () => clpRoot(root, pubFile),
        ...install(root, p1Patch),
        check: checkTree,
        phases: (r) => installPhases(root, r),
      },
    ];
    const FLOOR = 'node floor (engine-floor.mjs)';
    if (opts.floor) {
      for (const mode of ['per-file', 'batch', 'syncfs']) {
        cases.push({
          name: `${FLOOR} ${mode}`,
          prepare: () => clpRoot(root, pubFile),
          cmd: NODE,
          args: [join(REPO, 'bench/engine-floor.mjs'), p1Patch, root, mode],
          check: checkTree,
        });
      }
    }
    if (deb)
      cases.push({
        name: 'dpkg -i',
        prepare: () => dpkgRoot(root),
        cmd: 'dpkg',
        args: [...dpkgArgs(root), '-i', deb],
        check: checkTree,
      });
    if (pac) {
      cases.push({
        name: 'pacman -U',
        prepare: () => pacmanRoot(root),
        cmd: 'pacman',
        args: [...pacmanArgs(root, pac.conf), '-U', pac.pkg],
        check: checkTree,
      });
      cases.push({
        name: 'pacman -U + sync',
        prepare: () => pacmanRoot(root),
        cmd: 'sh',
        args: ['-c', '"$@" && sync', 'sh', 'pacman', ...pacmanArgs(root, pac.conf), '-U', pac.pkg],
        check: checkTree,
      });
    }
    const m = await measure(cases, RUNS);
    const clp = m['clpctl install'].median;
    // Durable peers only: dpkg fsyncs what it unpacks; pacman does not, so its durable form is pacman + sync.
    const durablePeers = ['dpkg -i', 'pacman -U + sync'].filter((n) => m[n]);
    const fasterDurable = durablePeers.length ? Math.min(...durablePeers.map((n) => m[n].median)) : null;
    const fasterAny = Math.min(
      ...Object.entries(m)
        .filter(([n]) => n !== 'clpctl install' && !n.startsWith(FLOOR))
        .map(([, s]) => s.median),
    );
    result.P1 = {
      what: `install of ${FILES} files × 4 KiB into a fresh root`,
      bar: '≤ 1.0× the faster peer with the same durability (fsync)',
      results: m,
      ratioVsFasterDurablePeer: fasterDurable === null ? null : ratio(clp, fasterDurable),
      ratioVsFasterPeerAnyDurability: Number.isFinite(fasterAny) ? ratio(clp, fasterAny) : null,
      ratios: Object.fromEntries(
        Object.entries(m)
          .filter(([n]) => n !== 'clpctl install')
          .map(([n, s]) => [n, ratio(clp, s.median)]),
      ),
      ...(opts.floor && fasterDurable !== null
        ? {
            floorRatiosVsFasterDurablePeer: Object.fromEntries(
              Object.entries(m)
                .filter(([n]) => n.startsWith(FLOOR))
                .map(([n, s]) => [n.slice(FLOOR.length + 1), ratio(s.median, fasterDurable)]),
            ),
          }
        : {}),
    };
    result.P1.pass = result.P1.ratioVsFasterDurablePeer !== null && result.P1.ratioVsFasterDurablePeer <= 1.0;
  }

  if (ONLY.has('P3')) {
    log(`P3: uninstall of the P1 patch vs its install, ${RUNS} runs each, interleaved`);
    const cases = [
      {
        name: 'clpctl install',
        prepare: () => clpRoot(root, pubFile),
        ...install(root, p1Patch),
        check: checkTree,
      },
      {
        name: 'clpctl uninstall',
        prepare: async () => {
          await clpRoot(root, pubFile);
          run(NODE, clpctl('--root', root, 'install', p1Patch));
        },
        cmd: NODE,
        args: clpctl('--root', root, 'uninstall', PATCH_NAME),
        check: async () => {
          if (existsSync(join(root, files[0].path)))
            throw new Error(`after uninstall, ${files[0].path} is still there`);
        },
      },
    ];
    const m = await measure(cases, RUNS);
    result.P3 = {
      what: 'uninstall of the P1 patch vs its install',
      bar: '≤ 1.0× its install time',
      results: m,
      ratio: ratio(m['clpctl uninstall'].median, m['clpctl install'].median),
    };
    result.P3.pass = result.P3.ratio <= 1.0;
  }

  if (ONLY.has('P2')) {
    log(`P2: one ${BIG_MIB} MiB file, ${BIG_RUNS} runs each, interleaved`);
    const path = 'var/lib/clp-bench/big.bin';
    const dir = join(work, `patch-${BIG_NAME}`);
    await rm(dir, { recursive: true, force: true });
    await mkdir(dirname(join(dir, 'payload', path)), { recursive: true });
    const source = join(dir, 'payload', path);
    const hash = createHash('sha256');
    const chunk = 8 << 20;
    const { open } = await import('node:fs/promises');
    const fh = await open(source, 'w');
    for (let i = 0; i < BIG_MIB * (1 << 20); i += chunk) {
      const data = randomBytes(chunk);
      hash.update(data);
      await fh.write(data);
    }
    await fh.close();
    await writeFile(join(dir, 'PKGINFO.meta'), patchMeta(BIG_NAME, [{ path, sha256: hash.digest('hex') }]));
    const bigPatch = join(work, `${BIG_NAME}.clp`);
    log('  building the patch');
    run(NODE, clpctl('create', dir, '-o', bigPatch, '--sign', keyFile));
    const target = join(root, path);
    const cases = [
      {
        name: 'clpctl install',
        prepare: () => clpRoot(root, pubFile),
        ...install(root, bigPatch),
        rss: true,
        phases: (r) => installPhases(root, r),
      },
      {
        name: 'cp + sync',
        prepare: async () => {
          await clpRoot(root, pubFile);
          await mkdir(dirname(target), { recursive: true });
        },
        cmd: 'sh',
        args: ['-c', 'cp "$1" "$2" && sync', 'sh', source, target],
      },
    ];
    const m = await measure(cases, BIG_RUNS);
    const rssMiB = m['clpctl install'].peakRssMiB;
    result.P2 = {
      what: `install of a patch with one ${BIG_MIB} MiB file vs cp of the file + sync`,
      bar: '≤ 1.5× and agent peak RSS ≤ 200 MiB',
      results: m,
      ratio: ratio(m['clpctl install'].median, m['cp + sync'].median),
      peakRssMiB: rssMiB,
    };
    result.P2.pass = result.P2.ratio <= 1.5 && rssMiB <= 200;
    await rm(dir, { recursive: true, force: true });
    await rm(bigPatch, { force: true });
  }

  if (opts.profile && p1Patch) {
    log('profiling one P1 install');
    result.profile = {
      cpu: await profileInstall(work, root, p1Patch, pubFile),
      syscalls: await syscallsOfInstall(root, p1Patch, pubFile),
    };
  }

  result.machine.loadAverageAtEnd = loadavg().map((x) => Math.round(x * 10) / 10);
  await mkdir(RESULTS, { recursive: true });
  await writeFile(join(RESULTS, 'engine.json'), `${JSON.stringify(result, null, 2)}\n`);
  await writeFile(join(RESULTS, 'engine.md'), markdown(result));
  log(`wrote ${join(RESULTS, 'engine.json')} and engine.md`);
  process.stdout.write(markdown(result));
  if (!opts.keep) await rm(work, { recursive: true, force: true });
}

function markdown(r) {
  const lines = [
    `# Engine benchmarks (P1–P3)`,
    '',
    `Measured ${r.at} with \`${r.command}\` on ${r.machine.cpus} × ${r.machine.cpu}, kernel ${r.machine.kernel}, ${r.machine.filesystem}, Node ${r.machine.node}, ${r.machine.dpkg ?? 'no dpkg'}, ${r.machine.pacman ?? 'no pacman'}. Load average (1, 5, 15 min) ${r.machine.loadAverageAtStart?.join(' ')} at the start, ${r.machine.loadAverageAtEnd?.join(' ')} at the end (the machine is shared; every case runs under the same load). Medians of interleaved runs on fresh roots; wall time of the whole command.`,
    '',
  ];
  const table = (title, block, extra) => {
    lines.push(
      `## ${title}`,
      '',
      `${block.what}. Bar: ${block.bar}.`,
      '',
      '| command | median ms | min | max | runs | peak RSS MiB |',
      '|---|---:|---:|---:|---:|---:|',
    );
    for (const [name, s] of Object.entries(block.results))
      lines.push(`| ${name} | ${s.median} | ${s.min} | ${s.max} | ${s.runs} | ${s.peakRssMiB ?? ''} |`);
    for (const [name, s] of Object.entries(block.results)) {
      if (s.phasesMedianMs)
        lines.push(
          '',
          `${name}, median time per phase (from CLP.log): ${Object.entries(s.phasesMedianMs)
            .map(([k, v]) => `${k} ${v} ms`)
            .join('; ')}.`,
        );
    }
    lines.push('', ...extra, '');
  };
  if (r.P1) {
    table('P1: 1,000 × 4 KiB files', r.P1, [
      `Ratio to the faster durable peer: **${r.P1.ratioVsFasterDurablePeer ?? 'n/a'}×** (${r.P1.pass ? 'meets' : 'misses'} the bar). Ratios to each: ${Object.entries(
        r.P1.ratios,
      )
        .map(([n, x]) => `${n} ${x}×`)
        .join(', ')}.`,
      ...(r.P1.floorRatiosVsFasterDurablePeer === undefined
        ? []
        : [
            `The node floor (bench/engine-floor.mjs: one pass over the zip, then made durable by the named mode; no journal, backups or signature check) against the faster durable peer: ${Object.entries(
              r.P1.floorRatiosVsFasterDurablePeer,
            )
              .map(([n, x]) => `${n} ${x}×`)
              .join(', ')}.`,
          ]),
      'dpkg runs with `--refuse-unsafe-io`, so it fsyncs every file it unpacks (its default; container images often turn that off); pacman does not fsync, so `pacman -U + sync` is its durable form.',
    ]);
  }
  if (r.P2)
    table('P2: one large file', r.P2, [
      `Ratio: **${r.P2.ratio}×**, agent peak RSS **${r.P2.peakRssMiB} MiB** (${r.P2.pass ? 'meets' : 'misses'} the bar).`,
    ]);
  if (r.P3)
    table('P3: uninstall vs install', r.P3, [
      `Ratio: **${r.P3.ratio}×** (${r.P3.pass ? 'meets' : 'misses'} the bar).`,
    ]);
  if (r.profile) {
    lines.push(
      '## Profile of one P1 install',
      '',
      `CPU profile, ${r.profile.cpu.totalMs} ms sampled; top self time:`,
      '',
      '| function | ms | % |',
      '|---|---:|---:|',
    );
    for (const t of r.profile.cpu.top) lines.push(`| \`${t.fn}\` | ${t.ms} | ${t.share} |`);
    if (r.profile.syscalls) lines.push('', '```', r.profile.syscalls, '```');
    lines.push('');
  }
  for (const n of r.notes) lines.push(`- ${n}`);
  return `${lines.join('\n')}\n`;
}

main().catch((error) => {
  log(`bench engine: ${error.message}`);
  process.exitCode = 1;
});
