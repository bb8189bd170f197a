import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import {
  chmod,
  copyFile,
  lchown,
  lstat,
  mkdir,
  mkdtemp,
  readdir,
  readFile,
  readlink,
  rm,
  symlink,
  utimes,
  writeFile,
} from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { EngineError } from '../errors.ts';
import { resolveUnderRoot } from '../paths.ts';
import { PackageError } from './errors.ts';
import { pathKey, pathsPresentOutside, removeUnowned } from './leftovers.ts';
import { describeHolders, type LockHolder, processesLocking } from './lock-holders.ts';
import { cachedVersionsOf, findCachedPackage, keepInstalledPackage } from './package-cache.ts';
import type { PackageFileInfo, PackageManager, RestorePlan } from './package-manager.ts';
import { runTool, runToolFailed, runToolRaw, stderrTail } from './run-tool.ts';

/** One stanza of dpkg's status file: field name → value (continuation lines joined with '\n'). */
export type ControlStanza = Map<string, string>;

/** Parses a deb822 file (dpkg's status, a control file) into stanzas, keeping field order. */
export function parseControl(text: string): ControlStanza[] {
  const stanzas: ControlStanza[] = [];
  let current: ControlStanza | null = null;
  let lastKey: string | null = null;
  for (const line of text.split('\n')) {
    if (line.trim() === '') {
      if (current && current.size > 0) stanzas.push(current);
      current = null;
      lastKey = null;
      continue;
    }
    if ((line.startsWith(' ') || line.startsWith('\t')) && current && lastKey) {
      current.set(lastKey, `${current.get(lastKey)}\n${line}`);
      continue;
    }
    const colon = line.indexOf(':');
    if (colon <= 0) continue;
    current ??= new Map();
    lastKey = line.slice(0, colon);
    current.set(lastKey, line.slice(colon + 1).trim());
  }
  if (current && current.size > 0) stanzas.push(current);
  return stanzas;
}

/** The name apt gives a cached .deb: NAME_VERSION_ARCH.deb with the epoch's ':' as %3a. */
export function debFileName(name: string, version: string, arch: string): string {
  return `${name}_${version.replace(/:/g, '%3a')}_${arch}.deb`;
}

// biome-ignore lint/suspicious/noTemplateCurlyInString: dpkg-query's own format, not a template.
const STATUS_FORMAT = '-f=${Version}\t${Status}\n';

/** Fields of the status file that describe the installation, not the package. */
const STATUS_ONLY_FIELDS = new Set(['Status', 'Conffiles', 'Config-Version']);
/** Control-area files dpkg keeps in its info folder, as dpkg-repack copies them back. */
const CONTROL_FILES = [
  'preinst',
  'postinst',
  'prerm',
  'postrm',
  'config',
  'templates',
  'triggers',
  'shlibs',
  'symbols',
];

