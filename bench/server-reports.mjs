// Bar P6: report ingestion. wrk posts new reports as fast as the server takes them (one
// report per request, then batches of 10 as agents send their spool), every 200 is counted,
// and the reports table is counted afterwards: every acknowledged report must be there.
//   npm run build && npx node bench/server-reports.mjs
// Settings (environment): BENCH_MACHINES (100000), BENCH_ROLLOUTS (20), BENCH_SECONDS (20),
// BENCH_CONNECTIONS (32), BENCH_THREADS (1), BENCH_POSTGRES_URL.
import { join } from 'node:path';
import {
  freshDatabase,
  log,
  machineInfo,
  measureCpu,
  REPO,
  requireTools,
  runWrk,
  seedFleet,
  sql,
  startServer,
  withTempDir,
  writeResults,
} from './server-common.mjs';

const MACHINES = Number(process.env.BENCH_MACHINES || 100_000);
const ROLLOUTS = Number(process.env.BENCH_ROLLOUTS || 20);
const SECONDS = Number(process.env.BENCH_SECONDS || 20);
const CONNECTIONS = Number(process.env.BENCH_CONNECTIONS || 32);
const THREADS = Number(process.env.BENCH_THREADS || 1);
const BAR = { reportsPerSecond: 2000 };

async function countReports() {
  const db = sql();
  try {
    // One statement, so one snapshot: rows and counters are read at the same moment.
    const { rows } = await db.query(
      `select (select count(*) from reports)::int as rows,
             (select coalesce(sum(applied + failed), 0) from rollout_counters)::int as counted,
             (select count(*) from rollout_machines where apply_outcome is not null)::int as machines`,
    );
    return rows[0];
  } finally {
    await db.end();
  }
}

requireTools('wrk');
await freshDatabase();
await withTempDir('clp-bench-reports-', async (dir) => {
  const server = await startServer({ dataDir: join(dir, 'data') });
  try {
    const rolloutIds = await seedFleet(server, { machines: MACHINES, rollouts: ROLLOUTS });
    const script = join(REPO, 'bench/server-reports.lua');
    const base = { BENCH_MACHINES: String(MACHINES), BENCH_ROLLOUT_IDS: rolloutIds.join(',') };
    log('warm-up: 5 s of single reports');
    await runWrk({
      url: server.url,
      script,
      threads: THREADS,
      connections: CONNECTIONS,
      seconds: 5,
      env: { ...base, BENCH_RUN: '1' },
    });
    const settle = () => new Promise((done) => setTimeout(done, 2000));
    await settle();
    const runs = [];
    for (const [i, batch] of [1, 10].entries()) {
      const before = await countReports();
      log(`reports: ${SECONDS} s, batches of ${batch}, ${CONNECTIONS} connections`);
      const measured = await measureCpu(server, () =>
        runWrk({
          url: server.url,
          script,
          threads: THREADS,
          connections: CONNECTIONS,
          seconds: SECONDS,
          env: { ...base, BENCH_BATCH: String(batch), BENCH_RUN: String(i + 2) },
        }),
      );
      const r = measured.value;
      // Requests still in flight when wrk stopped may land after it: wait, then count.
      await settle();
      const after = await countReports();
      const stored = after.rows - before.rows;
      runs.push({
        batch,
        reportsPerSecond: Math.round(r.acknowledgedReports / (r.durationUs / 1e6)),
        requestsPerSecond: Math.round(r.requests / (r.durationUs / 1e6)),
        acknowledged: r.acknowledgedReports,
        stored,
        counterDelta: after.counted - before.counted,
        // Counters count each offered machine once, by its latest outcome: they must equal the
        // per-machine outcomes, whatever the number of reports.
        countersMatchMachines: after.counted === after.machines,
        // Stored beyond acknowledged: requests wrk had sent but not yet seen answered when it stopped.
        inFlightAtStop: stored - r.acknowledgedReports,
        lost: Math.max(0, r.acknowledgedReports - stored),
        non200: r.bad,
        cpuMsPerReport: {
          server: Math.round((measured.cpu.serverSeconds / r.acknowledgedReports) * 1e6) / 1000,
          postgres: Math.round((measured.cpu.postgresSeconds / r.acknowledgedReports) * 1e6) / 1000,
        },
        latencyMs: Object.fromEntries(Object.entries(r.latencyUs).map(([k, v]) => [k, Math.round(v) / 1000])),
        command: r.args,
      });
    }
    const single = runs[0];
    const result = {
      goal: 'P6',
      bar: BAR,
      setup: {
        machines: MACHINES,
        activeRollouts: ROLLOUTS,
        database: 'PostgreSQL (database clp_bench)',
        connections: CONNECTIONS,
        wrkThreads: THREADS,
        seconds: SECONDS,
      },
      runs,
      meetsBar:
        single.reportsPerSecond >= BAR.reportsPerSecond && runs.every((r) => r.lost === 0 && r.non200 === 0),
      noneLost: runs.every((r) => r.lost === 0 && r.countersMatchMachines),
      machine: machineInfo(),
      command: 'npm run build && npx node bench/server-reports.mjs',
    };
    const md = `# P6: report ingestion (${result.machine.at.slice(0, 10)})

Command: \`${result.command}\` (server at ${result.machine.server})

${MACHINES.toLocaleString('en')} machines, ${ROLLOUTS} active rollouts, PostgreSQL; one server process; wrk with ${CONNECTIONS}
keep-alive connections posting new reports (each with its own id, spread over the rollouts, 2% failures),
${SECONDS} s per run after a 5 s warm-up. Afterwards the reports table and the rollout counters are counted.
A report counts for a rollout only when the rollout reaches its machine (tier, selector, cohort), once
per machine by its latest outcome; the machines never polled, so every counted report takes the path
that checks the rollout's reach in the database.

| reports per request | reports/s | requests/s | p50 ms | p99 ms | acknowledged | stored | in flight at stop | lost | non-200 | CPU ms/report server + PostgreSQL |
|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|
${runs.map((r) => `| ${r.batch} | ${r.reportsPerSecond} | ${r.requestsPerSecond} | ${r.latencyMs.p50} | ${r.latencyMs.p99} | ${r.acknowledged} | ${r.stored} | ${r.inFlightAtStop} | ${r.lost} | ${r.non200} | ${r.cpuMsPerReport.server} + ${r.cpuMsPerReport.postgres} |`).join('\n')}

Rollout counters equal the machines' latest outcomes: ${runs.every((r) => r.countersMatchMachines) ? 'yes' : 'no'}.
Bar: ≥ ${BAR.reportsPerSecond} reports/s (one report per request), none lost: **${result.meetsBar ? 'met' : 'not met'}**.

Machine: ${result.machine.cpus} × ${result.machine.cpu} (load average ${result.machine.loadAverage.join(' ')} at the end); Node ${result.machine.node}; ${result.machine.postgres}; ${result.machine.wrk}.
`;
    await writeResults('server-reports', result, md);
    process.stdout.write(md);
  } finally {
    await server.stop();
  }
});
