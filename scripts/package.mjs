// npm run package: clpctl as one executable, and the agent and server packages, in dist/packages/.
//   --arch ARCH       x86_64 (default on x86_64 machines) or aarch64; repeatable
//   --files-only      build the files the packages hold (dist/build/), not the packages
//   --no-lintian      skip the lintian report of the .deb files
// Each step is skipped when its inputs did not change (the executable is cached by content).
import { execFileSync, spawnSync } from 'node:child_process';
import { cp, mkdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { buildKey, unlessUnchanged } from './package/build-key.mjs';
import { buildDeb, DEB_ARCH, dir, put, putGzipped } from './package/deb.mjs';
import { agentFiles, serverFiles } from './package/files.mjs';
import { buildArchPackage } from './package/makepkg.mjs';
import { ARCHES } from './package/node-binary.mjs';

const ROOT = resolve(import.meta.dirname, '..');
const { values } = parseArgs({
  options: {
    arch: { type: 'string', multiple: true },
    'files-only': { type: 'boolean', default: false },
    'no-lintian': { type: 'boolean', default: false },
  },
});
const native = { x64: 'x86_64', arm64: 'aarch64' }[process.arch];
const arches = values.arch ?? [native];
for (const arch of arches) {
  if (!ARCHES.includes(arch)) throw new Error(`--arch ${arch}: expected one of ${ARCHES.join(', ')}`);
}
const version = JSON.parse(await readFile(join(ROOT, 'package.json'), 'utf8')).version;
const OUT = join(ROOT, 'dist/packages');
const started = Date.now();
const say = (line) => process.stdout.write(`${line}\n`);
const step = (line) => say(`[${((Date.now() - started) / 1000).toFixed(1)} s] ${line}`);

function has(program) {
  return spawnSync('sh', ['-c', `command -v ${program}`]).status === 0;
}

async function agentDeb(arch, files) {
  const tree = join(ROOT, `dist/build/deb-agent-${arch}`);
  await rm(tree, { recursive: true, force: true });
  const p = (path) => join(ROOT, path);
  await put(tree, 'usr/bin/clpctl', join(files, 'clpctl'), 0o755);
  // Debian 12 keeps system units in /lib (its lintian says so); on merged-/usr systems it is /usr/lib.
  await put(
    tree,
    'lib/systemd/system/core-livepatch-update.service',
    p('packaging/core-livepatch-update.service'),
    0o644,
  );
  await put(
    tree,
    'lib/systemd/system/core-livepatch-update.timer',
    p('packaging/core-livepatch-update.timer'),
    0o644,
  );
  await put(tree, 'etc/clp/agent.json', p('packaging/agent.json'), 0o600);
  await dir(tree, 'etc/clp/keys.d', 0o755);
  await dir(tree, 'var/lib/clp', 0o700);
  for (const page of ['clpctl', 'clpctl-admin', 'clpctl-config', 'clpctl-pkg']) {
    await putGzipped(tree, `usr/share/man/man8/${page}.8.gz`, join(files, `share/man/man8/${page}.8`));
  }
  await put(
    tree,
    'usr/share/bash-completion/completions/clpctl',
    join(files, 'share/bash-completion/completions/clpctl'),
    0o644,
  );
  await put(
    tree,
    'usr/share/zsh/vendor-completions/_clpctl',
    join(files, 'share/zsh/vendor-completions/_clpctl'),
    0o644,
  );
  await put(
    tree,
    'usr/share/fish/vendor_completions.d/clpctl.fish',
    join(files, 'share/fish/vendor_completions.d/clpctl.fish'),
    0o644,
  );
  return debUnlessUnchanged({
    tree,
    controlDir: p('packaging/debian/agent'),
    name: 'core-livepatch-agent',
    version,
    arch,
    out: join(OUT, `core-livepatch-agent_${version}_${DEB_ARCH[arch]}.deb`),
    copyright: p('packaging/debian/copyright'),
    overrides: p('packaging/debian/agent/lintian-overrides'),
  });
}

async function serverDeb(arch, files) {
  const tree = join(ROOT, `dist/build/deb-server-${arch}`);
  await rm(tree, { recursive: true, force: true });
  const p = (path) => join(ROOT, path);
  await mkdir(join(tree, 'usr/lib'), { recursive: true });
  await cp(files, join(tree, 'usr/lib/core-livepatch-server'), { recursive: true });
  await put(
    tree,
    'lib/systemd/system/core-livepatch-server.service',
    p('packaging/core-livepatch-server.service'),
    0o644,
  );
  await put(
    tree,
    'usr/lib/sysusers.d/core-livepatch-server.conf',
    p('packaging/server/sysusers.conf'),
    0o644,
  );
  await put(tree, 'etc/clp/server.env', p('packaging/server/server.env'), 0o640);
  await dir(tree, 'etc/clp/server-keys.d', 0o755);
  await dir(tree, 'var/lib/clp-server', 0o700);
  return debUnlessUnchanged({
    tree,
    controlDir: p('packaging/debian/server'),
    name: 'core-livepatch-server',
    version,
    arch,
    out: join(OUT, `core-livepatch-server_${version}_${DEB_ARCH[arch]}.deb`),
    copyright: p('packaging/debian/copyright'),
    overrides: p('packaging/debian/server/lintian-overrides'),
  });
}

async function debUnlessUnchanged(options) {
  const key = await buildKey(ROOT, [
    options.tree.replace(`${ROOT}/`, ''),
    options.controlDir.replace(`${ROOT}/`, ''),
    'packaging/debian/copyright',
  ]);
  const result = await unlessUnchanged(options.out, key, () => buildDeb(options));
  if (result.cached) say(`${options.out.replace(`${ROOT}/`, '')}: unchanged`);
  return result.output;
}

async function archUnlessUnchanged(options, name, arch) {
  const out = join(OUT, `${name}-${version}-1-${arch}.pkg.tar.zst`);
  const key = await buildKey(ROOT, options.inputs, arch);
  const result = await unlessUnchanged(out, key, () => buildArchPackage(options));
  if (result.output !== out) throw new Error(`makepkg made ${result.output}, expected ${out}`);
  if (result.cached) say(`${out.replace(`${ROOT}/`, '')}: unchanged`);
  return out;
}

/** lintian on each .deb: every tag it still reports goes in the report, with the overridden ones. */
function lintian(debs) {
  if (!has('lintian')) return 'lintian: not installed (scripts/install-system-deps.sh installs it)\n';
  let report = '';
  for (const deb of debs) {
    const r = spawnSync('lintian', ['--show-overrides', '--tag-display-limit', '0', deb], {
      encoding: 'utf8',
    });
    report += `== lintian ${deb.replace(`${ROOT}/`, '')}\n${r.stdout}${r.stderr}`;
  }
  return report;
}

async function size(file) {
  const bytes = (await stat(file)).size;
  return `${(bytes / 1024 / 1024).toFixed(1)} MiB`;
}

execFileSync(process.execPath, [join(ROOT, 'scripts/build.mjs')], {
  cwd: ROOT,
  stdio: ['ignore', 'ignore', 'inherit'],
});
const made = [];
for (const arch of arches) {
  const agent = await agentFiles(ROOT, arch);
  const server = await serverFiles(ROOT, arch);
  say(`files for ${arch}: ${agent.dir}${agent.seaCached ? ' (executable unchanged)' : ''}, ${server.dir}`);
  if (values['files-only']) continue;
  await mkdir(OUT, { recursive: true });
  const agentInputs = ['LICENSE', 'packaging', `dist/build/agent-${arch}`];
  step('agent .pkg.tar.zst');
  made.push(
    await archUnlessUnchanged(
      { root: ROOT, pkgbuild: 'packaging/PKGBUILD', inputs: agentInputs, arch, outDir: OUT },
      'core-livepatch-agent',
      arch,
    ),
  );
  step('server .pkg.tar.zst');
  made.push(
    await archUnlessUnchanged(
      {
        root: ROOT,
        pkgbuild: 'packaging/server/PKGBUILD',
        inputs: ['LICENSE', 'packaging', `dist/build/server-${arch}`],
        arch,
        outDir: OUT,
      },
      'core-livepatch-server',
      arch,
    ),
  );
  step('agent .deb');
  made.push(await agentDeb(arch, agent.dir));
  step('server .deb');
  made.push(await serverDeb(arch, server.dir));
  await cp(agent.dir + '/clpctl', join(OUT, `clpctl-${version}-${arch}`));
  made.push(join(OUT, `clpctl-${version}-${arch}`));
}
if (!values['files-only']) {
  if (!values['no-lintian']) {
    step('lintian');
    const report = lintian(made.filter((f) => f.endsWith('.deb')));
    await writeFile(join(OUT, 'lintian.txt'), report);
    say(report.trimEnd());
  }
  step('done');
  for (const file of made) say(`${(await size(file)).padStart(10)}  ${file.replace(`${ROOT}/`, '')}`);
}
