// Bar P9: the console's pages on a 100,000-machine database. The server's answers to the API calls
// each page makes (p95) and, in Chromium, the time from navigation to the page's main content.
//   npm run build && npx node bench/console.mjs
// Settings (environment): BENCH_MACHINES (100000), BENCH_ROLLOUTS (20), BENCH_RUNS (40 calls of
// each request), BENCH_PAGE_RUNS (10 loads of each page), BENCH_POSTGRES_URL. `--pglite` measures
// the server on its embedded PGlite instead (bench/results/console-pglite.*); `--no-vacuum` right
// after the bulk writes, before a vacuum (bench/results/console-no-vacuum.*).
import { existsSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { chromium } from 'playwright-core';
import {
  ADMIN_TOKEN,
  createRollouts,
  databaseUrl,
  freshDatabase,
  log,
  machineInfo,
  REPO,
  requireTools,
  seedMachines,
  sql,
  startServer,
  withTempDir,
  writeResults,
} from './server-common.mjs';

const MACHINES = Number(process.env.BENCH_MACHINES || 100_000);
const ROLLOUTS = Number(process.env.BENCH_ROLLOUTS || 20);
const RUNS = Number(process.env.BENCH_RUNS || 40);
const PAGE_RUNS = Number(process.env.BENCH_PAGE_RUNS || 10);
const BAR = { apiP95Ms: 200, pageMs: 1000 };
const DATABASE = 'clp_bench_console';
const URL_ = databaseUrl(DATABASE);
const PGLITE = process.argv.includes('--pglite');
/** `--no-vacuum`: measure right after the bulk writes, before autovacuum (planner statistics only). */
const VACUUM = !process.argv.includes('--no-vacuum');
const CHROMIUM = '/usr/bin/chromium';
const CHROMIUM_FLAGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-background-networking',
  '--disable-component-update',
];

const load = () => loadavg().map((l) => Math.round(l * 100) / 100);
const round = (v) => Math.round(v * 10) / 10;

function quantile(sorted, q) {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1)];
}

function summary(times) {
  const s = [...times].sort((a, b) => a - b);
  return { n: s.length, p50: round(quantile(s, 0.5)), p95: round(quantile(s, 0.95)), max: round(s.at(-1)) };
}

/**
 * What a rollout's page reads, on a fleet that has been through it: rollout_machines rows for
 * about 80 % of each rollout's tier (most applied, some failed, silent, or waiting for their
 * window), one report per outcome, the counters summed from the rows, each machine's installed
 * list, and the audit entries a rollout of two days collects.
 */
