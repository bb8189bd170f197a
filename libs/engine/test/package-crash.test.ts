/**
 * Bar R8: a power cut in the middle of a package step. clpctl installs (or uninstalls) a patch
 * whose package step runs pacman -U or dpkg -i on a package of many files, and the whole process
 * group (clpctl and the package manager together) is killed with SIGKILL at a range of moments
 * spread over the package manager's own run: before it starts, while it holds its lock, while
 * it removes the old files, while it unpacks the new ones, while it writes its database, after.
 * Then `clpctl recover` runs, and at every point the root must be as before (or as after, when
 * the kill came past the commit point), with the package database's own verdict clean: pacman's
 * local database readable with no half-written entry, no db.lck, `pacman -Qk` and `pacman -Dk`
 * clean; `dpkg --audit` empty and the package `install ok installed`.
 */
import { spawn, spawnSync } from 'node:child_process';
import { chmod, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { DpkgManager } from '../src/package-managers/dpkg.ts';
import type { PackageManager } from '../src/package-managers/package-manager.ts';
import { PacmanManager } from '../src/package-managers/pacman.ts';
import { buildPatch, fileAction, makeRoot, snapshotRoot, tempDir, trustedKey } from './engine-fixtures.ts';
import { hasTool, makeDeb, makePacmanPackage, type PackageFiles } from './package-fixtures.ts';
import { CLPCTL, clpctl, ensureBundle } from './run-clpctl.ts';

const FILES = 300;

/** Enough files that the package manager's unpacking can be cut half-way. */
function manyFiles(tag: string): PackageFiles {
  const files: PackageFiles = {};
  for (let i = 0; i < FILES; i++) files[`usr/share/slow/${i % 20}/f${i}`] = `${tag} ${i}\n`;
  files[`usr/share/slow/only-in-${tag}`] = `${tag}\n`;
  return files;
}

function copyTree(from: string, to: string): void {
  const r = spawnSync('cp', ['-a', from, to]);
  if (r.status !== 0) throw new Error(`cp -a failed: ${r.stderr}`);
}

/**
 * A wrapper for the package tool, first on clpctl's PATH. When the file `kill-when` is next to it
 * and the tool is asked to install, it removes the file (only that run is cut) and kills its whole
 * process group as soon as the shell condition in it holds while the tool runs, or, for `after`,
 * right after the tool ended and before clpctl goes on. It writes which happened to `killed-at`.
 */
async function killingWrapper(dir: string, tool: string, installFlag: string): Promise<string> {
  const real = spawnSync('sh', ['-c', `command -v ${tool}`], { encoding: 'utf8' }).stdout.trim();
  await mkdir(dir, { recursive: true });
  const script = [
    '#!/bin/sh',
    'here=$(dirname "$0")',
    `case " $* " in *" ${installFlag} "*)`,
    '  if [ -f "$here/kill-when" ]; then',
    '    cond=$(cat "$here/kill-when"); rm -f "$here/kill-when"',
    "    group=$(awk '{print $5}' /proc/$$/stat)",
    '    if [ "$cond" = after ]; then',
    `      ${real} "$@"; echo after > "$here/killed-at"; kill -9 "-$group"`,
    '    fi',
    '    tool=$$',
    '    (',
    '      until eval "$cond"; do',
    '        if ! kill -0 "$tool" 2>/dev/null; then echo tool-ended > "$here/killed-at"; kill -9 "-$group"; fi',
    '        sleep 0.002',
    '      done',
    '      echo condition > "$here/killed-at"; kill -9 "-$group"',
    '    ) &',
    '  fi;;',
    'esac',
    `exec ${real} "$@"`,
    '',
  ].join('\n');
  await writeFile(join(dir, tool), script);
  await chmod(join(dir, tool), 0o755);
  return dir;
}

interface Run {
  status: number | null;
  signal: NodeJS.Signals | null;
  stderr: string;
}

/** clpctl as the leader of its own process group, as a service or a login shell runs it. */
function clpctlGroup(args: string[], path: string): Promise<Run> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [CLPCTL, ...args], {
      detached: true,
      stdio: ['ignore', 'ignore', 'pipe'],
      env: { ...process.env, PATH: `${path}:${process.env.PATH}` },
    });
    let stderr = '';
    child.stderr.on('data', (b: Buffer) => {
      stderr += b.toString();
    });
    child.on('close', (status, signal) => resolve({ status, signal, stderr }));
  });
}

