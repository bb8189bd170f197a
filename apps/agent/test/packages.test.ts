import { type SpawnSyncReturns, spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, lstatSync, readFileSync } from 'node:fs';
import { chmod, copyFile, cp, mkdir, readdir, readlink, stat, symlink } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generatedDocs } from '../src/docs/generate.ts';
import { buildProgram } from '../src/program.ts';
import { AGENT_VERSION } from '../src/version.ts';
import { removeAll, tempDir } from './fleet-harness.ts';

/**
 * The packages `npm run package` makes, installed for real into temporary roots with pacman and
 * dpkg, run from there with no Node.js on PATH, and removed again.
 */

const ROOT = resolve(import.meta.dirname, '../../..');
const OUT = join(ROOT, 'dist/packages');
const VERSION = AGENT_VERSION;
const AGENT_PKG = join(OUT, `core-livepatch-agent-${VERSION}-1-x86_64.pkg.tar.zst`);
const AGENT_DEB = join(OUT, `core-livepatch-agent_${VERSION}_amd64.deb`);
const SERVER_PKG = join(OUT, `core-livepatch-server-${VERSION}-1-x86_64.pkg.tar.zst`);
const SERVER_DEB = join(OUT, `core-livepatch-server_${VERSION}_amd64.deb`);

function has(program: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${program}`]).status === 0;
}
const missing = [
  'makepkg',
  'pacman',
  'dpkg-deb',
  'dpkg',
  'fakeroot',
  'systemd-analyze',
  'zstd',
  'strip',
].filter((tool) => !has(tool));
const skip = process.arch !== 'x64' || missing.length > 0;
if (skip) console.warn(`skipped: the package tests need x86_64 and ${missing.join(', ') || 'nothing else'}`);

function check(result: SpawnSyncReturns<string>, what: string): string {
  expect(result.status, `${what}:\n${result.stdout}${result.stderr}`).toBe(0);
  return `${result.stdout}${result.stderr}`;
}

/** Copies PROGRAM and the shared libraries it loads into ROOT, so that it runs chrooted there. */
async function provide(root: string, program: string, as = program): Promise<void> {
  const libraries = spawnSync('ldd', [program], { encoding: 'utf8' })
    .stdout.split('\n')
    .map((line) => /(\/\S+) \(0x/.exec(line)?.[1])
    .filter((lib): lib is string => lib !== undefined);
  for (const file of [...libraries, program]) {
    const target = join(root, file === program ? as : file);
    await mkdir(dirname(target), { recursive: true });
    await copyFile(file, target);
    await chmod(target, 0o755);
  }
}

/**
 * A root that looks like a system with systemd where it matters: the targets the units refer
 * to, and a shell and kill(1) that run there (pacman runs hooks chrooted into the root).
 */
async function systemRoot(prefix: string): Promise<string> {
  const root = await tempDir(prefix);
  await mkdir(join(root, 'lib/systemd/system'), { recursive: true });
  for (const target of [
    'sysinit.target',
    'basic.target',
    'timers.target',
    'multi-user.target',
    'network-online.target',
    'network.target',
  ]) {
    if (existsSync(`/lib/systemd/system/${target}`))
      await copyFile(`/lib/systemd/system/${target}`, join(root, 'lib/systemd/system', target));
  }
  await provide(root, '/bin/dash', '/bin/sh');
  await provide(root, '/bin/kill');
  return root;
}

function mode(path: string): string {
  return (lstatSync(path).mode & 0o7777).toString(8).padStart(4, '0');
}

/** File, mode and owner as the package must install them. */
function expectInstalled(root: string, path: string, expected: string): void {
  const full = join(root, path);
  expect(existsSync(full), `${path} is installed`).toBe(true);
  expect(mode(full), `${path} mode`).toBe(expected);
  const info = lstatSync(full);
  expect([info.uid, info.gid], `${path} owned by root:root`).toEqual([0, 0]);
}

function verifyUnits(root: string, units: string[]): void {
  const result = spawnSync('systemd-analyze', ['verify', '--man=no', `--root=${root}`, ...units], {
    encoding: 'utf8',
    env: { ...process.env, SYSTEMD_LOG_LEVEL: 'notice' },
  });
  expect(`${result.stdout}${result.stderr}`.trim(), units.join(' ')).toBe('');
  expect(result.status).toBe(0);
}

describe.skipIf(skip)('the packages, installed for real in a temporary root', () => {
  let work: string;
  /** A PATH with the system's programs but no node on it: the executable must stand alone. */
  let bare: string;
  const dirs: string[] = [];

  beforeAll(async () => {
    work = await tempDir('clp-packages-');
    bare = join(work, 'bare-bin');
    await mkdir(bare);
    // The system's programs (flock for the engine's lock, …) without any Node.js among them.
    for (const dir of ['/usr/sbin', '/usr/bin']) {
      for (const name of await readdir(dir)) {
        if (/^(node|nodejs|npm|npx|corepack)$/.test(name) || existsSync(join(bare, name))) continue;
        await symlink(join(dir, name), join(bare, name));
      }
    }
    // Builds only what changed since the last run (the executable is cached by content).
    const built = spawnSync(process.execPath, [join(ROOT, 'scripts/package.mjs'), '--no-lintian'], {
      cwd: ROOT,
      encoding: 'utf8',
    });
    check(built, 'npm run package');
  }, 900_000);
  afterAll(async () => {
    await removeAll(work, ...dirs);
  });

  function clpctl(root: string, args: string[]): SpawnSyncReturns<string> {
    return spawnSync(join(root, 'usr/bin/clpctl'), args, {
      encoding: 'utf8',
      env: { PATH: bare, HOME: work, LC_ALL: 'C' },
      cwd: work,
    });
  }

  /** keygen, create, install, status and uninstall with the installed executable alone. */
  async function useInstalledAgent(root: string): Promise<void> {
    expect(spawnSync('sh', ['-c', 'command -v node'], { env: { PATH: bare } }).status).not.toBe(0);
    expect(check(clpctl(root, ['--version']), '--version').trim()).toBe(VERSION);
    const keys = join(work, `keys-${randomBytes(4).toString('hex')}`);
    check(clpctl(root, ['keygen', '--name', 'release', '--out', keys]), 'keygen');
    const patch = join(keys, 'CLP1251123.clp');
    check(
      clpctl(root, [
        'create',
        join(ROOT, 'examples/CLP1251123'),
        '-o',
        patch,
        '--sign',
        join(keys, 'release.key'),
      ]),
      'create',
    );
    const machine = await tempDir('clp-packages-machine-');
    dirs.push(machine);
    await cp(join(ROOT, 'examples/demo-root'), machine, { recursive: true });
    await mkdir(join(machine, 'etc/clp/keys.d'), { recursive: true });
    await copyFile(join(keys, 'release.pub'), join(machine, 'etc/clp/keys.d/release.pub'));
    check(clpctl(root, ['install', patch, '--root', machine]), 'install');
    const status = JSON.parse(check(clpctl(root, ['status', '--root', machine, '--json']), 'status'));
    expect(status.installed.map((p: { name: string }) => p.name)).toEqual(['CLP1251123']);
    expect(readFileSync(join(machine, 'etc/clp-demo.conf'), 'utf8').length).toBeGreaterThan(0);
    check(clpctl(root, ['uninstall', 'CLP1251123', '--root', machine]), 'uninstall');
    expect(existsSync(join(machine, 'etc/clp-demo.conf'))).toBe(false);
    // The historic script-only example needs PowerShell: the engine looks for it on PATH.
    const historic = join(keys, 'CLP1250101.clp');
    check(
      clpctl(root, [
        'create',
        join(ROOT, 'examples/CLP1250101-historic'),
        '-o',
        historic,
        '--sign',
        join(keys, 'release.key'),
      ]),
      'create historic',
    );
    const explained = clpctl(root, ['explain', historic, '--root', machine]);
    expect(`${explained.stdout}${explained.stderr}`).not.toContain('CLP_E_INTERNAL');
    expect(`${explained.stdout}${explained.stderr}`).toMatch(/PowerShell|pwsh/);
    // An unknown command is a usage error (exit 2), not a crash of the executable.
    expect(clpctl(root, ['no-such-command']).status).toBe(2);
  }

  /** The man pages and completions installed are the ones the live command tree makes now. */
  function expectDocs(root: string, zshDir: string): void {
    for (const file of generatedDocs(buildProgram(), VERSION)) {
      const installed = file.path.startsWith('zsh/')
        ? file.path.replace('zsh/vendor-completions', zshDir)
        : file.path;
      const path = join(root, 'usr/share', installed + (installed.startsWith('man/') ? '.gz' : ''));
      expect(existsSync(path), path).toBe(true);
      const bytes = readFileSync(path);
      const text = (path.endsWith('.gz') ? gunzipSync(bytes) : bytes).toString('utf8');
      expect(text, `${installed} is what the command tree generates`).toBe(file.text);
    }
  }

  it('pacman installs the agent .pkg.tar.zst, which runs without Node.js, and removal leaves agent.json.pacsave', async () => {
    const root = await systemRoot('clp-pacman-root-');
    dirs.push(root);
    const db = join(root, 'var/lib/pacman');
    await mkdir(db, { recursive: true });
    const pacman = (args: string[]) =>
      spawnSync(
        'pacman',
        [
          '--root',
          root,
          '--dbpath',
          db,
          '--cachedir',
          join(work, 'pacman-cache'),
          '--logfile',
          join(work, 'pacman.log'),
          '--noconfirm',
          ...args,
        ],
        { encoding: 'utf8' },
      );
    // -dd: the C libraries the executable links are this machine's, not packages in the new root.
    const installed = check(pacman(['-U', '-dd', AGENT_PKG]), 'pacman -U');
    expect(installed).toContain('Enabling the daily Core LivePatch update timer');
    expect(installed).not.toMatch(/error:/);
    expectInstalled(root, 'usr/bin/clpctl', '0755');
    expectInstalled(root, 'etc/clp/agent.json', '0600');
    expectInstalled(root, 'etc/clp/keys.d', '0755');
    expectInstalled(root, 'var/lib/clp', '0700');
    expectInstalled(root, 'usr/lib/systemd/system/core-livepatch-update.service', '0644');
    expectInstalled(root, 'usr/lib/systemd/system/core-livepatch-update.timer', '0644');
    expectInstalled(root, 'usr/share/libalpm/hooks/core-livepatch.hook', '0644');
    expectInstalled(root, 'usr/lib/core-livepatch/enable-timer', '0755');
    const info = check(pacman(['-Qi', 'core-livepatch-agent']), 'pacman -Qi');
    expect(info).toMatch(/Version\s+: 0\.1\.0-1/);
    expect(info).toMatch(/Architecture\s+: x86_64/);
    // agent.json is a backup file: pacman keeps an administrator's edit of it.
    expect(check(pacman(['-Qii', 'core-livepatch-agent']), 'pacman -Qii')).toMatch(
      /UNMODIFIED\s+\S+\/etc\/clp\/agent\.json/,
    );
    expectDocs(root, 'zsh/site-functions');
    verifyUnits(root, [
      '/usr/lib/systemd/system/core-livepatch-update.service',
      '/usr/lib/systemd/system/core-livepatch-update.timer',
    ]);
    await useInstalledAgent(root);

    // The administrator's change to the configuration is kept as .pacsave when the package goes.
    check(clpctl(root, ['config', 'set', 'tags', 'site=lab', '--root', root]), 'config set');
    const files = check(pacman(['-Qlq', 'core-livepatch-agent']), 'pacman -Ql')
      .split('\n')
      .filter((line) => line.startsWith(root) && !line.endsWith('/'));
    check(pacman(['-R', 'core-livepatch-agent']), 'pacman -R');
    expect(readFileSync(join(root, 'etc/clp/agent.json.pacsave'), 'utf8')).toContain('site=lab');
    for (const file of files) expect(existsSync(file), `${file} is removed`).toBe(false);
  });

  it('dpkg installs the agent .deb into another root: conffile, timer enabled offline, nothing started; remove keeps the configuration', async () => {
    const root = await systemRoot('clp-dpkg-root-');
    dirs.push(root);
    const admin = join(root, 'var/lib/dpkg');
    for (const sub of ['info', 'updates', 'triggers']) await mkdir(join(admin, sub), { recursive: true });
    for (const file of ['status', 'available']) await cp('/dev/null', join(admin, file));
    // Maintainer scripts run on this machine with DPKG_ROOT set, as in a chroot-less --root install.
    const dpkg = (args: string[]) =>
      spawnSync(
        'dpkg',
        [
          `--root=${root}`,
          '--force-script-chrootless',
          '--force-depends',
          `--log=${join(work, 'dpkg.log')}`,
          ...args,
        ],
        {
          encoding: 'utf8',
        },
      );
    const query = (format: string) =>
      spawnSync('dpkg-query', [`--admindir=${admin}`, '-W', `-f=${format}`, 'core-livepatch-agent'], {
        encoding: 'utf8',
      }).stdout;
    check(dpkg(['-i', AGENT_DEB]), 'dpkg -i');
    expect(query('${db:Status-Abbrev}')).toBe('ii ');
    expect(query('${Conffiles}').trim()).toMatch(/^\/etc\/clp\/agent\.json [0-9a-f]{32}$/);
    expectInstalled(root, 'usr/bin/clpctl', '0755');
    expectInstalled(root, 'etc/clp/agent.json', '0600');
    expectInstalled(root, 'etc/clp/keys.d', '0755');
    expectInstalled(root, 'var/lib/clp', '0700');
    expectInstalled(root, 'lib/systemd/system/core-livepatch-update.service', '0644');
    expectInstalled(root, 'lib/systemd/system/core-livepatch-update.timer', '0644');
    expectInstalled(root, 'usr/share/doc/core-livepatch-agent/copyright', '0644');
    const wants = join(root, 'etc/systemd/system/timers.target.wants/core-livepatch-update.timer');
    expect(await readlink(wants)).toBe('/lib/systemd/system/core-livepatch-update.timer');
    expectDocs(root, 'zsh/vendor-completions');
    verifyUnits(root, [
      '/lib/systemd/system/core-livepatch-update.service',
      '/lib/systemd/system/core-livepatch-update.timer',
    ]);
    await useInstalledAgent(root);

    check(dpkg(['-r', 'core-livepatch-agent']), 'dpkg -r');
    expect(query('${db:Status-Abbrev}')).toBe('rc ');
    expect(existsSync(join(root, 'etc/clp/agent.json'))).toBe(true);
    for (const gone of [
      'usr/bin/clpctl',
      'lib/systemd/system/core-livepatch-update.timer',
      'usr/share/man/man8/clpctl.8.gz',
    ])
      expect(existsSync(join(root, gone)), gone).toBe(false);
    check(dpkg(['-P', 'core-livepatch-agent']), 'dpkg -P');
    expect(existsSync(join(root, 'etc/clp/agent.json'))).toBe(false);
    expect(existsSync(wants)).toBe(false);
  });

  it('the server .deb installs Node.js 24 beside the server, which starts from that root on PGlite with no node on PATH', async () => {
    const root = await systemRoot('clp-dpkg-server-');
    dirs.push(root);
    const admin = join(root, 'var/lib/dpkg');
    for (const sub of ['info', 'updates', 'triggers']) await mkdir(join(admin, sub), { recursive: true });
    for (const file of ['status', 'available']) await cp('/dev/null', join(admin, file));
    const dpkg = (args: string[]) =>
      spawnSync(
        'dpkg',
        [
          `--root=${root}`,
          '--force-script-chrootless',
          '--force-depends',
          `--log=${join(work, 'dpkg.log')}`,
          ...args,
        ],
        {
          encoding: 'utf8',
        },
      );
    check(dpkg(['-i', SERVER_DEB]), 'dpkg -i server');
    const lib = 'usr/lib/core-livepatch-server';
    expectInstalled(root, `${lib}/node`, '0755');
    expectInstalled(root, `${lib}/dist/server.mjs`, '0644');
    expectInstalled(root, 'lib/systemd/system/core-livepatch-server.service', '0644');
    expectInstalled(root, 'usr/lib/sysusers.d/core-livepatch-server.conf', '0644');
    expectInstalled(root, 'etc/clp/server.env', '0640');
    expectInstalled(root, 'var/lib/clp-server', '0700');
    expect(readFileSync(join(root, 'usr/lib/sysusers.d/core-livepatch-server.conf'), 'utf8')).toMatch(
      /^u clp-server /m,
    );
    expect(existsSync(join(root, `${lib}/migrations/meta/_journal.json`))).toBe(true);
    expect(
      await readlink(join(root, 'etc/systemd/system/multi-user.target.wants/core-livepatch-server.service')),
    ).toBe('/lib/systemd/system/core-livepatch-server.service');
    verifyUnits(root, ['/lib/systemd/system/core-livepatch-server.service']);
    const unit = readFileSync(join(root, 'lib/systemd/system/core-livepatch-server.service'), 'utf8');
    expect(unit).toContain(`ExecStart=/${lib}/node /${lib}/dist/server.mjs`);
    expect(unit).toMatch(/^User=clp-server$/m);

    const data = join(work, 'server-data');
    const server = spawn(join(root, `${lib}/node`), [join(root, `${lib}/dist/server.mjs`)], {
      env: {
        PATH: bare,
        CLP_LISTEN: '127.0.0.1:0',
        CLP_DATA_DIR: data,
        CLP_BOOTSTRAP_TOKEN: `clp_adm_${randomBytes(24).toString('hex')}`,
        CLP_LOG_LEVEL: 'warn',
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    server.stdout.on('data', (c: Buffer) => (out += c.toString()));
    server.stderr.on('data', (c: Buffer) => (out += c.toString()));
    try {
      const url = await new Promise<string>((done, fail) => {
        const timer = setInterval(() => {
          const m = /listening on (http:\/\/\S+)/.exec(out);
          if (m) {
            clearInterval(timer);
            done(m[1]!);
          }
        }, 100);
        server.once('exit', (code) => {
          clearInterval(timer);
          fail(new Error(`the installed server exited with ${code}:\n${out}`));
        });
      });
      expect(out).toContain('embedded PGlite');
      expect((await fetch(`${url}/readyz`)).status).toBe(200);
      // The console comes with the server: its page and the script it loads.
      const page = await fetch(`${url}/console/machines`);
      expect(page.status).toBe(200);
      const html = await page.text();
      const script = /src="(\/console\/assets\/[^"]+\.js)"/.exec(html)?.[1];
      expect(script, html).toBeDefined();
      expect((await fetch(`${url}${script}`)).status).toBe(200);
    } finally {
      server.kill('SIGTERM');
      await new Promise((done) => server.once('exit', done));
    }
    check(dpkg(['-r', 'core-livepatch-server']), 'dpkg -r server');
    expect(existsSync(join(root, 'etc/clp/server.env'))).toBe(true);
    expect(existsSync(join(root, `${lib}/node`))).toBe(false);
  });

  it('pacman installs the server .pkg.tar.zst with its unit, system user file, settings and state folder', async () => {
    const root = await systemRoot('clp-pacman-server-');
    dirs.push(root);
    const db = join(root, 'var/lib/pacman');
    await mkdir(db, { recursive: true });
    const pacman = (args: string[]) =>
      spawnSync(
        'pacman',
        [
          '--root',
          root,
          '--dbpath',
          db,
          '--cachedir',
          join(work, 'pacman-cache'),
          '--logfile',
          join(work, 'pacman.log'),
          '--noconfirm',
          ...args,
        ],
        {
          encoding: 'utf8',
        },
      );
    check(pacman(['-U', '-dd', SERVER_PKG]), 'pacman -U server');
    const lib = 'usr/lib/core-livepatch-server';
    expectInstalled(root, `${lib}/node`, '0755');
    expectInstalled(root, `${lib}/dist/server.mjs`, '0644');
    expectInstalled(root, 'usr/lib/systemd/system/core-livepatch-server.service', '0644');
    expectInstalled(root, 'usr/lib/sysusers.d/core-livepatch-server.conf', '0644');
    expectInstalled(root, 'etc/clp/server.env', '0640');
    expectInstalled(root, 'var/lib/clp-server', '0700');
    const version = spawnSync(join(root, `${lib}/node`), ['--version'], {
      encoding: 'utf8',
      env: { PATH: bare },
    });
    expect(version.stdout.trim()).toMatch(/^v24\./);
    await stat(join(root, `${lib}/node_modules/@electric-sql/pglite/package.json`));
    check(pacman(['-R', 'core-livepatch-server']), 'pacman -R server');
    expect(existsSync(join(root, `${lib}/node`))).toBe(false);
  });

  it.skipIf(!has('lintian'))(
    'lintian reports no tag on the .deb files that is not overridden with its reason',
    () => {
      for (const deb of [AGENT_DEB, SERVER_DEB]) {
        const result = spawnSync('lintian', ['--fail-on', 'error,warning', '--tag-display-limit', '0', deb], {
          encoding: 'utf8',
        });
        const tags = result.stdout.split('\n').filter((line) => /^[EWI]: /.test(line));
        expect(tags, deb).toEqual([]);
        expect(result.status, result.stderr).toBe(0);
      }
    },
    300_000,
  );
});