async function seedOutcomes(db) {
  const started = performance.now();
  try {
    // Two days old, so that the timeline spans days and the first stage has ended.
    await db.query(
      `update rollouts set created_at = now() - interval '2 days', stage_started_at = now() - interval '2 days',
         updated_at = now() - interval '2 days'`,
    );
    await db.query(`
      insert into rollout_machines (rollout_id, machine_id, offered_at, apply_outcome, apply_at, apply_report_id,
                                    waiting_until, silent_at)
      select r.id, m.id, o.offered,
             case when o.u < 0.85 then 'applied' when o.u < 0.88 then 'failed' end,
             case when o.u < 0.88 then o.offered + interval '20 minutes' end,
             case when o.u < 0.88 then md5(r.id || m.id) end,
             case when o.u >= 0.92 and o.u < 0.95 then now() + interval '1 day' end,
             case when o.u >= 0.88 and o.u < 0.92 then now() - interval '1 hour' end
      from rollouts r
      join machines m on m.tier = r.tier
      cross join lateral (
        select ('x' || substr(md5(r.id || m.id), 1, 8))::bit(32)::bigint / 4294967296.0 as u,
               now() - interval '47 hours' + (('x' || substr(md5(m.id || r.id), 1, 6))::bit(24)::int
                 * interval '1 second' / 16777216.0 * 160000) as offered
      ) o
      where ('x' || substr(md5(m.id), 1, 8))::bit(32)::bigint % 100 < 80`);
    await db.query(`
      insert into reports (id, machine_id, release_id, rollout_id, name, sha256, status, error_code, log, at,
                           received_at, scheduled_for)
      select coalesce(rm.apply_report_id, md5(rm.rollout_id || rm.machine_id || 'w')), rm.machine_id, r.release_id,
             rm.rollout_id, rel.name, rel.sha256,
             case when rm.apply_outcome is null then 'scheduled' else rm.apply_outcome end,
             case when rm.apply_outcome = 'failed' then 'CLP_E_PRECONDITION' end,
             case when rm.apply_outcome = 'failed'
                  then '/etc/motd: expected sha256 aaaa…, found bbbb… on ' || rm.machine_id end,
             coalesce(rm.apply_at, rm.offered_at + interval '1 minute'),
             coalesce(rm.apply_at, rm.offered_at + interval '1 minute'),
             rm.waiting_until
      from rollout_machines rm
      join rollouts r on r.id = rm.rollout_id
      join releases rel on rel.id = r.release_id
      where rm.apply_outcome is not null or rm.waiting_until is not null`);
    await db.query(`
      update rollout_counters c set applied = x.applied, failed = x.failed
      from (select rollout_id,
                   count(*) filter (where apply_outcome = 'applied')::int as applied,
                   count(*) filter (where apply_outcome = 'failed')::int as failed
            from rollout_machines group by rollout_id) x
      where x.rollout_id = c.rollout_id`);
    await db.query(`
      update machines m set installed = x.installed
      from (select rm.machine_id,
                   jsonb_agg(jsonb_build_object('name', rel.name, 'sha256', rel.sha256, 'series', rel.series,
                     'state', case when rm.apply_outcome = 'applied' then 'installed' else 'failed' end)) as installed
            from rollout_machines rm
            join rollouts r on r.id = rm.rollout_id
            join releases rel on rel.id = r.release_id
            where rm.apply_outcome is not null
            group by rm.machine_id) x
      where x.machine_id = m.id`);
    // Silence is audited once per tick with up to 20 machines named: a few dozen entries per rollout.
    await db.query(`
      insert into rollout_audit (rollout_id, actor, action, at, details)
      select r.id, 'system', 'silent', now() - interval '1 hour' * g,
             jsonb_build_object('count', 20, 'reason',
               'offered the release and sent no outcome within the silence timeout: counted as failed',
               'machines', (select jsonb_agg(jsonb_build_object('machineId', 'bench-' || lpad((g * 20 + k)::text, 6, '0'),
                                                                  'since', now())) from generate_series(1, 20) k))
      from rollouts r cross join generate_series(1, 40) g`);
    // What autovacuum does soon after bulk writes (PostgreSQL 13+ vacuums after inserts too): sets the
    // visibility map that index-only scans read, and the planner's statistics.
    await db.query(VACUUM ? 'vacuum analyze' : 'analyze');
    const { rows } = await db.query(
      `select (select count(*)::int from rollout_machines) as offered, (select count(*)::int from reports) as reports`,
    );
    log(
      `seeded ${rows[0].offered} rollout_machines rows and ${rows[0].reports} reports in ${Math.round(performance.now() - started)} ms`,
    );
    return rows[0];
  } finally {
    await db.end();
  }
}

async function timeCall(server, path) {
  const started = performance.now();
  const res = await fetch(server.url + path, { headers: { authorization: `Bearer ${ADMIN_TOKEN}` } });
  const body = await res.text();
  const ms = performance.now() - started;
  if (res.status !== 200) throw new Error(`GET ${path}: HTTP ${res.status} ${body.slice(0, 300)}`);
  return { ms, bytes: body.length };
}

/** Each request RUNS times after two unmeasured calls, the requests interleaved. */
async function measureApi(server, requests) {
  const times = Object.fromEntries(requests.map((r) => [r.name, []]));
  const bytes = {};
  for (const r of requests) {
    for (let i = 0; i < 2; i++) await timeCall(server, r.path(i));
  }
  for (let i = 0; i < RUNS; i++) {
    for (const r of requests) {
      const t = await timeCall(server, r.path(i));
      times[r.name].push(t.ms);
      bytes[r.name] = t.bytes;
    }
  }
  return requests.map((r) => ({
    page: r.page,
    name: r.name,
    path: r.path(0),
    bytes: bytes[r.name],
    ...summary(times[r.name]),
  }));
}

/**
 * Loads each page PAGE_RUNS times in a fresh tab (after one unmeasured load) and takes, from the
 * page's own clock (0 = navigation start), the moment every one of its content test ids is visible.
 */
