// Bar P8: a fleet of 100,000 simulated agents on a virtual clock against the real server
// (its HTTP API, in a worker thread of this process) on PostgreSQL, through a 4-stage rollout
// with 10 % of the machines that join in stage 2 failing. See bench/README.md.
// --scenario last-stage: the failures start in the LAST stage (30 % of the machines that join
// it), whose minimum time is an hour, so that a rollout that "completes" after its last stage's
// minimum time would have patched the whole fleet; the run checks that it halts there by itself.
//
//   npm run build && npx node bench/fleet-sim.mjs [--agents 100000] [--concurrency 64] [--days 4]
//   npm run build && npx node bench/fleet-sim.mjs --scenario last-stage
//
// Needs PostgreSQL (DATABASE_URL, default postgres://postgres@127.0.0.1:5432/postgres); the
// database clp_fleetsim is dropped and made again on each run.
import { execFileSync } from 'node:child_process';
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { Agent, request } from 'node:http';
import { cpus, loadavg, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads';
import pg from 'pg';

const REPO = join(dirname(fileURLToPath(import.meta.url)), '..');
const { values: args } = parseArgs({
  args: isMainThread ? process.argv.slice(2) : [],
  options: {
    agents: { type: 'string', default: '100000' },
    concurrency: { type: 'string', default: '64' },
    days: { type: 'string' },
    'window-minutes': { type: 'string', default: '60' },
    'failure-rate': { type: 'string' },
    scenario: { type: 'string', default: 'stage2' },
    out: { type: 'string' },
  },
});
const AGENTS = Number(args.agents);
const CONCURRENCY = Number(args.concurrency);
const DAYS = Number(args.days ?? (args.scenario === 'last-stage' ? 5 : 4));
const WINDOW_MS = Number(args['window-minutes']) * 60_000;
const SCENARIO = args.scenario;
if (SCENARIO !== 'stage2' && SCENARIO !== 'last-stage')
  throw new Error(`--scenario ${SCENARIO}: use stage2 or last-stage`);
const LAST = SCENARIO === 'last-stage';
const FAILURE_RATE = Number(args['failure-rate'] ?? (LAST ? '0.30' : '0.10'));
/** The stage (0-based) whose joining machines fail. */
const BROKEN_STAGE = LAST ? 3 : 1;
const STAGES = [1, 10, 50, 100].map((percent, i) => ({
  percent,
  // The issue's case: a last stage of an hour, over long before the daily polls of its day.
  minDurationSeconds: LAST && i === 3 ? 3600 : 86_400,
}));
const THRESHOLD = { maxFailureRate: 0.05, minReports: 100 };
const DAY_MS = 86_400_000;
const START = Date.parse('2026-03-02T00:00:00Z');
const ADMIN_URL = process.env.DATABASE_URL || 'postgres://postgres@127.0.0.1:5432/postgres';
const DB_NAME = 'clp_fleetsim';
const OUT =
  args.out ??
  (AGENTS === 100_000
    ? join(REPO, 'bench', 'results', LAST ? 'fleet-sim-last-stage' : 'fleet-sim')
    : undefined);

/** The commit measured (with a mark when the tree had changes). */
const COMMIT = (() => {
  try {
    const git = (...a) => execFileSync('git', ['-C', REPO, ...a], { encoding: 'utf8' }).trim();
    return `${git('rev-parse', '--short', 'HEAD')}${git('status', '--porcelain', '--', 'apps', 'libs', 'db') ? ' (with local changes)' : ''}`;
  } catch {
    return 'unknown';
  }
})();
// Other work on the machine slows the server down; the result records how busy it was.
const LOAD_AT_START = loadavg().map((x) => Number(x.toFixed(1)));
const log = (line) => process.stdout.write(`${line}\n`);

// ---------------------------------------------------------------- virtual clock (shared memory)
const clockBuffer = new SharedArrayBuffer(8);
const clockCell = new BigInt64Array(clockBuffer);
const setClock = (ms) => {
  // Lanes run concurrently: time only moves forward.
  for (;;) {
    const current = Atomics.load(clockCell, 0);
    if (BigInt(ms) <= current) return;
    if (Atomics.compareExchange(clockCell, 0, current, BigInt(ms)) === current) return;
  }
};
Atomics.store(clockCell, 0, BigInt(START));
const now = () => Number(Atomics.load(clockCell, 0));

// ---------------------------------------------------------------- HTTP with keep-alive
const agent = new Agent({ keepAlive: true, maxSockets: CONCURRENCY });
/** The server's URL, once it listens. */
let base;

function call(method, path, { token, json, body } = {}) {
  return new Promise((resolve, reject) => {
    const headers = {};
    if (token) headers.authorization = `Bearer ${token}`;
    let payload;
    if (json !== undefined) {
      payload = Buffer.from(JSON.stringify(json));
      headers['content-type'] = 'application/json';
    } else if (body !== undefined) {
      payload = body;
      headers['content-type'] = 'application/octet-stream';
    }
    if (payload) headers['content-length'] = String(payload.length);
    const req = request(`${base}${path}`, { method, headers, agent }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => {
        const raw = Buffer.concat(chunks);
        const type = res.headers['content-type'] ?? '';
        resolve({
          status: res.statusCode,
          raw,
          body: type.includes('json') && raw.length ? JSON.parse(raw) : undefined,
        });
      });
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(payload);
  });
}

async function must(method, path, options, expected = 200) {
  const r = await call(method, path, options);
  if (r.status !== expected)
    throw new Error(`${method} ${path}: ${r.status} ${r.raw.toString().slice(0, 500)}`);
  return r.body;
}

/** Runs fn(i) for i in 0..n-1 with CONCURRENCY lanes, in order of i. */
async function lanes(n, fn) {
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(CONCURRENCY, n) }, async () => {
      for (;;) {
        const i = next++;
        if (i >= n) return;
        await fn(i);
      }
    }),
  );
}

