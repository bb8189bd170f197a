// bars P10 and P7 with several server processes:
//   1. how long a halt, pause, abort, yank or credential revocation made through one replica takes
//      to reach the others, busy (polled without pause) and idle (no request for 2 s before);
//   2. how fast a request is answered 503 while PostgreSQL is down (a cluster of our own);
//   3. P7 through nginx: a release downloaded through the documented nginx cache in front of two
//      replicas, against nginx serving the same file from disk.
//   npm run build && npx node bench/server-replicas.mjs
// Settings (environment): BENCH_POSTGRES_URL (postgres://postgres@127.0.0.1:5432/postgres),
// BENCH_ROUNDS (10 changes of each kind), BENCH_BLOB_MIB (512), BENCH_RUNS (5 curl downloads each).
import { execFileSync } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createTestDatabase } from '@clp/db';
import { buildRelease } from '../e2e/support/agents.ts';
import { startNginxFront } from '../e2e/support/nginx-front.ts';
import { missingOwnPostgres, ownPostgres } from '../e2e/support/own-postgres.ts';
import { startServerProcess } from '../e2e/support/server-process.ts';
import { ADMIN_URL, log, machineInfo, requireTools, startNginx, writeResults } from './server-common.mjs';

const ROUNDS = Number(process.env.BENCH_ROUNDS || 10);
const MIB = Number(process.env.BENCH_BLOB_MIB || 512);
const RUNS = Number(process.env.BENCH_RUNS || 5);
const BAR = { propagationMs: 1000, ratioToNginx: 0.95 };
const FACTS = {
  hostname: 'bench-m',
  os: { id: 'vincent', version: '2025.11' },
  arch: 'x86_64',
  agentVersion: '0.1.0',
};
const IDLE_PROBE_MS = [20, 50, 100, 250];

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const quantile = (xs, q) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? s[Math.min(s.length - 1, Math.floor(q * s.length))] : 0;
};
const median = (xs) => quantile(xs, 0.5);
const round = (x) => Math.round(x * 10) / 10;
const mb = (bytesPerSecond) => Math.round(bytesPerSecond / 1e5) / 10;
/** The most memory a process has held (VmHWM), in MiB. */
const peakMiB = (pid) =>
  Math.round(Number(/VmHWM:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))[1]) / 1024);

function curl(url) {
  const out = execFileSync(
    'curl',
    ['-s', '-f', '-o', '/dev/null', '-w', '%{speed_download} %{size_download}', url],
    {
      encoding: 'utf8',
    },
  );
  const [speed, size] = out.trim().split(' ').map(Number);
  return { bytesPerSecond: speed, size };
}