async function measurePages(server, pages) {
  const browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: CHROMIUM_FLAGS });
  try {
    const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
    const signIn = await context.request.post(`${server.url}/v1/session`, { data: { token: ADMIN_TOKEN } });
    if (signIn.status() !== 201) throw new Error(`sign-in: HTTP ${signIn.status()} ${await signIn.text()}`);
    const out = [];
    for (const p of pages) {
      const times = [];
      for (let i = 0; i <= PAGE_RUNS; i++) {
        const page = await context.newPage();
        await page.goto(server.url + p.path, { waitUntil: 'commit' });
        const ms = await page
          .waitForFunction(
            (ids) =>
              ids.every((id) => {
                const el = document.querySelector(`[data-testid="${id}"]`);
                return el !== null && el.getClientRects().length > 0;
              })
                ? performance.now()
                : false,
            p.visible,
            { polling: 'raf', timeout: 30_000 },
          )
          .catch((error) => {
            throw new Error(
              `${p.name} (${p.path}): ${p.visible.join(', ')} not all visible: ${error.message}`,
            );
          });
        const value = await ms.jsonValue();
        if (i > 0) times.push(value);
        await page.close();
      }
      out.push({ name: p.name, path: p.path, visible: p.visible, ...summary(times) });
    }
    return out;
  } finally {
    await browser.close();
  }
}

requireTools('psql');
if (!existsSync(CHROMIUM))
  throw new Error('needs chromium at /usr/bin/chromium (bash scripts/install-system-deps.sh)');
if (!existsSync(join(REPO, 'apps/console/dist/index.html')))
  throw new Error("the console is not built; run 'npm run build'");
/** PGlite's folder, opened by the benchmark while no server holds it, with pg's query/end. */
async function openPglite(dataDir) {
  const { PGlite } = await import('@electric-sql/pglite');
  const { pg_trgm } = await import('@electric-sql/pglite/contrib/pg_trgm');
  const client = new PGlite(join(dataDir, 'pglite'), { extensions: { pg_trgm } });
  await client.waitReady;
  return { query: (text, values) => client.query(text, values), end: () => client.close() };
}

/**
 * Seeds the fleet and starts the server that is measured. PGlite lives in the server's process, so
 * there the server runs in turns: once to migrate, once to create the rollouts, once measured.
 */
async function seededServer(dataDir) {
  const fleet = { machines: MACHINES, rollouts: ROLLOUTS };
  if (!PGLITE) {
    await freshDatabase(DATABASE);
    const server = await startServer({ dataDir, url: URL_ });
    await seedMachines(sql(URL_), fleet);
    const rolloutIds = await createRollouts(server, fleet);
    return { server, rolloutIds, seeded: await seedOutcomes(sql(URL_)) };
  }
  await (await startServer({ dataDir, url: '' })).stop();
  await seedMachines(await openPglite(dataDir), fleet);
  let server = await startServer({ dataDir, url: '' });
  const rolloutIds = await createRollouts(server, fleet);
  await server.stop();
  const seeded = await seedOutcomes(await openPglite(dataDir));
  server = await startServer({ dataDir, url: '' });
  return { server, rolloutIds, seeded };
}

