// Bar P5: poll throughput and p99 with 100,000 enrolled machines and 20 active rollouts on
// PostgreSQL, and the same load against nginx serving a static file of the poll answer's size.
//   npm run build && npx node bench/server-poll.mjs
// Settings (environment): BENCH_MACHINES (100000), BENCH_ROLLOUTS (20), BENCH_SECONDS (20),
// BENCH_CONNECTIONS (64), BENCH_THREADS (1), BENCH_POSTGRES_URL (postgres://postgres@127.0.0.1:5432/postgres).
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import {
  credentialOf,
  FACTS,
  freshDatabase,
  log,
  machineInfo,
  measureCpu,
  REPO,
  requireTools,
  runWrk,
  seedFleet,
  startNginx,
  startServer,
  withTempDir,
  writeResults,
} from './server-common.mjs';

const MACHINES = Number(process.env.BENCH_MACHINES || 100_000);
const ROLLOUTS = Number(process.env.BENCH_ROLLOUTS || 20);
const SECONDS = Number(process.env.BENCH_SECONDS || 20);
const CONNECTIONS = Number(process.env.BENCH_CONNECTIONS || 64);
const THREADS = Number(process.env.BENCH_THREADS || 1);
const BAR = { pollsPerSecond: 5000, p99Ms: 50 };

function rate(r) {
  return r.requests / (r.durationUs / 1e6);
}