// ---------------------------------------------------------------- the documented cohort rule
const cohortBucket = (machineId, rolloutId) =>
  createHash('sha256').update(`${rolloutId}\u0000${machineId}`, 'utf8').digest().readUInt32BE(0) % 10_000;
/** The injected fault: about FAILURE_RATE of machines, chosen by a hash independent of any rollout. */
const brokenMachine = (machineId) =>
  createHash('sha256').update(`broken\u0000${machineId}`).digest().readUInt32BE(0) / 2 ** 32 < FAILURE_RATE;

const quantile = (sorted, q) =>
  sorted.length ? sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] : 0;

// ---------------------------------------------------------------- setup
async function freshDatabase() {
  const admin = new pg.Client({ connectionString: ADMIN_URL });
  await admin.connect();
  try {
    await admin.query(`drop database if exists ${DB_NAME} with (force)`);
    await admin.query(`create database ${DB_NAME}`);
  } finally {
    await admin.end();
  }
  const url = new URL(ADMIN_URL);
  url.pathname = `/${DB_NAME}`;
  return url.toString();
}

/** A real signed release made with clpctl (the bundle from npm run build). */
async function buildRelease(dir) {
  const node = join(REPO, 'node_modules', '.bin', 'node');
  const clpctl = join(REPO, 'apps', 'agent', 'dist', 'clpctl.mjs');
  const run = (...a) => execFileSync(node, [clpctl, ...a], { stdio: ['ignore', 'pipe', 'inherit'] });
  run('keygen', '--name', 'fleetsim', '--out', dir);
  const src = join(dir, 'CLP1260302');
  await mkdir(join(src, 'payload'), { recursive: true });
  const conf = 'fleet simulation\n';
  await writeFile(join(src, 'payload', 'fleetsim.conf'), conf);
  const sha = createHash('sha256').update(conf).digest('hex');
  await writeFile(
    join(src, 'PKGINFO.meta'),
    `<?xml version="1.0" encoding="UTF-8"?>
<Package>
  <Name>CLP1260302</Name>
  <Version>1</Version>
  <Architecture>any</Architecture>
  <Description>Fleet simulation release</Description>
  <Actions>
    <File action="add" path="/etc/fleetsim.conf" source="payload/fleetsim.conf" sha256="${sha}" mode="0644"/>
  </Actions>
</Package>
`,
  );
  const file = join(dir, 'CLP1260302.clp');
  run('create', src, '-o', file, '--sign', join(dir, 'fleetsim.key'));
  return { file, pub: join(dir, 'fleetsim.pub') };
}