requireTools('nginx', 'curl');
const admin = `clp_adm_bench${randomBytes(16).toString('hex')}`;
const database = await createTestDatabase(ADMIN_URL, 'clp_bench_replicas');
const replicas = [];
const cleanup = [];
const result = {
  goal: 'P10 and P7 with replicas',
  bar: BAR,
  command: 'npm run build && npx node bench/server-replicas.mjs',
};
try {
  const env = { CLP_BLOB_STORE: 'postgres', CLP_TRUST_PROXY: 'loopback' };
  replicas.push(await startServerProcess({ databaseUrl: database.url, admin, env }));
  replicas.push(
    ...(await Promise.all([1, 2].map(() => startServerProcess({ databaseUrl: database.url, admin, env })))),
  );
  log(`3 replicas on ${database.url.replace(/\/\/[^@]*@/, '//')}`);

  // ---------------------------------------------------------------- 1. propagation
  const small = await buildRelease('CLP1261220', 16 * 1024);
  cleanup.push(() => rm(small.dir, { recursive: true, force: true }));
  for (const r of replicas) await writeFile(join(r.keysDir, 'small.pub'), await readFile(small.pub));
  const up = await replicas[0].call('POST', '/v1/releases', { body: small.bytes });
  if (up.status !== 201) throw new Error(`upload: ${up.status} ${JSON.stringify(up.body)}`);
  const releaseId = up.body.id;
  const enroll = async (machineId) => {
    const token = await replicas[0].call('POST', '/v1/enrollment-tokens', {
      json: { tier: 'edge', uses: 1 },
    });
    const res = await replicas[0].call('POST', '/v1/agent/enroll', {
      token: '',
      json: { token: token.body.token, machineId, facts: FACTS },
    });
    return res.body.credential;
  };
  const poll = (r, credential) =>
    r.call('POST', '/v1/agent/poll', { token: credential, json: { facts: FACTS } });
  const offered = async (r, credential) =>
    (await poll(r, credential)).body.apply?.some((a) => a.releaseId === releaseId);
  const probe = await enroll('bench-probe');
  const loadCredential = await enroll('bench-load');
  let busy = true;
  let loadPolls = 0;
  const load = Array.from({ length: 4 }, async () => {
    while (busy) {
      await poll(replicas[1], loadCredential).catch(() => undefined);
      loadPolls++;
    }
  });
  const timeUntil = async (check) => {
    const started = performance.now();
    while (!(await check())) if (performance.now() - started > 10_000) return Number.POSITIVE_INFINITY;
    return performance.now() - started;
  };
  const kinds = ['halt', 'pause', 'abort', 'yank', 'revoke'];
  const busyMs = Object.fromEntries(kinds.map((k) => [k, []]));
  const idleFresh = Object.fromEntries(
    kinds.map((k) => [k, Object.fromEntries(IDLE_PROBE_MS.map((t) => [t, 0]))]),
  );
  const idleTrials = Object.fromEntries(IDLE_PROBE_MS.map((t) => [t, 0]));
  const loadStarted = performance.now();
  for (let round = 0; round < ROUNDS; round++) {
    for (const kind of kinds) {
      const idleProbeMs = IDLE_PROBE_MS[round % IDLE_PROBE_MS.length];
      let change;
      let stale;
      let target = releaseId;
      if (kind === 'revoke') {
        const credential = await enroll(`bench-revoke-${round}`);
        await poll(replicas[1], credential);
        await poll(replicas[2], credential);
        change = () => replicas[0].call('POST', `/v1/machines/bench-revoke-${round}/revoke`, { json: {} });
        stale = async (r) => (await poll(r, credential)).status === 200;
      } else {
        if (kind === 'yank') {
          // A fresh release each time: a yank cannot be undone.
          const rel = await buildRelease(`CLP2261${String(201 + round)}`, 1024);
          cleanup.push(() => rm(rel.dir, { recursive: true, force: true }));
          for (const r of replicas)
            await writeFile(join(r.keysDir, `y${round}.pub`), await readFile(rel.pub));
          const u = await replicas[0].call('POST', '/v1/releases', { body: rel.bytes });
          target = u.body.id;
        }
        const created = await replicas[0].call('POST', '/v1/rollouts', {
          json: {
            releaseId: target,
            tier: 'edge',
            stages: [{ percent: 100, minDurationSeconds: 3600 }],
            failureThreshold: { maxFailureRate: 0.5, minReports: 1 },
          },
        });
        const offers = async (r) => (await poll(r, probe)).body.apply?.some((a) => a.releaseId === target);
        await timeUntil(() => offers(replicas[1]));
        await timeUntil(() => offers(replicas[2]));
        change =
          kind === 'halt'
            ? () =>
                replicas[0].call('POST', '/v1/agent/reports', {
                  token: probe,
                  json: {
                    reports: [
                      {
                        id: randomUUID(),
                        releaseId: target,
                        rolloutId: created.body.id,
                        name: 'CLP1261220',
                        status: 'failed',
                        at: new Date().toISOString(),
                      },
                    ],
                  },
                })
            : kind === 'yank'
              ? () => replicas[0].call('POST', `/v1/releases/${target}/yank`, { json: {} })
              : () => replicas[0].call('POST', `/v1/rollouts/${created.body.id}/${kind}`, { json: {} });
        stale = offers;
      }
      await sleep(2000); // replica 2 idle
      const res = await change();
      if (res.status !== 200) throw new Error(`${kind}: ${res.status} ${JSON.stringify(res.body)}`);
      const acknowledged = performance.now();
      busyMs[kind].push(await timeUntil(async () => !(await stale(replicas[1]))));
      await sleep(Math.max(0, idleProbeMs - (performance.now() - acknowledged)));
      if (!(await stale(replicas[2]))) idleFresh[kind][idleProbeMs]++;
      if (kind === kinds[0]) idleTrials[idleProbeMs]++;
      // Clean up so that the next round's probe is offered only the next rollout.
      if (kind === 'pause' || kind === 'halt') {
        const list = await replicas[0].call(
          'GET',
          '/v1/rollouts?state=' + (kind === 'pause' ? 'paused' : 'halted'),
        );
        for (const r of list.body.rollouts ?? [])
          await replicas[0].call('POST', `/v1/rollouts/${r.id}/abort`, { json: {} });
      }
    }
    log(`propagation round ${round + 1}/${ROUNDS}`);
  }
  busy = false;
  await Promise.all(load);
  const loadSeconds = (performance.now() - loadStarted) / 1000;
  result.propagation = {
    setup: {
      replicas: 3,
      rounds: ROUNDS,
      busyLoad: `4 pollers without pause on the busy replica (${Math.round(loadPolls / loadSeconds)} polls/s)`,
      idle: '2 s without any request before the change; one probe after a fixed delay',
    },
    busyMs: Object.fromEntries(
      kinds.map((k) => [k, { p50: round(median(busyMs[k])), max: round(Math.max(...busyMs[k])) }]),
    ),
    idleFreshAtFirstProbe: Object.fromEntries(
      kinds.map((k) => [
        k,
        Object.fromEntries(IDLE_PROBE_MS.map((t) => [`${t}ms`, `${idleFresh[k][t]}/${idleTrials[t]}`])),
      ]),
    ),
  };
  result.propagation.meetsBar = kinds.every((k) => Math.max(...busyMs[k]) < BAR.propagationMs);
  log(`propagation: ${JSON.stringify(result.propagation.busyMs)}`);

  // ---------------------------------------------------------------- 3. P7 through nginx
  log(`building a ${MIB} MiB release`);
  const big = await buildRelease('CLP1261230', MIB * 1024 * 1024);
  cleanup.push(() => rm(big.dir, { recursive: true, force: true }));
  for (const r of replicas) await writeFile(join(r.keysDir, 'big.pub'), await readFile(big.pub));
  const front = await startNginxFront([replicas[0].url, replicas[1].url]);
  cleanup.push(() => front.stop());
  const upStarted = performance.now();
  const bigUp = await fetch(`${front.url}/v1/releases`, {
    method: 'POST',
    headers: { authorization: `Bearer ${admin}`, 'content-type': 'application/octet-stream' },
    body: big.bytes,
  });
  const uploadSeconds = (performance.now() - upStarted) / 1000;
  if (bigUp.status !== 201) throw new Error(`big upload: ${bigUp.status} ${await bigUp.text()}`);
  const sha = (await bigUp.json()).id;
  const peakAfterUpload = replicas.slice(0, 2).map((r) => peakMiB(r.pid));
  const missStarted = performance.now();
  const miss = curl(`${front.url}/v1/blobs/${sha}`);
  const missSeconds = (performance.now() - missStarted) / 1000;
  if (miss.size !== big.bytes.length) throw new Error(`nginx sent ${miss.size} bytes`);
  const peakAfterDownload = replicas.slice(0, 2).map((r) => peakMiB(r.pid));
  const staticNginx = await startNginx({ root: big.dir });
  cleanup.push(() => staticNginx.stop());
  const urls = {
    cache: `${front.url}/v1/blobs/${sha}`,
    nginx: `${staticNginx.url}/${big.file.split('/').at(-1)}`,
  };
  curl(urls.nginx); // page cache
  const single = { cache: [], nginx: [] };
  for (let i = 0; i < RUNS; i++) {
    for (const who of i % 2 ? ['nginx', 'cache'] : ['cache', 'nginx'])
      single[who].push(curl(urls[who]).bytesPerSecond);
  }
  const ratio = median(single.cache) / median(single.nginx);
  result.p7ThroughNginx = {
    setup: { blobMiB: MIB, curlRuns: RUNS, replicasBehindNginx: 2, blobStore: 'postgres', nginxWorkers: 1 },
    uploadThroughNginxSeconds: round(uploadSeconds),
    firstDownloadFromReplicaSeconds: round(missSeconds),
    replicaPeakRssMiB: { afterUpload: peakAfterUpload, afterFirstDownload: peakAfterDownload },
    cacheMBps: mb(median(single.cache)),
    nginxStaticMBps: mb(median(single.nginx)),
    cacheRunsMBps: single.cache.map(mb),
    nginxRunsMBps: single.nginx.map(mb),
    ratio: Math.round(ratio * 1000) / 1000,
    meetsBar: ratio >= BAR.ratioToNginx,
    command: `curl -s -o /dev/null -w '%{speed_download}' URL (${RUNS} times each, interleaved; median)`,
  };
  log(`P7 through nginx: ${JSON.stringify(result.p7ThroughNginx)}`);
} finally {
  await Promise.all(replicas.map((r) => r.stop()));
  await database.drop();
}

