// Bar P7: downloading a 256 MiB blob from the server on loopback against nginx serving the
// same file (a hard link to the stored blob, so both read the same page cache).
//   npm run build && npx node bench/server-download.mjs
// Settings (environment): BENCH_BLOB_MIB (256), BENCH_RUNS (5 curl downloads each, interleaved),
// BENCH_SECONDS (10 s of wrk with 4 connections each), BENCH_POSTGRES_URL.
import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { link, mkdir, rename } from 'node:fs/promises';
import { join } from 'node:path';
import {
  freshDatabase,
  insertRelease,
  log,
  machineInfo,
  REPO,
  requireTools,
  runWrk,
  sql,
  startNginx,
  startServer,
  withTempDir,
  writeResults,
} from './server-common.mjs';

const MIB = Number(process.env.BENCH_BLOB_MIB || 256);
const RUNS = Number(process.env.BENCH_RUNS || 5);
const SECONDS = Number(process.env.BENCH_SECONDS || 10);
const BAR = { ratioToNginx: 0.8 };

/** Writes MIB mebibytes of random bytes (incompressible, like a signed archive) and answers their sha256. */
async function randomFile(file) {
  const hash = createHash('sha256');
  const out = createWriteStream(file);
  for (let i = 0; i < MIB; i++) {
    const chunk = randomBytes(1024 * 1024);
    hash.update(chunk);
    if (!out.write(chunk)) await new Promise((r) => out.once('drain', r));
  }
  await new Promise((r, f) => out.end((e) => (e ? f(e) : r())));
  return hash.digest('hex');
}

/** One curl download to /dev/null: bytes per second and bytes received. */
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

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};
const mb = (bytesPerSecond) => Math.round(bytesPerSecond / 1e5) / 10;

requireTools('wrk', 'nginx', 'curl');
await freshDatabase();
await withTempDir('clp-bench-download-', async (dir) => {
  const dataDir = join(dir, 'data');
  const server = await startServer({ dataDir });
  let nginx;
  try {
    log(`writing a ${MIB} MiB random blob`);
    const temp = join(dataDir, 'blobs', 'tmp', 'bench-blob');
    const sha256 = await randomFile(temp);
    const stored = join(dataDir, 'blobs', sha256.slice(0, 2), sha256);
    await mkdir(join(dataDir, 'blobs', sha256.slice(0, 2)), { recursive: true });
    await rename(temp, stored);
    // The server serves a blob only together with its release row, as an upload commits them.
    const db = sql();
    try {
      await insertRelease(db, { sha256, name: 'CLP1999001', size: MIB * 1024 * 1024 });
    } finally {
      await db.end();
    }
    const www = join(dir, 'www');
    await mkdir(www);
    await link(stored, join(www, sha256));
    nginx = await startNginx({ root: www });
    const urls = { server: `${server.url}/v1/blobs/${sha256}`, nginx: `${nginx.url}/${sha256}` };

    // Warm the page cache and check both serve the whole file.
    for (const [who, url] of Object.entries(urls)) {
      const r = curl(url);
      if (r.size !== MIB * 1024 * 1024) throw new Error(`${who} sent ${r.size} bytes, not ${MIB} MiB`);
    }
    const single = { server: [], nginx: [] };
    for (let i = 0; i < RUNS; i++) {
      for (const who of i % 2 ? ['nginx', 'server'] : ['server', 'nginx'])
        single[who].push(curl(urls[who]).bytesPerSecond);
    }
    log(
      `curl: server ${single.server.map(mb).join(', ')} MB/s; nginx ${single.nginx.map(mb).join(', ')} MB/s`,
    );

    const script = join(REPO, 'bench/server-static.lua');
    const parallel = {};
    for (const who of ['server', 'nginx']) {
      const r = await runWrk({ url: urls[who], script, threads: 1, connections: 4, seconds: SECONDS });
      parallel[who] = {
        bytesPerSecond: r.bytes / (r.durationUs / 1e6),
        downloads: r.requests,
        non200: r.bad,
        command: r.args,
      };
    }
    log(
      `wrk -c4: server ${mb(parallel.server.bytesPerSecond)} MB/s; nginx ${mb(parallel.nginx.bytesPerSecond)} MB/s`,
    );

    const singleRatio = median(single.server) / median(single.nginx);
    const parallelRatio = parallel.server.bytesPerSecond / parallel.nginx.bytesPerSecond;
    const result = {
      goal: 'P7',
      bar: BAR,
      setup: {
        blobMiB: MIB,
        curlRuns: RUNS,
        wrkSeconds: SECONDS,
        wrkConnections: 4,
        serverProcesses: 1,
        nginxWorkers: 1,
      },
      singleStream: {
        serverMBps: mb(median(single.server)),
        nginxMBps: mb(median(single.nginx)),
        serverRunsMBps: single.server.map(mb),
        nginxRunsMBps: single.nginx.map(mb),
        ratio: Math.round(singleRatio * 1000) / 1000,
        command: `curl -s -o /dev/null -w '%{speed_download}' URL (${RUNS} times each, interleaved; median)`,
      },
      fourConnections: {
        serverMBps: mb(parallel.server.bytesPerSecond),
        nginxMBps: mb(parallel.nginx.bytesPerSecond),
        serverDownloads: parallel.server.downloads,
        nginxDownloads: parallel.nginx.downloads,
        ratio: Math.round(parallelRatio * 1000) / 1000,
        command: parallel.server.command,
      },
      meetsBar: singleRatio >= BAR.ratioToNginx && parallelRatio >= BAR.ratioToNginx,
      machine: machineInfo(),
      command: 'npm run build && npx node bench/server-download.mjs',
    };
    const md = `# P7: blob download against nginx (${result.machine.at.slice(0, 10)})

Command: \`${result.command}\` (server at ${result.machine.server})

A ${MIB} MiB random blob stored by the server (GET /v1/blobs/SHA256, one server process) and the same file
(a hard link) served by nginx (1 worker, sendfile on), both on loopback, page cache warm. MB = 10^6 bytes.

| | server MB/s | nginx MB/s | ratio |
|---|---:|---:|---:|
| one stream (curl, median of ${RUNS}) | ${result.singleStream.serverMBps} | ${result.singleStream.nginxMBps} | ${result.singleStream.ratio} |
| 4 connections (wrk, ${SECONDS} s) | ${result.fourConnections.serverMBps} | ${result.fourConnections.nginxMBps} | ${result.fourConnections.ratio} |

curl runs, server: ${result.singleStream.serverRunsMBps.join(', ')}; nginx: ${result.singleStream.nginxRunsMBps.join(', ')}.
Bar: ≥ ${BAR.ratioToNginx} × nginx: **${result.meetsBar ? 'met' : 'not met'}**.

Machine: ${result.machine.cpus} × ${result.machine.cpu} (load average ${result.machine.loadAverage.join(' ')} at the end); Node ${result.machine.node}; ${result.machine.nginx}; ${result.machine.wrk}.
`;
    await writeResults('server-download', result, md);
    process.stdout.write(md);
  } finally {
    await nginx?.stop();
    await server.stop();
  }
});