await withTempDir('clp-bench-console-', async (dir) => {
  const { server, rolloutIds, seeded } = await seededServer(join(dir, 'data'));
  try {
    // The stage ticker brings the backdated rollouts up to date (first stages end) before measuring.
    await timeCall(server, `/v1/rollouts/${rolloutIds[0]}`);
    const rollout = rolloutIds[ROLLOUTS - 1];
    const pick = (i) => rolloutIds[i % rolloutIds.length];
    // The searched text changes each call (a host-name fragment matching a few dozen machines).
    const term = (i) => `bench-${1 + ((1234 + i * 7919) % Math.min(9999, MACHINES))}`;
    const requests = [
      { page: 'machines', name: 'first page', path: () => '/v1/machines?limit=50&offset=0' },
      { page: 'machines', name: 'q search', path: (i) => `/v1/machines?limit=50&offset=0&q=${term(i)}` },
      { page: 'machines', name: 'tier filter', path: () => '/v1/machines?limit=50&offset=0&tier=beta' },
      {
        page: 'machines',
        name: 'tier filter, page 100',
        path: () => '/v1/machines?limit=50&offset=5000&tier=beta',
      },
      { page: 'machines', name: 'tiers', path: () => '/v1/tiers' },
      { page: 'machines', name: 'releases (filter options)', path: () => '/v1/releases?limit=200' },
      { page: 'rollout', name: 'detail', path: (i) => `/v1/rollouts/${pick(i)}` },
      { page: 'rollout', name: 'timeline', path: (i) => `/v1/rollouts/${pick(i)}/timeline` },
      { page: 'rollout', name: 'audit log', path: (i) => `/v1/rollouts/${pick(i)}/audit` },
      {
        page: 'rollout',
        name: 'failed machines',
        path: (i) => `/v1/reports?rollout=${pick(i)}&status=failed&limit=20&offset=0`,
      },
    ];
    const apiLoad = load();
    log(`API: ${requests.length} requests × ${RUNS}, load average ${apiLoad.join(' ')}`);
    const api = await measureApi(server, requests);
    for (const a of api) log(`  ${a.page} ${a.name}: p50 ${a.p50} ms, p95 ${a.p95} ms`);
    const pageLoad = load();
    log(`pages in Chromium: ${PAGE_RUNS} loads each, load average ${pageLoad.join(' ')}`);
    const pages = await measurePages(server, [
      { name: 'machines list', path: '/console/machines', visible: ['machines'] },
      { name: 'machines list, q search', path: `/console/machines?q=${term(3)}`, visible: ['machines'] },
      { name: 'machines list, tier filter', path: '/console/machines?tier=beta', visible: ['machines'] },
      {
        name: 'rollout page',
        path: `/console/rollouts/${rollout}`,
        visible: ['counters', 'rollout-machines', 'failed-machines', 'audit', 'chart'],
      },
    ]);
    for (const p of pages) log(`  ${p.name}: p50 ${p.p50} ms, p95 ${p.p95} ms`);
    const worstApi = Math.max(...api.map((a) => a.p95));
    const worstPage = Math.max(...pages.map((p) => p.p95));
    const result = {
      bar: BAR,
      machine: machineInfo(),
      database: PGLITE ? 'PGlite' : 'PostgreSQL',
      settings: { machines: MACHINES, rollouts: ROLLOUTS, runs: RUNS, pageRuns: PAGE_RUNS, vacuum: VACUUM },
      seeded,
      loadAverage: { api: apiLoad, pages: pageLoad },
      api,
      pages,
      met: { api: worstApi <= BAR.apiP95Ms, pages: worstPage <= BAR.pageMs },
    };
    const md = `# P9: console pages on ${MACHINES.toLocaleString('en')} machines (${result.machine.at.slice(0, 10)})

Server ${result.machine.server} on ${PGLITE ? 'PGlite (in the server process)' : `PostgreSQL (${result.machine.postgres})`}, ${result.machine.cpus} × ${result.machine.cpu}, Node ${result.machine.node}.
Seeded: ${MACHINES} machines, ${ROLLOUTS} rollouts, ${seeded.offered} rollout_machines rows, ${seeded.reports} reports; then ${VACUUM ? '`VACUUM ANALYZE`' : '`ANALYZE` only (no vacuum: index-only scans read the heap)'}.

## API calls (each ${RUNS} times, interleaved; load average at start ${apiLoad.join(' ')})

Bar: p95 ≤ ${BAR.apiP95Ms} ms — ${result.met.api ? 'met' : 'not met'} (worst p95 ${worstApi} ms).

| page | call | p50 ms | p95 ms | max ms | bytes |
|------|------|-------:|-------:|-------:|------:|
${api.map((a) => `| ${a.page} | ${a.name} (\`${a.path.replace(/[0-9a-f-]{36}/, 'ID')}\`) | ${a.p50} | ${a.p95} | ${a.max} | ${a.bytes} |`).join('\n')}

## Pages in Chromium (each ${PAGE_RUNS} loads in a new tab; load average at start ${pageLoad.join(' ')})

From navigation start to every listed \`data-testid\` visible, on the page's own clock. Bar: ≤ ${BAR.pageMs} ms — ${result.met.pages ? 'met' : 'not met'} (worst p95 ${worstPage} ms).

| page | waits for | p50 ms | p95 ms | max ms |
|------|-----------|-------:|-------:|-------:|
${pages.map((p) => `| ${p.name} | ${p.visible.join(', ')} | ${p.p50} | ${p.p95} | ${p.max} |`).join('\n')}
`;
    await writeResults(`console${PGLITE ? '-pglite' : ''}${VACUUM ? '' : '-no-vacuum'}`, result, md);
    process.stdout.write(md);
  } finally {
    await server.stop();
  }
});
