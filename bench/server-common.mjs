// Shared pieces of the server benchmarks (bars P5–P7): a dedicated PostgreSQL database, the
// built server as its own process, a seeded fleet, nginx as the peer, wrk as the load generator.
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { cpus, loadavg, tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';

export const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '..');
export const RESULTS = join(REPO, 'bench/results');
const SERVER = join(REPO, 'apps/server/dist/server.mjs');
// A fresh strong token per run: the server refuses a bootstrap token under 128 bits.
export const ADMIN_TOKEN = `clp_adm_bench_${randomBytes(32).toString('hex')}`;

/** The PostgreSQL server to use; the benchmark makes and drops the database `clp_bench` on it. */
export const ADMIN_URL = process.env.BENCH_POSTGRES_URL || 'postgres://postgres@127.0.0.1:5432/postgres';
/** The URL of database `name` on the benchmarks' PostgreSQL server. */
export function databaseUrl(name) {
  const u = new URL(ADMIN_URL);
  u.pathname = `/${name}`;
  return u.toString();
}
export const BENCH_URL = databaseUrl('clp_bench');

export function log(line) {
  process.stderr.write(`[bench] ${line}\n`);
}

/** Fails early, naming what to install, when a tool is missing. */
export function requireTools(...tools) {
  if (Number(process.versions.node.split('.')[0]) < 24) {
    throw new Error(`run with Node 24: 'npx node ${process.argv[1]}' (this is ${process.version})`);
  }
  if (!existsSync(SERVER)) throw new Error("the server is not built; run 'npm run build' first");
  for (const tool of tools) {
    try {
      execFileSync('sh', ['-c', `command -v ${tool}`], { stdio: 'ignore' });
    } catch {
      throw new Error(`needs ${tool} on the PATH (Debian: apt-get install ${tool})`);
    }
  }
}

/** A free TCP port on 127.0.0.1. */
export function freePort() {
  return new Promise((done, fail) => {
    const s = createServer();
    s.once('error', fail);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => done(port));
    });
  });
}

/** Drops and creates the `clp_bench` database (or `name`, for a benchmark that keeps its own). */
export async function freshDatabase(name = 'clp_bench') {
  const admin = sql(ADMIN_URL, 1);
  try {
    await admin.query(`drop database if exists ${name} with (force)`);
    await admin.query(`create database ${name}`);
  } finally {
    await admin.end();
  }
}

/** A small connection pool to the bench database (or `url`): `query(text, values)`, `end()`. */
export function sql(url = BENCH_URL, max = 4) {
  const pool = new pg.Pool({ connectionString: url, max });
  pool.on('error', () => {});
  return pool;
}