function waitFor(worker, type) {
  return new Promise((resolve, reject) => {
    const onMessage = (m) => {
      if (m.type === type) {
        worker.off('message', onMessage);
        worker.off('error', reject);
        resolve(m);
      }
    };
    worker.on('message', onMessage);
    worker.once('error', reject);
  });
}

// ---------------------------------------------------------------- the server (worker thread)
/**
 * The real server in a worker thread of this process, so that it has a core of its own. Its clock
 * reads the virtual time (ms since the epoch) from memory shared with the load generator.
 */
async function serve() {
  const { createServer, defaultConfig } = await import('@clp/server');
  const cell = new BigInt64Array(workerData.clock);
  const clock = { now: () => new Date(Number(Atomics.load(cell, 0))) };
  const config = defaultConfig({
    dataDir: workerData.dataDir,
    databaseUrl: workerData.databaseUrl,
    trustedKeysDir: workerData.keysDir,
    bootstrapToken: workerData.adminToken,
    logLevel: 'warn',
    rateLimits: { enrollPerMinute: 10_000_000, authFailuresPerMinute: 10_000_000 },
  });
  const server = await createServer(config, { clock });
  const { url } = await server.listen(0, '127.0.0.1');
  parentPort.postMessage({ type: 'listening', url });
  parentPort.on('message', async (message) => {
    if (message.type === 'flush') {
      // Poll bookkeeping is written once a second; make it visible now.
      await server.context.seen.flush();
      parentPort.postMessage({ type: 'flushed' });
    } else if (message.type === 'close') {
      await server.close();
      parentPort.postMessage({ type: 'closed' });
    }
  });
}