interface Driver {
  kind: 'pacman' | 'dpkg';
  tools: string[];
  installFlag: string;
  exclude: string[];
  prepareRoot(root: string): Promise<void>;
  makePackage(out: string, version: string): Promise<string>;
  manager(root: string): PackageManager;
  /** What the package database looks like right after the kill, in a word, to show which phases were hit. */
  stateAfterKill(root: string): Promise<string>;
  /** The database's own consistency check beyond the package's problems(). */
  databaseCheck(root: string): string;
  /** Moments of the tool's run installing `to` over `from`, as shell conditions on the root. */
  killPoints(root: string, from: string, to: string): Array<[string, string]>;
}

/** A shell condition: the middle file of the package has the new version's content. */
const halfUnpacked = (root: string, to: string) =>
  `grep -qs '^${to} ' '${root}/usr/share/slow/${(FILES / 2) % 20}/f${FILES / 2}'`;

const drivers: Driver[] = [
  {
    kind: 'pacman',
    tools: ['pacman', 'bsdtar'],
    installFlag: '-U',
    exclude: ['var/lib/clp', 'var/log/CLP.log', 'var/lib/pacman', 'var/log/pacman.log'],
    async prepareRoot(root) {
      await mkdir(join(root, 'var/lib/pacman'), { recursive: true });
      await writeFile(join(root, 'etc/os-release'), 'ID=arch\n');
    },
    makePackage: (out, version) => makePacmanPackage(out, 'slow', version, manyFiles(version)),
    manager: (root) => new PacmanManager(root),
    async stateAfterKill(root) {
      const db = join(root, 'var/lib/pacman');
      const entries = spawnSync('sh', ['-c', `ls "${db}/local"`], { encoding: 'utf8' }).stdout.split('\n');
      const halfWritten = entries.filter(
        (e) =>
          e.startsWith('slow-') &&
          ['desc', 'files'].some(
            (part) => spawnSync('test', ['-e', join(db, 'local', e, part)]).status !== 0,
          ),
      );
      const lock = spawnSync('test', ['-e', join(db, 'db.lck')]).status === 0;
      if (halfWritten.length > 0) return 'half-written-entry';
      if (lock) return 'lock-left';
      return `at-${await new PacmanManager(root).installedVersion('slow')}`;
    },
    databaseCheck(root) {
      const r = spawnSync(
        'pacman',
        [
          '--root',
          root,
          '--dbpath',
          join(root, 'var/lib/pacman'),
          '--config',
          join(root, 'var/lib/clp/pacman.conf'),
          '-Dk',
        ],
        { encoding: 'utf8' },
      );
      return r.status === 0 ? '' : `pacman -Dk: ${r.stdout}${r.stderr}`;
    },
    killPoints(root, from, to) {
      const db = `${root}/var/lib/pacman`;
      return [
        ['start', 'true'],
        ['lock taken', `[ -e '${db}/db.lck' ]`],
        ['old entry gone', `[ ! -e '${db}/local/slow-${from}' ]`],
        ['new entry made', `[ -d '${db}/local/slow-${to}' ]`],
        ['half unpacked', halfUnpacked(root, to)],
        ['desc written', `[ -e '${db}/local/slow-${to}/desc' ]`],
        ['files written', `[ -e '${db}/local/slow-${to}/files' ]`],
        ['after', 'after'],
      ];
    },
  },
  {
    kind: 'dpkg',
    tools: ['dpkg', 'dpkg-deb', 'dpkg-query'],
    installFlag: '-i',
    exclude: ['var/lib/clp', 'var/log/CLP.log', 'var/lib/dpkg', 'var/log/dpkg.log'],
    async prepareRoot(root) {
      for (const d of ['info', 'updates', 'triggers'])
        await mkdir(join(root, 'var/lib/dpkg', d), { recursive: true });
      await writeFile(join(root, 'var/lib/dpkg/status'), '');
      await writeFile(join(root, 'var/lib/dpkg/available'), '');
    },
    makePackage: (out, version) => makeDeb(out, 'slow', version, manyFiles(version)),
    manager: (root) => new DpkgManager(root),
    async stateAfterKill(root) {
      const r = spawnSync(
        'dpkg-query',
        [`--admindir=${join(root, 'var/lib/dpkg')}`, '-W', '-f=$' + '{Version} $' + '{Status}', 'slow'],
        { encoding: 'utf8' },
      );
      return r.stdout.replace(/ /g, '_');
    },
    databaseCheck(root) {
      const r = spawnSync('dpkg', [`--admindir=${join(root, 'var/lib/dpkg')}`, '--audit'], {
        encoding: 'utf8',
      });
      return r.stdout.trim() === '' && r.status === 0 ? '' : `dpkg --audit: ${r.stdout}${r.stderr}`;
    },
    killPoints(root, _from, to) {
      const admin = `${root}/var/lib/dpkg`;
      return [
        ['start', 'true'],
        ['status journaled', `ls '${admin}/updates' | grep -q .`],
        ['unpacking', `find '${root}/usr/share/slow' -name '*.dpkg-new' | grep -q .`],
        ['half unpacked', halfUnpacked(root, to)],
        [
          'unpacked',
          `grep -q 'Status: install reinstreq unpacked\\|Status: install ok unpacked' '${admin}/status'`,
        ],
        [
          'configuring',
          `grep -q 'Status: install ok half-configured\\|Status: install ok installed' '${admin}/status' && grep -q 'Version: ${to}' '${admin}/status'`,
        ],
        ['after', 'after'],
      ];
    },
  },
];