// ---------------------------------------------------------------- 2. 503 while the database is down
const why = missingOwnPostgres();
if (why) {
  result.unavailable = { skipped: `needs ${why}` };
} else {
  const pg = await ownPostgres();
  try {
    await pg.start();
    const server = await startServerProcess({ databaseUrl: pg.url, admin });
    try {
      await pg.stop();
      const ms = [];
      let wrong = 0;
      for (let i = 0; i < 50; i++) {
        const started = performance.now();
        const res = await server.call('GET', '/v1/tiers');
        ms.push(performance.now() - started);
        if (res.status !== 503 || !res.headers.get('retry-after')) wrong++;
      }
      const health = (await server.call('GET', '/healthz')).status;
      const ready = (await server.call('GET', '/readyz')).status;
      await pg.start();
      result.unavailable = {
        requests: 50,
        not503WithRetryAfter: wrong,
        latencyMs: { p50: round(median(ms)), p99: round(quantile(ms, 0.99)), max: round(Math.max(...ms)) },
        healthzWhileDown: health,
        readyzWhileDown: ready,
      };
      log(`503 while down: ${JSON.stringify(result.unavailable)}`);
    } finally {
      await server.stop();
    }
  } finally {
    await pg.remove();
  }
}
for (const c of cleanup.reverse()) await c().catch(() => undefined);

