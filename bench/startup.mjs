// P4: start-up of the packaged clpctl. `clpctl status` on a root with 100 installed patches, and
// `clpctl --version`, against `node -e 0` (the same Node.js 24 the executable carries), timed by
// hyperfine. Needs the executable: `npm run package -- --files-only` (or npm run package) first.
//   npx node bench/startup.mjs [--runs 30] [--patches 100] [--binary dist/build/agent-x86_64/clpctl] [--keep]
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { copyFile, cp, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { loadavg, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';

const ROOT = resolve(import.meta.dirname, '..');
const { values } = parseArgs({
  options: {
    runs: { type: 'string', default: '30' },
    patches: { type: 'string', default: '100' },
    binary: { type: 'string', default: join(ROOT, 'dist/build/agent-x86_64/clpctl') },
    keep: { type: 'boolean', default: false },
  },
});
const BAR = 3;
const binary = resolve(values.binary);
if (!existsSync(binary)) {
  console.error(`no executable at ${binary}: run 'npm run package -- --files-only' first`);
  process.exit(2);
}
const work = await mkdtemp(join(tmpdir(), 'clp-bench-startup-'));
const clp = (...args) => execFileSync(binary, args, { encoding: 'utf8', env: { PATH: '/usr/bin:/bin' } });

// A root with N installed patches, each adding one file, installed by the executable itself.
const machine = join(work, 'machine');
await mkdir(join(machine, 'etc/clp/keys.d'), { recursive: true });
await copyFile('/etc/passwd', join(machine, 'etc/passwd'));
await copyFile('/etc/group', join(machine, 'etc/group'));
clp('keygen', '--name', 'bench', '--out', work);
await copyFile(join(work, 'bench.pub'), join(machine, 'etc/clp/keys.d/bench.pub'));
const count = Number(values.patches);
for (let i = 1; i <= count; i++) {
  const name = `CLP${i}251201`;
  const dir = join(work, 'src', name);
  await mkdir(join(dir, 'payload'), { recursive: true });
  const body = `patch ${i}\n`;
  await writeFile(join(dir, 'payload/file.conf'), body);
  const sha = execFileSync('sha256sum', [join(dir, 'payload/file.conf')], { encoding: 'utf8' }).split(' ')[0];
  await writeFile(
    join(dir, 'PKGINFO.meta'),
    `<?xml version="1.0" encoding="UTF-8"?>
<Package>
  <Name>${name}</Name>
  <Version>1</Version>
  <Architecture>any</Architecture>
  <Description>start-up benchmark patch ${i}</Description>
  <Author>bench</Author>
  <Created>2025-12-01</Created>
  <Actions>
    <File action="add" path="/etc/clp-bench/${name}.conf" source="payload/file.conf" sha256="${sha}" mode="0644" owner="root" group="root"/>
  </Actions>
</Package>
`,
  );
  clp('create', dir, '-o', join(work, `${name}.clp`), '--sign', join(work, 'bench.key'));
  clp('install', join(work, `${name}.clp`), '--root', machine);
}
const status = JSON.parse(clp('status', '--root', machine, '--json'));
if (status.installed.length !== count)
  throw new Error(`expected ${count} installed patches, got ${status.installed.length}`);

const load = loadavg().map((l) => l.toFixed(2));
const uptime = execFileSync('uptime', { encoding: 'utf8' }).trim();
const json = join(work, 'hyperfine.json');
const commands = {
  'node -e 0': `${process.execPath} -e 0`,
  'clpctl --version': `${binary} --version`,
  [`clpctl status (${count} patches)`]: `${binary} status --root ${machine}`,
};
execFileSync(
  'hyperfine',
  [
    '-N',
    '--warmup',
    '5',
    '--runs',
    values.runs,
    '--export-json',
    json,
    ...Object.entries(commands).flatMap(([n, c]) => ['-n', n, c]),
  ],
  { stdio: ['ignore', 'inherit', 'inherit'] },
);
const results = JSON.parse(await readFile(json, 'utf8')).results;
const byName = Object.fromEntries(results.map((r) => [r.command, r]));
const base = byName['node -e 0'];
const ms = (s) => (s * 1000).toFixed(1);
const rows = results.map((r) => ({
  command: r.command,
  meanMs: Number(ms(r.mean)),
  medianMs: Number(ms(r.median)),
  stddevMs: Number(ms(r.stddev)),
  ratioMedian: Number((r.median / base.median).toFixed(2)),
  // CPU time moves less with the machine's load than wall time: a second view of the same runs.
  cpuMs: Number(ms(r.user + r.system)),
  cpuRatio: Number(((r.user + r.system) / (base.user + base.system)).toFixed(2)),
}));
const status100 = rows.find((r) => r.command.startsWith('clpctl status'));
const out = {
  benchmark: 'startup',
  goal: `P4: clpctl status on a root with ${count} installed patches <= ${BAR}x node -e 0 wall time (median)`,
  binary: binary.replace(`${ROOT}/`, ''),
  node: process.version,
  runs: Number(values.runs),
  loadBefore: load,
  uptime,
  cpus: execFileSync('nproc', { encoding: 'utf8' }).trim(),
  results: rows,
  verdict: status100.ratioMedian <= BAR ? 'meets the bar' : 'misses the bar',
  at: new Date().toISOString(),
};
await mkdir(join(ROOT, 'bench/results'), { recursive: true });
await writeFile(join(ROOT, 'bench/results/startup.json'), `${JSON.stringify(out, null, 2)}\n`);
const md = [
  `# startup — P4 (${out.at.slice(0, 10)})`,
  '',
  `${out.goal}. Packaged executable \`${out.binary}\` (Node ${out.node} inside, started from its V8 snapshot), hyperfine -N, ${out.runs} runs after 5 warm-ups.`,
  `Load before the run: ${load.join(', ')} (1, 5, 15 min) on ${out.cpus} CPUs.`,
  '',
  '| command | median ms | mean ms | σ ms | × node -e 0 (median) | CPU ms (user+sys) | × node -e 0 (CPU) |',
  '|---------|----------:|--------:|-----:|---------------------:|------------------:|------------------:|',
  ...rows.map(
    (r) =>
      `| ${r.command} | ${r.medianMs} | ${r.meanMs} | ${r.stddevMs} | ${r.ratioMedian} | ${r.cpuMs} | ${r.cpuRatio} |`,
  ),
  '',
  `Verdict: \`clpctl status\` is ${status100.ratioMedian}× \`node -e 0\` in median wall time: ${out.verdict} (≤ ${BAR}×); ${status100.cpuRatio}× in CPU time.`,
  '',
].join('\n');
await writeFile(join(ROOT, 'bench/results/startup.md'), md);
process.stdout.write(`\n${md}`);
if (values.keep) process.stdout.write(`kept the root with ${count} patches: ${machine}\n`);
else await rm(work, { recursive: true, force: true });