requireTools('wrk', 'nginx');
await freshDatabase();
await withTempDir('clp-bench-poll-', async (dir) => {
  const server = await startServer({ dataDir: join(dir, 'data') });
  let nginx;
  try {
    await seedFleet(server, { machines: MACHINES, rollouts: ROLLOUTS });
    // One real poll answer, to size the static file nginx serves.
    const sample = await fetch(`${server.url}/v1/agent/poll`, {
      method: 'POST',
      headers: { authorization: `Bearer ${credentialOf(1)}`, 'content-type': 'application/json' },
      body: JSON.stringify({ facts: { ...FACTS, hostname: 'bench-1' }, installed: [] }),
    });
    if (sample.status !== 200) throw new Error(`sample poll: HTTP ${sample.status} ${await sample.text()}`);
    const answer = await sample.text();
    const offers = JSON.parse(answer).apply.length;
    const root = join(dir, 'www');
    await mkdir(root);
    await writeFile(join(root, 'poll.json'), answer);

    const script = join(REPO, 'bench/server-poll.lua');
    const env = { BENCH_MACHINES: String(MACHINES) };
    log(`warm-up: 5 s of polls`);
    await runWrk({ url: server.url, script, threads: THREADS, connections: CONNECTIONS, seconds: 5, env });
    log(
      `polls: ${SECONDS} s, ${CONNECTIONS} connections, ${THREADS} wrk thread(s), ${MACHINES} machines in turn`,
    );
    const measured = await measureCpu(server, () =>
      runWrk({ url: server.url, script, threads: THREADS, connections: CONNECTIONS, seconds: SECONDS, env }),
    );
    const polls = measured.value;
    const perPoll = {
      serverCpuMs: Math.round((measured.cpu.serverSeconds / polls.requests) * 1e6) / 1000,
      postgresCpuMs: Math.round((measured.cpu.postgresSeconds / polls.requests) * 1e6) / 1000,
    };
    if (polls.bad > 0 || polls.errors.status > 0) log(`warning: ${polls.bad} polls did not answer 200`);

    // The same load from only 64 machines: their credentials stay in the server's cache, so the
    // difference from the run above is what the per-poll credential lookup costs.
    log(`polls from 64 machines only (credential cache warm): ${SECONDS} s`);
    const hotMeasured = await measureCpu(server, () =>
      runWrk({
        url: server.url,
        script,
        threads: THREADS,
        connections: CONNECTIONS,
        seconds: SECONDS,
        env: { BENCH_MACHINES: '64' },
      }),
    );
    const hot = hotMeasured.value;
    const hotCpuMs = Math.round((hotMeasured.cpu.serverSeconds / hot.requests) * 1e6) / 1000;

    nginx = await startNginx({ root });
    const staticScript = join(REPO, 'bench/server-static.lua');
    await runWrk({
      url: `${nginx.url}/poll.json`,
      script: staticScript,
      threads: THREADS,
      connections: CONNECTIONS,
      seconds: 5,
    });
    const peer = await runWrk({
      url: `${nginx.url}/poll.json`,
      script: staticScript,
      threads: THREADS,
      connections: CONNECTIONS,
      seconds: SECONDS,
    });

    const pollRate = rate(polls);
    const peerRate = rate(peer);
    const p99Ms = polls.latencyUs.p99 / 1000;
    const result = {
      goal: 'P5',
      bar: BAR,
      setup: {
        machines: MACHINES,
        activeRollouts: ROLLOUTS,
        database: 'PostgreSQL (database clp_bench)',
        serverProcesses: 1,
        nginxWorkers: 1,
        connections: CONNECTIONS,
        wrkThreads: THREADS,
        seconds: SECONDS,
        pollAnswerBytes: Buffer.byteLength(answer),
        offersInSampleAnswer: offers,
      },
      server: {
        pollsPerSecond: Math.round(pollRate),
        requests: polls.requests,
        non200: polls.bad,
        socketErrors: polls.errors,
        latencyMs: Object.fromEntries(
          Object.entries(polls.latencyUs).map(([k, v]) => [k, Math.round(v) / 1000]),
        ),
        command: polls.args,
      },
      nginx: {
        requestsPerSecond: Math.round(peerRate),
        latencyMs: Object.fromEntries(
          Object.entries(peer.latencyUs).map(([k, v]) => [k, Math.round(v) / 1000]),
        ),
        command: peer.args,
      },
      warmCredentialCache: {
        machines: 64,
        pollsPerSecond: Math.round(rate(hot)),
        latencyMs: Object.fromEntries(
          Object.entries(hot.latencyUs).map(([k, v]) => [k, Math.round(v) / 1000]),
        ),
        serverCpuMsPerPoll: hotCpuMs,
      },
      cpu: {
        ...measured.cpu,
        perPoll,
        singleProcessCeilingPollsPerSecond: Math.round(1000 / perPoll.serverCpuMs),
      },
      ratioToNginx: Math.round((pollRate / peerRate) * 1000) / 1000,
      meetsBar: pollRate >= BAR.pollsPerSecond && p99Ms <= BAR.p99Ms && polls.bad === 0,
      machine: machineInfo(),
      command: 'npm run build && npx node bench/server-poll.mjs',
    };
    const lookupMs = Math.round((perPoll.serverCpuMs - hotCpuMs) * 1000) / 1000;
    const lookupSentence =
      lookupMs > 0.005
        ? `With the credential cache warm (64 machines) the server needs ${hotCpuMs} ms per poll: the other ${lookupMs} ms\nare the per-poll credential lookup in PostgreSQL (query building, driver, row parsing).`
        : `With the credential cache warm (64 machines) the server needs ${hotCpuMs} ms per poll: the credential\nlookup adds no measurable server CPU.`;
    const md = `# P5: poll throughput (${result.machine.at.slice(0, 10)})

Command: \`${result.command}\` (server at ${result.machine.server})

${MACHINES.toLocaleString('en')} enrolled machines, ${ROLLOUTS} active rollouts, PostgreSQL; one server process; wrk with
${CONNECTIONS} keep-alive connections and ${THREADS} thread(s), each poll with the next machine's credential and the facts it was enrolled with;
${SECONDS} s after a 5 s warm-up. The peer is nginx (1 worker) serving the same ${result.setup.pollAnswerBytes}-byte
poll answer as a static file to the same wrk settings.

| | requests/s | p50 ms | p99 ms | max ms | non-200 |
|---|---:|---:|---:|---:|---:|
| server polls | ${result.server.pollsPerSecond} | ${result.server.latencyMs.p50} | ${result.server.latencyMs.p99} | ${result.server.latencyMs.max} | ${polls.bad} |
| server polls, 64 machines only (credential cache warm) | ${result.warmCredentialCache.pollsPerSecond} | ${result.warmCredentialCache.latencyMs.p50} | ${result.warmCredentialCache.latencyMs.p99} | ${result.warmCredentialCache.latencyMs.max} | ${hot.bad} |
| nginx static file | ${result.nginx.requestsPerSecond} | ${result.nginx.latencyMs.p50} | ${result.nginx.latencyMs.p99} | ${result.nginx.latencyMs.max} | ${peer.bad} |

CPU per poll: server ${perPoll.serverCpuMs} ms, PostgreSQL ${perPoll.postgresCpuMs} ms (${measured.cpu.postgresBackends} backends),
so one server process can answer at most about ${result.cpu.singleProcessCeilingPollsPerSecond} polls/s on one core of this machine.
${lookupSentence}

Ratio to nginx: ${result.ratioToNginx}. Bar: ≥ ${BAR.pollsPerSecond} polls/s and p99 ≤ ${BAR.p99Ms} ms: **${result.meetsBar ? 'met' : 'not met'}**.

Machine: ${result.machine.cpus} × ${result.machine.cpu} (load average ${result.machine.loadAverage.join(' ')} at the end); Node ${result.machine.node}; ${result.machine.postgres}; ${result.machine.nginx}; ${result.machine.wrk}.
`;
    await writeResults('server-poll', result, md);
    process.stdout.write(md);
  } finally {
    await nginx?.stop();
    await server.stop();
  }
});