async function md5(file: string): Promise<string> {
  const hash = createHash('md5');
  for await (const chunk of createReadStream(file)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

/**
 * dpkg against a root: `--root`, `--admindir`, `--instdir` and `--log` all point under it (for
 * `/`, dpkg's defaults). Maintainer scripts run chrooted into the root, as dpkg does by default.
 */
export class DpkgManager implements PackageManager {
  readonly kind = 'dpkg' as const;
  readonly root: string;
  readonly adminDir: string;
  readonly cacheDir: string;

  constructor(root: string) {
    this.root = resolve(root);
    this.adminDir = join(this.root, 'var/lib/dpkg');
    this.cacheDir = join(this.root, 'var/cache/apt/archives');
  }

  private async rootArgs(): Promise<string[]> {
    if (this.root === '/') return [];
    await mkdir(join(this.root, 'var/log'), { recursive: true });
    return [
      `--root=${this.root}`,
      `--admindir=${this.adminDir}`,
      `--instdir=${this.root}`,
      `--log=${join(this.root, 'var/log/dpkg.log')}`,
      // A root of one's own needs no superuser (the files are the caller's): dpkg asks for it anyway.
      ...(process.getuid?.() === 0 ? [] : ['--force-not-root']),
    ];
  }

  async installedVersion(name: string): Promise<string | null> {
    const args = [`--admindir=${this.adminDir}`, '-W', '-f=${Version}\\t${db:Status-Abbrev}\\n', '--', name];
    const result = await runToolRaw('dpkg-query', args);
    if (result.exitCode !== 0) {
      if (/no packages found/i.test(result.stderr)) return null;
      throw new PackageError(
        'CLP_E_PACKAGE_MANAGER_FAILED',
        `dpkg-query could not query package ${name} (exit ${result.exitCode}): ${result.stderr.trim()}`,
        {
          details: { tool: 'dpkg-query', args, exitCode: result.exitCode, stderrTail: result.stderr.trim() },
        },
      );
    }
    for (const line of result.stdout.split('\n')) {
      const [version, abbrev] = line.split('\t');
      // Second letter is the state: n(ot-installed) and c(onfig-files) mean the package is not there.
      const state = abbrev?.[1];
      if (version && state && state !== 'n' && state !== 'c') return version;
    }
    return null;
  }

  findInCache(name: string, version: string): Promise<string | null> {
    const prefixes = [`${name}_${version}_`, `${name}_${version.replace(/:/g, '%3a')}_`];
    return findCachedPackage(
      this,
      name,
      version,
      (e) => e.endsWith('.deb') && prefixes.some((p) => e.startsWith(p)),
    );
  }

  cachedVersions(name: string): Promise<string[]> {
    return cachedVersionsOf(this, name, (e) => e.startsWith(`${name}_`) && e.endsWith('.deb'));
  }

  keepInstalledVersion(name: string, destDir: string): Promise<string | null> {
    return keepInstalledPackage(this, name, destDir, (n, v, d) => this.repack(n, v, d));
  }

  /**
   * Rebuilds the installed package into a .deb from dpkg's database, as dpkg-repack does: the
   * control fields from the status file, the maintainer scripts and conffiles list from the info
   * folder, and the files (content, mode, owner) as they are on disk now. Returns null when that
   * cannot be done faithfully: a listed file is missing or diverted.
   */
  private async repack(name: string, version: string, destDir: string): Promise<string | null> {
    const status = parseControl(await readFile(join(this.adminDir, 'status'), 'utf8'));
    const stanza = status.find(
      (s) =>
        s.get('Package') === name &&
        s.get('Version') === version &&
        /\binstalled$/.test(s.get('Status') ?? ''),
    );
    if (!stanza) return null;
    const arch = stanza.get('Architecture') ?? 'all';
    const infoDir = join(this.adminDir, 'info');
    const infoFiles = await readdir(infoDir).catch(() => [] as string[]);
    const base = infoFiles.includes(`${name}:${arch}.list`) ? `${name}:${arch}` : name;
    const listText = await readFile(join(infoDir, `${base}.list`), 'utf8').catch(() => null);
    if (listText === null) return null;
    const paths = listText.split('\n').filter((p) => p !== '' && p !== '/.');

    const conffiles = new Set<string>();
    const conffilesText = await readFile(join(infoDir, `${base}.conffiles`), 'utf8').catch(() => '');
    for (const line of conffilesText.split('\n')) {
      const [path, flag] = line.trim().split(/\s+/);
      if (path && flag !== 'remove-on-upgrade') conffiles.add(path);
    }
    const diverted = new Set<string>();
    const diversions = (await readFile(join(this.adminDir, 'diversions'), 'utf8').catch(() => '')).split(
      '\n',
    );
    for (let i = 0; i + 2 < diversions.length; i += 3) {
      if (diversions[i + 2] !== name) diverted.add(diversions[i] ?? '');
    }

    const work = await mkdtemp(join(destDir, `.repack-${name}-`));
    try {
      const tree = join(work, 'tree');
      await mkdir(join(tree, 'DEBIAN'), { recursive: true });
      const md5sums: string[] = [];
      const keptConffiles: string[] = [];
      for (const path of paths) {
        if (diverted.has(path)) return null;
        const source = join(this.root, path);
        const target = join(tree, path);
        const st = await lstat(source).catch(() => null);
        if (st === null) {
          // A conffile the administrator deleted is a state dpkg itself accepts; any other gap is not.
          if (conffiles.has(path)) continue;
          return null;
        }
        if (st.isDirectory()) {
          await mkdir(target, { recursive: true });
        } else if (st.isSymbolicLink()) {
          await symlink(await readlink(source), target);
        } else if (st.isFile()) {
          await copyFile(source, target);
          if (conffiles.has(path)) keptConffiles.push(path);
          else md5sums.push(`${await md5(source)}  ${path.slice(1)}`);
        } else {
          return null;
        }
        await lchown(target, st.uid, st.gid);
        if (!st.isSymbolicLink()) {
          await chmod(target, st.mode & 0o7777);
          await utimes(target, st.atime, st.mtime);
        }
      }
      const control = [...stanza].filter(([k]) => !STATUS_ONLY_FIELDS.has(k)).map(([k, v]) => `${k}: ${v}\n`);
      await writeFile(join(tree, 'DEBIAN/control'), control.join(''));
      if (keptConffiles.length > 0)
        await writeFile(join(tree, 'DEBIAN/conffiles'), `${keptConffiles.join('\n')}\n`);
      if (md5sums.length > 0) await writeFile(join(tree, 'DEBIAN/md5sums'), `${md5sums.join('\n')}\n`);
      for (const script of CONTROL_FILES) {
        const from = join(infoDir, `${base}.${script}`);
        const st = await lstat(from).catch(() => null);
        if (st?.isFile()) {
          await copyFile(from, join(tree, 'DEBIAN', script));
          await chmod(join(tree, 'DEBIAN', script), st.mode & 0o777);
        }
      }
      const out = join(destDir, debFileName(name, version, arch));
      await runTool(
        'dpkg-deb',
        ['-Zgzip', '-z1', '--build', tree, out],
        `rebuild the installed ${name} ${version}`,
      );
      return out;
    } finally {
      await rm(work, { recursive: true, force: true });
    }
  }

  async inspectFile(file: string): Promise<PackageFileInfo> {
    const { stdout } = await runTool(
      'dpkg-deb',
      ['-f', file, 'Package', 'Version', 'Architecture'],
      `read the control file of ${file}`,
    );
    const [stanza] = parseControl(stdout);
    const name = stanza?.get('Package');
    const version = stanza?.get('Version');
    const arch = stanza?.get('Architecture');
    if (!name || !version || !arch) {
      throw new PackageError(
        'CLP_E_PACKAGE_MANAGER_FAILED',
        `${file} is not a Debian package: its control file lacks Package, Version or Architecture`,
        {
          details: { file },
        },
      );
    }
    return { name, version, arch };
  }

  async installFile(file: string): Promise<void> {
    // confdef/confold: never stop at a conffile prompt (there is no terminal); keep the admin's edits.
    // A package left half-installed by a killed dpkg needs nothing more: `dpkg -i` finishes over it.
    await this.run(
      [...(await this.rootArgs()), '--force-confdef', '--force-confold', '-i', resolve(file)],
      `install ${file}`,
    );
  }

  async remove(name: string): Promise<void> {
    await this.run([...(await this.rootArgs()), '--purge', name], `remove ${name}`);
  }

  /** Runs dpkg; a database locked by another process is CLP_E_BUSY, not a failure of the patch. */
  private async run(args: string[], what: string): Promise<void> {
    const result = await runToolRaw('dpkg', args);
    if (result.exitCode === 0) return;
    if (/(frontend lock|database is locked|lock was locked|locked by another process)/i.test(result.stderr))
      throw this.busy(await this.lockHolders());
    runToolFailed('dpkg', args, what, result);
  }

  private get lockFiles(): string[] {
    return [join(this.adminDir, 'lock-frontend'), join(this.adminDir, 'lock')];
  }

  /** dpkg's and apt's locks are fcntl locks, freed when their process dies: a held one is in use. */
  private lockHolders(): Promise<LockHolder[]> {
    return processesLocking(this.lockFiles);
  }

  private busy(holders: LockHolder[], waitedMs?: number): EngineError {
    const who = holders.length > 0 ? describeHolders(holders) : 'a process that has finished since';
    return new EngineError(
      'CLP_E_BUSY',
      `the dpkg database of ${this.root} is in use (${this.lockFiles.join(', ')} held by ${who})${waitedMs === undefined ? '' : ` after waiting ${Math.round(waitedMs / 1000)} s`}; nothing was changed by clpctl: try again when it is done`,
      { details: { locks: this.lockFiles, holders } },
    );
  }

  async ensureIdle(): Promise<void> {
    const holders = await this.lockHolders();
    if (holders.length > 0) throw this.busy(holders);
  }

  async settle(_since: number, _log: (line: string) => void, timeoutMs = 120_000): Promise<void> {
    // No lock of dpkg outlives its process, so there is never one to clear: only one to wait for.
    const started = Date.now();
    for (let delay = 50; ; delay = Math.min(delay * 2, 1_000)) {
      const holders = await this.lockHolders();
      if (holders.length === 0) return;
      if (Date.now() - started > timeoutMs) throw this.busy(holders, Date.now() - started);
      await new Promise((r) => setTimeout(r, delay));
    }
  }

  /** The package's `${Version}` and `${Status}` in dpkg's database; null when dpkg does not know it. */
  private async statusOf(name: string): Promise<{ version: string; status: string } | null> {
    const args = [`--admindir=${this.adminDir}`, '-W', STATUS_FORMAT, '--', name];
    const result = await runToolRaw('dpkg-query', args);
    if (result.exitCode !== 0) {
      if (/no packages found/i.test(result.stderr)) return null;
      runToolFailed('dpkg-query', args, `query package ${name}`, result);
    }
    const [version, status] = (result.stdout.split('\n')[0] ?? '').split('\t');
    return { version: version ?? '', status: status ?? '' };
  }

  async problems(name: string, version: string | null): Promise<string[]> {
    const found: string[] = [];
    const now = await this.statusOf(name);
    const absent = now === null || /\b(not-installed|config-files)$/.test(now.status);
    if (version === null) {
      if (!absent) found.push(`${name} ${now?.version} is "${now?.status}", not removed`);
    } else if (absent || now?.status !== 'install ok installed' || now.version !== version) {
      found.push(
        `${name} is ${now === null ? 'unknown to dpkg' : `${now.version} "${now.status}"`}, not ${version} "install ok installed"`,
      );
    }
    const audit = await runToolRaw('dpkg', [`--admindir=${this.adminDir}`, '--audit', name]);
    if (audit.stdout.trim() !== '') found.push(`dpkg --audit ${name}: ${stderrTail(audit.stdout, 6)}`);
    if (!absent) {
      const unpacked = await this.unfinishedFiles(name);
      if (unpacked.length > 0)
        found.push(
          `${unpacked.length} file(s) of an unfinished unpack, e.g. ${unpacked.slice(0, 3).join(', ')}`,
        );
    }
    return found;
  }

  /** .dpkg-new and .dpkg-tmp files beside the package's files: an unpack that did not finish. */
  private async unfinishedFiles(name: string): Promise<string[]> {
    const out: string[] = [];
    for (const path of await this.ownedPaths(name)) {
      for (const suffix of ['.dpkg-new', '.dpkg-tmp']) {
        const real = await resolveUnderRoot(this.root, `/${path}${suffix}`).catch(() => null);
        if (real !== null && (await lstat(real).catch(() => null)) !== null) out.push(`/${path}${suffix}`);
      }
    }
    return out;
  }

  /** The paths a package file installs, relative to the root; folders end with '/'. */
  private async listFiles(file: string): Promise<string[]> {
    const { stdout } = await runTool('dpkg-deb', ['--contents', file], `list the files of ${file}`);
    const paths: string[] = [];
    for (const line of stdout.split('\n')) {
      // "drwxr-xr-x root/root 0 2025-01-01 10:00 ./usr/share/", links with " -> target".
      const m = /^(\S)\S*\s+\S+\s+\d+\s+\S+\s+\S+\s+(.*)$/.exec(line);
      if (!m?.[2]) continue;
      const path =
        m[1] === 'l' ? m[2].replace(/ -> .*$/, '') : m[1] === 'h' ? m[2].replace(/ link to .*$/, '') : m[2];
      const rel = path.replace(/^\.\//, '');
      if (rel !== '') paths.push(rel);
    }
    return paths;
  }

  /** The .list files of `name` in dpkg's info folder (NAME.list, or NAME:ARCH.list for multiarch). */
  private async listsOf(name: string | null): Promise<string[]> {
    const infoDir = join(this.adminDir, 'info');
    const lists = (await readdir(infoDir).catch(() => [] as string[])).filter((f) => f.endsWith('.list'));
    if (name === null) return lists.map((f) => join(infoDir, f));
    return lists.filter((f) => f === `${name}.list` || f.startsWith(`${name}:`)).map((f) => join(infoDir, f));
  }

  /** The paths the .list files of `name` (every package: null) name, by pathKey. */
  private async ownedPaths(name: string | null): Promise<Set<string>> {
    const owned = new Set<string>();
    for (const list of await this.listsOf(name))
      for (const p of (await readFile(list, 'utf8').catch(() => '')).split('\n'))
        if (p !== '' && p !== '/.') owned.add(pathKey(p));
    return owned;
  }

  async pathsToKeep(name: string, files: ReadonlyArray<string | null>): Promise<string[]> {
    const ownedBefore =
      (await this.installedVersion(name)) === null ? new Set<string>() : await this.ownedPaths(name);
    const paths: string[] = [];
    for (const file of files) if (file !== null) paths.push(...(await this.unpackPaths(file)));
    return pathsPresentOutside(this.root, paths, ownedBefore);
  }

  /** The paths of a package file and the names dpkg unpacks its files under first (.dpkg-new, .dpkg-tmp). */
  private async unpackPaths(file: string): Promise<string[]> {
    return (await this.listFiles(file)).flatMap((p) =>
      p.endsWith('/') ? [p] : [p, `${p}.dpkg-new`, `${p}.dpkg-tmp`],
    );
  }

  /**
   * After dpkg has put the package back: files of the cut step that no package lists and that
   * were not there before (dpkg loses those it had renamed into place when it was killed before
   * writing the new file list).
   */
  private async removeLeftovers(plan: RestorePlan, log: (line: string) => void): Promise<void> {
    if (plan.stepFile === null) return;
    const keep = new Set(plan.keepPaths.map(pathKey));
    const candidates: string[] = [];
    for (const file of [plan.stepFile, plan.keptFile])
      if (file !== null)
        for (const p of await this.unpackPaths(file)) if (!keep.has(pathKey(p))) candidates.push(p);
    const owned = await this.ownedPaths(null);
    const removed = await removeUnowned(this.root, candidates, owned);
    if (removed > 0)
      log(`dpkg: removed ${removed} file(s) of ${plan.name} that the cut step left listed by no package`);
  }

  async restore(plan: RestorePlan, log: (line: string) => void): Promise<void> {
    const wrong = await this.problems(plan.name, plan.version);
    if (wrong.length > 0) {
      log(`dpkg: ${plan.name} is not as before (${wrong.join('; ')}); putting it back`);
      if (plan.version !== null) {
        // dpkg -i over a half-installed or unpacked package finishes it and replaces its files.
        await this.installFile(plan.keptFile as string);
      } else {
        const now = await this.statusOf(plan.name);
        // dpkg will not remove a package it left half-installed ("reinstall it first"): finish it, then purge.
        if (now !== null && now.status !== 'install ok installed' && plan.stepFile !== null)
          await this.installFile(plan.stepFile);
        await this.remove(plan.name);
      }
    }
    await this.removeLeftovers(plan, log);
  }
}