/** Waits until url answers 2xx (or any HTTP status with anyStatus). */
async function waitFor(url, ms, proc, anyStatus = false) {
  const until = Date.now() + ms;
  let last;
  while (Date.now() < until) {
    if (proc && proc.exitCode !== null) throw new Error(`${url}: the process exited with ${proc.exitCode}`);
    try {
      const res = await fetch(url);
      if (res.ok || anyStatus) return;
      last = `HTTP ${res.status}`;
    } catch (error) {
      last = error.message;
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`${url} did not answer within ${ms} ms (${last})`);
}

/** Starts the built server (its own Node process) on PostgreSQL `clp_bench`; migrations run at start. */
export async function startServer({ dataDir, url: dbUrl = BENCH_URL }) {
  const port = await freePort();
  const proc = spawn(process.execPath, [SERVER], {
    env: {
      ...process.env,
      PORT: String(port),
      DATABASE_URL: dbUrl,
      CLP_DATA_DIR: dataDir,
      CLP_BOOTSTRAP_TOKEN: ADMIN_TOKEN,
      CLP_LOG_LEVEL: 'warn',
      // For profiling the server alone, e.g. BENCH_SERVER_NODE_OPTIONS=--cpu-prof.
      NODE_OPTIONS: process.env.BENCH_SERVER_NODE_OPTIONS ?? '',
    },
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  const url = `http://127.0.0.1:${port}`;
  await waitFor(`${url}/readyz`, 60_000, proc);
  return {
    url,
    pid: proc.pid,
    async stop() {
      if (proc.exitCode !== null) return;
      const exited = new Promise((r) => proc.once('exit', r));
      proc.kill('SIGTERM');
      await exited;
    },
  };
}

/** nginx with a temporary configuration serving `root` on its own port; one worker like the one server process. */
export async function startNginx({ root, workers = 1 }) {
  const prefix = await mkdtemp(join(tmpdir(), 'clp-bench-nginx-'));
  const port = await freePort();
  for (const d of ['tmp', 'logs']) await mkdir(join(prefix, d));
  const conf = join(prefix, 'nginx.conf');
  await writeFile(
    conf,
    `user root;
worker_processes ${workers};
daemon off;
pid ${prefix}/nginx.pid;
error_log ${prefix}/logs/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  sendfile on;
  tcp_nopush on;
  keepalive_timeout 65;
  keepalive_requests 10000000;
  default_type application/octet-stream;
  client_body_temp_path ${prefix}/tmp/body;
  proxy_temp_path ${prefix}/tmp/proxy;
  fastcgi_temp_path ${prefix}/tmp/fastcgi;
  uwsgi_temp_path ${prefix}/tmp/uwsgi;
  scgi_temp_path ${prefix}/tmp/scgi;
  server {
    listen 127.0.0.1:${port};
    root ${root};
    location / { etag on; }
  }
}
`,
  );
  const proc = spawn('nginx', ['-c', conf, '-p', prefix], { stdio: ['ignore', 'ignore', 'inherit'] });
  const url = `http://127.0.0.1:${port}`;
  // The root has no index page: any answer (403/404) shows that nginx is up.
  await waitFor(`${url}/`, 10_000, proc, true);
  return {
    url,
    async stop() {
      if (proc.exitCode === null) {
        const exited = new Promise((r) => proc.once('exit', r));
        proc.kill('SIGQUIT');
        await exited;
      }
      await rm(prefix, { recursive: true, force: true });
    },
  };
}

/** The credential of bench machine i (1-based); only its sha256 is stored, as the server does. */
export const credentialOf = (i) => `clp_mch_bench_${i}`;

export const FACTS = {
  hostname: 'bench-host',
  os: { id: 'vincent', version: '2025.11' },
  arch: 'x86_64',
  agentVersion: '0.1.0',
};

/**
 * Inserts `machines` enrolled machines straight into the database (one INSERT … SELECT, not
 * 100,000 HTTP enrollments), spread over the three default tiers and ten site tags, plus
 * `releases` releases; then creates `rollouts` active rollouts through the API, like an operator.
 */
export async function seedFleet(server, { machines, rollouts, url = BENCH_URL }) {
  await seedMachines(sql(url), { machines, rollouts });
  return createRollouts(server, { rollouts });
}

/**
 * A release row straight into the database (no upload, no blob), uploaded by `bench`; its series
 * is CLP + the name's last six digits. `db` as for seedMachines.
 */
export async function insertRelease(db, { sha256, name, size }) {
  const series = `CLP${name.slice(-6)}`;
  const meta = { name, version: '1', architecture: 'any', series, systems: [], actions: [], dialect: 'xml' };
  await db.query(
    `insert into releases (id, sha256, name, series, version, arch, meta, signer_key_id, size, uploaded_by, uploaded_at)
    values ($1, $1, $2, $3, '1', 'any', $4::jsonb, 'bench', $5, 'bench', now())`,
    [sha256, name, series, JSON.stringify(meta), size],
  );
}

/**
 * The SQL half of seedFleet, through `db` (anything with `query(text, values)` and `end()`: a
 * pg pool, or a wrapped PGlite while no server holds its folder); closes `db`.
 */
export async function seedMachines(db, { machines, rollouts }) {
  const started = performance.now();
  try {
    await db.query(
      `insert into machines (id, credential_hash, hostname, arch, os_id, os_version, facts, tier, tags, enrolled_at)
      select 'bench-' || lpad(i::text, 6, '0'),
             encode(sha256(convert_to('clp_mch_bench_' || i, 'UTF8')), 'hex'),
             'bench-' || i, 'x86_64', 'vincent', '2025.11',
             jsonb_set($1::jsonb, '{hostname}', to_jsonb('bench-' || i)),
             (array['edge','beta','stable'])[1 + i % 3],
             jsonb_build_array('site=s' || (i % 10)),
             now()
      from generate_series(1, $2::int) as i`,
      [JSON.stringify(FACTS), machines],
    );
    for (let k = 1; k <= rollouts; k++) {
      const name = `CLP1${String(2511 * 100 + k).padStart(6, '0')}`;
      const id = createHash('sha256').update(`bench-release-${k}`).digest('hex');
      await insertRelease(db, { sha256: id, name, size: 40_000 + k });
    }
    await db.query('analyze');
  } finally {
    await db.end();
  }
  log(
    `inserted ${machines} machines and ${rollouts} releases in ${Math.round(performance.now() - started)} ms`,
  );
}

/** The API half of seedFleet: `rollouts` active rollouts of the seeded releases; answers their ids. */
export async function createRollouts(server, { rollouts }) {
  const tiers = ['edge', 'beta', 'stable'];
  const ids = [];
  for (let k = 1; k <= rollouts; k++) {
    const releaseId = createHash('sha256').update(`bench-release-${k}`).digest('hex');
    // A mix like a real fleet: stages at different percentages, some narrowed to a site tag.
    const percent = [5, 10, 25, 50, 100][k % 5];
    const body = {
      releaseId,
      tier: tiers[k % 3],
      selector: k % 4 === 0 ? { tags: [`site=s${k % 10}`] } : k % 4 === 1 ? { arch: ['x86_64'] } : {},
      stages: [
        { percent, minDurationSeconds: 86_400 },
        { percent: 100, minDurationSeconds: 86_400 },
      ],
      failureThreshold: { maxFailureRate: 0.5, minReports: 1_000_000 },
    };
    const res = await fetch(`${server.url}/v1/rollouts`, {
      method: 'POST',
      headers: { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });
    if (res.status !== 201) throw new Error(`creating rollout ${k}: HTTP ${res.status} ${await res.text()}`);
    ids.push((await res.json()).id);
  }
  log(`created ${rollouts} active rollouts through the API`);
  return ids;
}

/**
 * Runs wrk with a Lua script and returns its JSON summary (the script's done() prints one line
 * `BENCH_JSON {...}`), plus the text wrk printed.
 */
export function runWrk({ url, script, threads = 1, connections = 64, seconds = 20, env = {} }) {
  return new Promise((done, fail) => {
    const args = [
      `-t${threads}`,
      `-c${connections}`,
      `-d${seconds}s`,
      '--latency',
      ...(script ? ['-s', script] : []),
      url,
    ];
    const proc = spawn('wrk', args, {
      env: { ...process.env, ...env },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let out = '';
    proc.stdout.on('data', (c) => {
      out += c;
    });
    proc.once('error', fail);
    proc.once('exit', (code) => {
      if (code !== 0) return fail(new Error(`wrk exited with ${code}: ${out}`));
      const line = /^BENCH_JSON (.*)$/m.exec(out);
      if (!line) return fail(new Error(`wrk printed no BENCH_JSON line:\n${out}`));
      done({ ...JSON.parse(line[1]), text: out, args: ['wrk', ...args].join(' ') });
    });
  });
}

/** Which server was measured: the last commit of apps/server or db, and whether the tree differs from it. */
function serverRevision() {
  try {
    const commit = execFileSync('git', ['log', '-1', '--format=%h', '--', 'apps/server', 'db'], {
      cwd: REPO,
      encoding: 'utf8',
    }).trim();
    const changed = execFileSync('git', ['status', '--porcelain', '--', 'apps/server/src', 'db'], {
      cwd: REPO,
      encoding: 'utf8',
    }).trim();
    return changed ? `${commit} with uncommitted changes in apps/server or db` : commit;
  } catch {
    return 'unknown (not a git checkout)';
  }
}

export function machineInfo() {
  const c = cpus();
  let nginx = '';
  let wrk = '';
  let pg = '';
  // nginx -v writes its version to stderr.
  nginx = spawnSync('nginx', ['-v'], { encoding: 'utf8' }).stderr.trim();
  try {
    wrk = execFileSync('wrk', ['-v'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] })
      .split('\n')[0]
      .trim();
  } catch (error) {
    wrk = String(error.stdout ?? '')
      .split('\n')[0]
      .trim();
  }
  try {
    pg = execFileSync('psql', ['--version'], { encoding: 'utf8' }).trim();
  } catch {
    pg = 'unknown';
  }
  return {
    cpus: c.length,
    cpu: c[0]?.model ?? 'unknown',
    node: process.version,
    nginx,
    wrk,
    postgres: pg,
    server: serverRevision(),
    // Other work on the machine takes CPU from the server, PostgreSQL and wrk alike.
    loadAverage: loadavg().map((l) => Math.round(l * 100) / 100),
    at: new Date().toISOString(),
  };
}

export async function writeResults(name, json, markdown) {
  await mkdir(RESULTS, { recursive: true });
  await writeFile(join(RESULTS, `${name}.json`), `${JSON.stringify(json, null, 2)}\n`);
  await writeFile(join(RESULTS, `${name}.md`), markdown.endsWith('\n') ? markdown : `${markdown}\n`);
  log(`wrote bench/results/${name}.json and .md`);
}

export async function withTempDir(prefix, fn) {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  try {
    return await fn(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

export { readFile };

/** CPU seconds (user + system) used so far by these processes, from /proc (Linux). */
export function cpuSeconds(pids) {
  const tick = 100; // USER_HZ on Linux
  let total = 0;
  for (const pid of pids) {
    try {
      const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
      total += Number(fields[11]) + Number(fields[12]);
    } catch {
      // gone meanwhile
    }
  }
  return total / tick;
}

/** Process ids of the PostgreSQL backends serving clp_bench (empty when PostgreSQL is not on this machine). */
export async function backendPids() {
  const db = sql(ADMIN_URL, 1);
  try {
    const { rows } = await db.query(
      `select pid from pg_stat_activity where datname = 'clp_bench' and pid <> pg_backend_pid()`,
    );
    return rows.map((r) => r.pid).filter((pid) => existsSync(`/proc/${pid}/stat`));
  } finally {
    await db.end();
  }
}

/** Runs fn while measuring the CPU seconds of the server process and of its PostgreSQL backends. */
export async function measureCpu(server, fn) {
  const pg = await backendPids();
  const before = { server: cpuSeconds([server.pid]), postgres: cpuSeconds(pg) };
  const value = await fn();
  // Backends the pool opened during the run used all their CPU within it.
  const opened = (await backendPids()).filter((pid) => !pg.includes(pid));
  return {
    value,
    cpu: {
      serverSeconds: Math.round((cpuSeconds([server.pid]) - before.server) * 100) / 100,
      postgresSeconds: Math.round((cpuSeconds(pg) - before.postgres + cpuSeconds(opened)) * 100) / 100,
      postgresBackends: pg.length + opened.length,
    },
  };
}