result.machine = machineInfo();
const p = result.propagation;
const n = result.p7ThroughNginx;
const u = result.unavailable;
await writeResults(
  'server-replicas',
  result,
  `# Several server processes: propagation, 503 while the database is down, P7 through nginx

Command: \`${result.command}\`. Bars: a change reaches every replica in under ${BAR.propagationMs} ms (P10);
downloads through the nginx cache at ≥ ${BAR.ratioToNginx}× nginx serving the file (P7).

## Propagation of a change made through replica 1 (3 replicas, one PostgreSQL)

Busy replica (${p.setup.busyLoad}), time from the change's 200 until the replica answers differently, ${p.setup.rounds} rounds:

| change | p50 ms | max ms |
|--------|--------|--------|
${Object.entries(p.busyMs)
  .map(([k, v]) => `| ${k} | ${v.p50} | ${v.max} |`)
  .join('\n')}

Idle replica (${p.setup.idle}): rounds whose first probe already saw the change, by probe delay:

| change | ${IDLE_PROBE_MS.map((t) => `${t} ms`).join(' | ')} |
|--------|${IDLE_PROBE_MS.map(() => '---').join('|')}|
${Object.entries(p.idleFreshAtFirstProbe)
  .map(([k, v]) => `| ${k} | ${Object.values(v).join(' | ')} |`)
  .join('\n')}

Meets the bar: ${p.meetsBar ? 'yes' : 'no'}.

## 503 while PostgreSQL is down (a cluster of our own, stopped with pg_ctl stop -m fast)

${u.skipped ? u.skipped : `${u.requests} admin calls: latency p50 ${u.latencyMs.p50} ms, p99 ${u.latencyMs.p99} ms, max ${u.latencyMs.max} ms; answers other than 503 with Retry-After: ${u.not503WithRetryAfter}. /healthz ${u.healthzWhileDown}, /readyz ${u.readyzWhileDown}.`}

## P7 through nginx (${n.setup.blobMiB} MiB release, PostgreSQL blob store, 2 replicas behind nginx)

| path | median MB/s | runs |
|------|-------------|------|
| nginx cache in front of the replicas (deploy/nginx/clp-locations.conf) | ${n.cacheMBps} | ${n.cacheRunsMBps.join(', ')} |
| nginx serving the file from disk | ${n.nginxStaticMBps} | ${n.nginxRunsMBps.join(', ')} |

Ratio ${n.ratio} (bar ≥ ${BAR.ratioToNginx}): ${n.meetsBar ? 'meets it' : 'does not meet it'}. Upload through nginx ${n.uploadThroughNginxSeconds} s; first
download (from a replica, out of PostgreSQL) ${n.firstDownloadFromReplicaSeconds} s; peak RSS of the two replicas after the upload
${n.replicaPeakRssMiB.afterUpload.join(' / ')} MiB, after the first download ${n.replicaPeakRssMiB.afterFirstDownload.join(' / ')} MiB.

Machine: ${result.machine.cpus} × ${result.machine.cpu} (load average ${result.machine.loadAverage.join(' ')} at the end); Node ${result.machine.node}; ${result.machine.postgres}; ${result.machine.nginx}.
`,
);