// ---------------------------------------------------------------- the simulation (main thread)
async function simulate() {
  const work = await mkdtemp(join(tmpdir(), 'clp-fleetsim-'));
  const keysDir = join(work, 'keys');
  await mkdir(keysDir, { recursive: true });
  const release = await buildRelease(work);
  await writeFile(join(keysDir, 'fleetsim.pub'), await readFile(release.pub));
  const databaseUrl = await freshDatabase();
  const adminToken = `clp_adm_sim${randomBytes(16).toString('hex')}`;
  const worker = new Worker(new URL(import.meta.url), {
    workerData: { clock: clockBuffer, dataDir: join(work, 'data'), databaseUrl, keysDir, adminToken },
  });
  base = (await waitFor(worker, 'listening')).url;
  const admin = { token: adminToken };
  log(
    `fleet simulation: ${AGENTS} agents, ${CONCURRENCY} concurrent requests, server ${base}, PostgreSQL database ${DB_NAME}`,
  );

  // Enrollment: one token per lane, so that enrollments do not queue on one token row.
  const t0 = performance.now();
  const tokens = [];
  for (let i = 0; i < Math.min(CONCURRENCY, AGENTS); i++) {
    const t = await must(
      'POST',
      '/v1/enrollment-tokens',
      { ...admin, json: { tier: 'stable', uses: Math.ceil(AGENTS / CONCURRENCY) + 1 } },
      201,
    );
    tokens.push(t.token);
  }
  const fleet = Array.from({ length: AGENTS }, (_, i) => ({
    id: `fleetsim-${String(i).padStart(6, '0')}`,
    credential: '',
    installed: [],
    broken: false,
    bucket: 0,
    appliedDay: -1,
    failedDay: -1,
  }));
  const facts = {
    hostname: 'sim',
    os: { id: 'vincent', version: '2025.11' },
    arch: 'x86_64',
    agentVersion: '0.1.0',
  };
  let enrolled = 0;
  await lanes(AGENTS, async (i) => {
    const m = fleet[i];
    const r = await must(
      'POST',
      '/v1/agent/enroll',
      { json: { token: tokens[i % tokens.length], machineId: m.id, facts: { ...facts, hostname: m.id } } },
      201,
    );
    m.credential = r.credential;
    if (++enrolled % 20_000 === 0) log(`  enrolled ${enrolled}`);
  });
  const enrollSeconds = (performance.now() - t0) / 1000;
  log(
    `enrolled ${AGENTS} machines in ${enrollSeconds.toFixed(1)} s (${Math.round(AGENTS / enrollSeconds)}/s)`,
  );

  const uploaded = await must('POST', '/v1/releases', { ...admin, body: await readFile(release.file) }, 201);
  const rollout = await must(
    'POST',
    '/v1/rollouts',
    {
      ...admin,
      json: { releaseId: uploaded.id, tier: 'stable', stages: STAGES, failureThreshold: THRESHOLD },
    },
    201,
  );
  for (const m of fleet) {
    m.bucket = cohortBucket(m.id, rollout.id);
    // The fault is injected only into the machines that join in one stage.
    m.broken =
      m.bucket >= STAGES[BROKEN_STAGE - 1].percent * 100 &&
      m.bucket < STAGES[BROKEN_STAGE].percent * 100 &&
      brokenMachine(m.id);
  }
  log(
    `release ${uploaded.name} (${uploaded.size} bytes), rollout ${rollout.id}: stages ${STAGES.map((s) => `${s.percent} %`).join(' → ')}, at least ${STAGES.map((s) => `${s.minDurationSeconds / 3600} h`).join(', ')}`,
  );

  const days = [];
  const violations = [];
  // Offers on the days after a day that ended with the rollout halted (must be none).
  let offersWhileHalted = 0;
  let knownHalted = false;
  for (let day = 0; day < DAYS; day++) {
    // Each agent polls once a day at 12:00 plus a random delay within the window.
    const dayStart = START + day * DAY_MS;
    // Between two days real time passes too: let the server's one-second rollout cache expire,
    // as it would overnight, so that the first polls of the day see the day's stage.
    setClock(dayStart);
    await new Promise((resolve) => setTimeout(resolve, 1100));
    const schedule = fleet.map((m) => ({
      m,
      at: dayStart + 12 * 3_600_000 + Math.floor(Math.random() * WINDOW_MS),
    }));
    schedule.sort((a, b) => a.at - b.at);
    const stats = { day, polls: 0, offers: 0, applied: 0, failed: 0, downloads: 0, reports: 0, errors: 0 };
    const latencies = [];
    // Event-loop time of the server thread (its busy time, PostgreSQL excluded) and of this one.
    const serverLoop = worker.performance.eventLoopUtilization();
    const generatorLoop = performance.eventLoopUtilization();
    const started = performance.now();
    await lanes(schedule.length, async (i) => {
      const { m, at } = schedule[i];
      setClock(at);
      const t = performance.now();
      const r = await call('POST', '/v1/agent/poll', {
        token: m.credential,
        json: { facts: { ...facts, hostname: m.id }, installed: m.installed },
      });
      latencies.push(performance.now() - t);
      stats.polls++;
      if (r.status !== 200) {
        stats.errors++;
        return;
      }
      for (const offer of r.body.apply) {
        stats.offers++;
        if (offer.rolloutId === rollout.id && knownHalted) offersWhileHalted++;
        const blob = await call('GET', offer.url);
        stats.downloads++;
        const ok =
          blob.status === 200 && createHash('sha256').update(blob.raw).digest('hex') === offer.sha256;
        const failed = !ok || m.broken;
        const report = {
          id: randomUUID(),
          releaseId: offer.releaseId,
          rolloutId: offer.rolloutId,
          name: offer.name,
          sha256: offer.sha256,
          status: failed ? 'failed' : 'applied',
          ...(failed
            ? {
                errorCode: ok ? 'CLP_E_HEALTH_CHECK' : 'CLP_E_DOWNLOAD_CORRUPT',
                log: 'injected failure (fleet simulation)',
              }
            : {}),
          at: new Date(now()).toISOString(),
        };
        if (failed) {
          m.failedDay = day;
          m.installed = [{ name: offer.name, sha256: offer.sha256, series: offer.series, state: 'failed' }];
          stats.failed++;
        } else {
          m.appliedDay = day;
          m.installed = [
            { name: offer.name, sha256: offer.sha256, series: offer.series, state: 'installed' },
          ];
          stats.applied++;
        }
        const sent = await call('POST', '/v1/agent/reports', {
          token: m.credential,
          json: { reports: [report] },
        });
        if (sent.status !== 200 || sent.body.accepted.length !== 1) stats.errors++;
        stats.reports++;
      }
    });
    const seconds = (performance.now() - started) / 1000;
    const serverBusy = worker.performance.eventLoopUtilization(serverLoop);
    const generatorBusy = performance.eventLoopUtilization(generatorLoop);
    const state = await must('GET', `/v1/rollouts/${rollout.id}`, admin);
    if (state.state === 'halted') knownHalted = true;
    latencies.sort((a, b) => a - b);
    const entry = {
      ...stats,
      seconds: Number(seconds.toFixed(2)),
      pollsPerSecond: Math.round(stats.polls / seconds),
      serverBusySeconds: Number((serverBusy.active / 1000).toFixed(1)),
      serverLoopUtilization: Number(serverBusy.utilization.toFixed(2)),
      generatorLoopUtilization: Number(generatorBusy.utilization.toFixed(2)),
      pollMs: {
        p50: Number(quantile(latencies, 0.5).toFixed(2)),
        p99: Number(quantile(latencies, 0.99).toFixed(2)),
      },
      rolloutAfter: {
        state: state.state,
        stage: state.currentStage + 1,
        percent: state.percent,
        counters: state.counters,
      },
    };
    days.push(entry);
    log(
      `day ${day}: ${stats.polls} polls in ${seconds.toFixed(1)} s (server busy ${entry.serverBusySeconds} s; ${entry.pollsPerSecond}/s, p50 ${entry.pollMs.p50} ms, p99 ${entry.pollMs.p99} ms), ` +
        `${stats.offers} offers, ${stats.applied} applied, ${stats.failed} failed, ${stats.errors} errors; rollout ${state.state} at stage ${entry.rolloutAfter.stage} (${state.percent} %)`,
    );
  }

  // ---------------------------------------------------------------- checks
  worker.postMessage({ type: 'flush' });
  await waitFor(worker, 'flushed');
  const final = await must('GET', `/v1/rollouts/${rollout.id}`, admin);
  const audit = (await must('GET', `/v1/rollouts/${rollout.id}/audit`, admin)).entries;
  const halt = audit.find((e) => e.action === 'halt');
  const reachedPercent = STAGES[final.currentStage].percent;
  const appliedMachines = fleet.filter((m) => m.appliedDay >= 0);
  const failedMachines = fleet.filter((m) => m.failedDay >= 0);
  for (const m of [...appliedMachines, ...failedMachines]) {
    const day = Math.max(m.appliedDay, m.failedDay);
    // Stage k (0-based) is in force from day k on; a machine may only be patched inside the cohort of the stage of its day.
    const allowed = STAGES[Math.min(day, final.currentStage)].percent * 100;
    if (m.bucket >= allowed) violations.push({ machine: m.id, bucket: m.bucket, day, allowedBelow: allowed });
  }
  // The server's own view: machines whose polls say the release is installed.
  const serverInstalled = new Set();
  for (let offset = 0; ; offset += 1000) {
    const page = await must(
      'GET',
      `/v1/machines?installed=${uploaded.id}&limit=1000&offset=${offset}`,
      admin,
    );
    for (const m of page.machines)
      if (m.installed.some((p) => p.sha256 === uploaded.id && p.state === 'installed'))
        serverInstalled.add(m.id);
    if (page.machines.length < 1000) break;
  }
  const simInstalled = new Set(appliedMachines.map((m) => m.id));
  const serverAgrees =
    serverInstalled.size === simInstalled.size && [...simInstalled].every((id) => serverInstalled.has(id));
  const outsideOnServer = [...serverInstalled].filter(
    (id) => cohortBucket(id, rollout.id) >= reachedPercent * 100,
  );

  // What the halt saved: the healthy machines of the broken stage's cohort that were never
  // patched, against a rollout that "completed" after that stage's minimum time and went on
  // offering the release to every machine polling later (all of them, healthy or not).
  const joinFrom = STAGES[BROKEN_STAGE - 1].percent * 100;
  const joinBelow = STAGES[BROKEN_STAGE].percent * 100;
  const brokenStageCohort = fleet.filter((m) => m.bucket >= joinFrom && m.bucket < joinBelow);
  const protection = {
    stage: BROKEN_STAGE + 1,
    cohort: brokenStageCohort.length,
    appliedBeforeHalt: brokenStageCohort.filter((m) => m.appliedDay >= 0).length,
    failedBeforeHalt: brokenStageCohort.filter((m) => m.failedDay >= 0).length,
    patchedIfCompleted: brokenStageCohort.filter((m) => !m.broken).length,
    failedIfCompleted: brokenStageCohort.filter((m) => m.broken).length,
  };
  const result = {
    goal: 'P8',
    scenario: SCENARIO,
    date: new Date().toISOString(),
    commit: COMMIT,
    machine: {
      cpus: cpus().length,
      node: process.version,
      loadAverageAtStart: LOAD_AT_START,
      loadAverageAtEnd: loadavg().map((x) => Number(x.toFixed(1))),
    },
    agents: AGENTS,
    concurrency: CONCURRENCY,
    pollWindowMinutes: WINDOW_MS / 60_000,
    stages: STAGES,
    failureThreshold: THRESHOLD,
    injectedFailure: `${FAILURE_RATE * 100} % of the machines that join in stage ${BROKEN_STAGE + 1}`,
    protection,
    enrollSeconds: Number(enrollSeconds.toFixed(1)),
    days,
    rollout: {
      state: final.state,
      haltedInStage: final.state === 'halted' ? final.currentStage + 1 : null,
      haltReason: final.haltReason,
      haltedAtVirtual: halt?.at ?? null,
      haltedBy: halt?.actor ?? null,
      counters: final.counters,
    },
    checks: {
      haltedInBrokenStageByItself:
        final.state === 'halted' && final.currentStage === BROKEN_STAGE && halt?.actor === 'system',
      neverCompleted: !audit.some((e) => e.action === 'complete'),
      machinesOutsideCohortPatched: violations.length,
      machinesOutsideReachedStageOnServer: outsideOnServer.length,
      serverInstalledMatchesSimulation: serverAgrees,
      countersMatchReports:
        final.counters.applied === appliedMachines.length && final.counters.failed === failedMachines.length,
      offersOnDaysAfterHalt: offersWhileHalted,
      requestErrors: days.reduce((s, d) => s + d.errors, 0),
    },
  };
  const pass =
    result.checks.haltedInBrokenStageByItself &&
    result.checks.neverCompleted &&
    result.checks.machinesOutsideCohortPatched === 0 &&
    result.checks.machinesOutsideReachedStageOnServer === 0 &&
    result.checks.serverInstalledMatchesSimulation &&
    result.checks.countersMatchReports &&
    result.checks.offersOnDaysAfterHalt === 0 &&
    result.checks.requestErrors === 0;
  result.pass = pass;
  log(JSON.stringify(result.checks));
  log(
    `P8 ${pass ? 'PASS' : 'FAIL'}: rollout ${final.state} in stage ${final.currentStage + 1} (${final.haltReason ?? 'no halt'})`,
  );

  if (OUT) {
    await mkdir(dirname(OUT), { recursive: true });
    await writeFile(`${OUT}.json`, `${JSON.stringify(result, null, 2)}\n`);
    const rows = days
      .map(
        (d) =>
          `| ${d.day} | ${d.polls} | ${d.seconds} | ${d.serverBusySeconds} (${Math.round(d.serverLoopUtilization * 100)} %) | ${d.pollsPerSecond} | ${d.pollMs.p50} / ${d.pollMs.p99} | ${d.offers} | ${d.applied} | ${d.failed} | ${d.rolloutAfter.state}, stage ${d.rolloutAfter.stage} (${d.rolloutAfter.percent} %) |`,
      )
      .join('\n');
    await writeFile(
      `${OUT}.md`,
      `# P8: fleet simulation (${AGENTS.toLocaleString('en')} agents${LAST ? ', failures in the last stage' : ''})

Measured ${result.date} on ${result.machine.cpus} cores (load average ${result.machine.loadAverageAtStart[0]} at the start, ${result.machine.loadAverageAtEnd[0]} at the end: other work shared the machine), Node ${result.machine.node}, PostgreSQL (database \`${DB_NAME}\`).
Commit ${COMMIT}. Command: \`npm run build && npx node bench/fleet-sim.mjs${process.argv.length > 2 ? ` ${process.argv.slice(2).join(' ')}` : ''}\` (see bench/README.md).

The real server (HTTP API, in a worker thread, clock driven by the simulation) and ${AGENTS.toLocaleString('en')} simulated
agents over keep-alive HTTP with ${CONCURRENCY} requests in flight. Each agent polls once a simulated day at 12:00
plus a random delay within ${result.pollWindowMinutes} minutes, downloads and checks what it is offered, and reports.
Rollout: ${STAGES.map((s) => `${s.percent} %`).join(' → ')}, minimum per stage ${STAGES.map((s) => `${s.minDurationSeconds / 3600} h`).join(', ')}, halt at a failure rate of
${THRESHOLD.maxFailureRate * 100} % (at least ${THRESHOLD.minReports} reports). Injected: ${result.injectedFailure}.

Enrollment of the fleet: ${result.enrollSeconds} s. *Wall s* is the real time one simulated day took; *server busy s*
is the time the server's thread was running (its event loop was not idle; PostgreSQL's work is not in it),
with its share of the wall time.

| day | polls | wall s | server busy s | polls/s | poll ms p50 / p99 | offers | applied | failed | rollout after the day |
|-----|-------|--------|---------------|---------|-------------------|--------|---------|--------|-----------------------|
${rows}

Result: **${pass ? 'pass' : 'FAIL'}**. The rollout is ${final.state} in stage ${final.currentStage + 1} (${final.haltReason ?? 'no halt'}),
halted by \`${halt?.actor ?? 'nobody'}\` at virtual time ${halt?.at ?? '-'}.
Machines patched outside the cohort of their day's stage: ${violations.length}. Machines the server lists with the release
installed: ${serverInstalled.size} (the simulation applied it on ${simInstalled.size}; same set: ${serverAgrees ? 'yes' : 'no'}); outside the
reached stage's cohort: ${outsideOnServer.length}. Rollout counters: ${final.counters.applied} applied, ${final.counters.failed} failed
(the simulation sent ${appliedMachines.length} and ${failedMachines.length}). Offers on the days after the halt: ${offersWhileHalted}.

What the halt saved in stage ${protection.stage} (the ${protection.cohort} machines that join it): ${protection.appliedBeforeHalt} applied and
${protection.failedBeforeHalt} failed before the halt; a rollout that "completed" after the stage's minimum time and kept offering would have
patched ${protection.patchedIfCompleted} and broken ${protection.failedIfCompleted} of them.
`,
    );
    log(`wrote ${OUT}.json and ${OUT}.md`);
  }

  worker.postMessage({ type: 'close' });
  await waitFor(worker, 'closed');
  await worker.terminate();
  agent.destroy();
  await rm(work, { recursive: true, force: true });
  process.exitCode = pass ? 0 : 1;
}

if (isMainThread) await simulate();
else await serve();