for (const driver of drivers) {
  const missing = driver.tools.filter((t) => !hasTool(t));
  const notRoot = process.getuid?.() !== 0;
  if (missing.length > 0) console.warn(`skipped: needs ${missing.join(', ')} (${driver.kind} crash test)`);
  if (notRoot) console.warn(`skipped: needs root (${driver.kind} crash test: the package owns root's files)`);

  describe.skipIf(missing.length > 0 || notRoot)(
    `kill -9 of clpctl and ${driver.kind} together, then recover`,
    () => {
      let work: string;
      let template: string;
      let patch: string;
      let wrapper: string;
      let v1: string;
      const version = (root: string) => driver.manager(root).installedVersion('slow');

      beforeAll(async () => {
        ensureBundle();
        work = await tempDir(`${driver.kind}-crash`);
        // The administrator's own file among the package's: no clean-up may take it for a leftover.
        template = await makeRoot({ 'etc/app.conf': 'config v1\n', 'usr/share/slow/0/notes': 'mine\n' });
        await driver.prepareRoot(template);
        const key = await trustedKey(template);
        v1 = await driver.makePackage(work, '1.0-1');
        const v2 = await driver.makePackage(work, '2.0-1');
        await driver.manager(template).installFile(v1);
        patch = await buildPatch(
          work,
          {
            name: 'CLP1251130',
            actions: [
              fileAction('replace', '/etc/app.conf', 'payload/app.conf', 'config v2\n'),
              {
                type: 'package',
                action: 'set-version',
                name: 'slow',
                version: '2.0-1',
                source: 'packages/slow',
              },
            ],
            entries: { 'payload/app.conf': 'config v2\n', 'packages/slow': { file: v2 } },
          },
          key,
        );
        wrapper = await killingWrapper(join(work, 'bin'), driver.kind, driver.installFlag);
      });

      /** Kills at each point during `command`, recovers, and checks the root and the package database. */
      async function sweep(
        label: string,
        start: string,
        command: (root: string) => string[],
        points: (root: string) => Array<[string, string]>,
        expectBefore: { snapshot: Record<string, string>; version: string; listed: string[] },
        expectAfter: { snapshot: Record<string, string>; version: string; listed: string[] },
      ): Promise<string[]> {
        const outcomes: string[] = [];
        for (const [i, [moment]] of points(start).entries()) {
          const root = join(work, `${label}-${i}`);
          copyTree(start, root);
          const [, condition] = points(root)[i] as [string, string];
          await writeFile(join(wrapper, 'kill-when'), condition);
          await rm(join(wrapper, 'killed-at'), { force: true });
          const killed = await clpctlGroup(command(root), wrapper);
          await rm(join(wrapper, 'kill-when'), { force: true });
          const where = `${label} killed at "${moment}" of ${driver.kind}`;
          expect(killed.signal, `${where}: ${killed.stderr}`).toBe('SIGKILL');
          const how = (await readFile(join(wrapper, 'killed-at'), 'utf8').catch(() => '?')).trim();
          const state = await driver.stateAfterKill(root);
          const journal = await readFile(join(root, 'var/lib/clp/journal'), 'utf8').catch(() => '');
          const recovered = clpctl(['--root', root, '--json', 'recover']);
          expect(recovered.status, `${where}: recover: ${recovered.stderr}`).toBe(0);
          const listed = (
            JSON.parse(clpctl(['--root', root, '--json', 'list']).stdout) as Array<{ name: string }>
          ).map((p) => p.name);
          const want = journal.includes('"t":"commit"') ? expectAfter : expectBefore;
          expect(await snapshotRoot(root, driver.exclude), where).toEqual(want.snapshot);
          expect(await version(root), where).toBe(want.version);
          expect(listed, where).toEqual(want.listed);
          expect(await driver.manager(root).problems('slow', want.version), where).toEqual([]);
          expect(driver.databaseCheck(root), where).toBe('');
          outcomes.push(`${moment} (${how}): ${state} -> ${JSON.parse(recovered.stdout).action}`);
          await rm(root, { recursive: true, force: true });
        }
        console.log(`${driver.kind} ${label} kill points: ${outcomes.join(' ')}`);
        return outcomes;
      }

      it(`install: as before at every point of ${driver.kind}'s run cut before the commit point, the package database clean`, async () => {
        const before = await snapshotRoot(template, driver.exclude);
        const reference = join(work, 'reference');
        copyTree(template, reference);
        const ok = clpctl(['--root', reference, 'install', patch]);
        expect(ok.status, ok.stderr).toBe(0);
        const after = await snapshotRoot(reference, driver.exclude);
        const outcomes = await sweep(
          'install',
          template,
          (root) => ['--root', root, 'install', patch],
          (root) => driver.killPoints(root, '1.0-1', '2.0-1'),
          { snapshot: before, version: '1.0-1', listed: [] },
          { snapshot: after, version: '2.0-1', listed: ['CLP1251130'] },
        );
        // The sweep must have cut the package manager half-way at least once, not only around it.
        const halfWay = driver.kind === 'pacman' ? /: half-written-entry ->/ : /: \S*(half|unpacked)\S* ->/;
        expect(
          outcomes.some((o) => halfWay.test(o)),
          outcomes.join(' '),
        ).toBe(true);
      }, 600_000);

      it(`uninstall: installed as before at every point of ${driver.kind}'s run cut before the commit point`, async () => {
        const installed = join(work, 'installed');
        copyTree(template, installed);
        expect(clpctl(['--root', installed, 'install', patch]).status).toBe(0);
        const withPatch = await snapshotRoot(installed, driver.exclude);
        const clean = await snapshotRoot(template, driver.exclude);
        await sweep(
          'uninstall',
          installed,
          (root) => ['--root', root, 'uninstall', 'CLP1251130'],
          (root) =>
            driver
              .killPoints(root, '2.0-1', '1.0-1')
              .filter(([m]) => /lock|half|desc|configuring|after/.test(m)),
          { snapshot: withPatch, version: '2.0-1', listed: ['CLP1251130'] },
          { snapshot: clean, version: '1.0-1', listed: [] },
        );
      }, 600_000);
    },
  );
}
