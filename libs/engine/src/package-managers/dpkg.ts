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
  stat,
  symlink,
  utimes,
  writeFile,
} from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { PackageError } from './errors.ts';
import { findCachedPackage, keepInstalledPackage } from './package-cache.ts';
import type { PackageFileInfo, PackageManager } from './package-manager.ts';
import { runTool, runToolRaw, runToolWaitingForLock, waitUntil } from './run-tool.ts';

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

/**
 * Whether a process holds a lock on any of these files, from /proc/locks (dpkg locks with fcntl,
 * which a process that died no longer holds). Files that do not exist are not held.
 */
async function anyLockHeld(files: string[]): Promise<boolean> {
  const inodes = new Set<string>();
  for (const f of files) {
    const st = await stat(f).catch(() => null);
    if (st) inodes.add(`${major(st.dev)}:${minor(st.dev)}:${st.ino}`);
  }
  if (inodes.size === 0) return false;
  const table = await readFile('/proc/locks', 'utf8').catch(() => '');
  for (const line of table.split('\n')) {
    // "1: POSIX  ADVISORY  WRITE 1234 fd:01:5678 0 EOF": the device is in hex.
    const m = /\s([0-9a-f]+):([0-9a-f]+):(\d+)\s/.exec(line);
    if (
      m?.[1] &&
      m[2] &&
      m[3] &&
      inodes.has(`${Number.parseInt(m[1], 16)}:${Number.parseInt(m[2], 16)}:${m[3]}`)
    )
      return true;
  }
  return false;
}

/** The major and minor numbers of a Linux dev_t. */
function major(dev: number): number {
  return Number((BigInt(dev) >> 8n) & 0xfffn) | Number((BigInt(dev) >> 32n) & ~0xfffn);
}
function minor(dev: number): number {
  return Number(BigInt(dev) & 0xffn) | Number((BigInt(dev) >> 12n) & ~0xffn);
}

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
    await this.runLocked(
      [...(await this.rootArgs()), '--force-confdef', '--force-confold', '-i', resolve(file)],
      `install ${file}`,
    );
  }

  async remove(name: string): Promise<void> {
    await this.runLocked([...(await this.rootArgs()), '--purge', name], `remove ${name}`);
  }

  async waitIdle(timeoutMs = 120_000): Promise<void> {
    const locks = [join(this.adminDir, 'lock-frontend'), join(this.adminDir, 'lock')];
    await waitUntil(
      async () => !(await anyLockHeld(locks)),
      timeoutMs,
      `dpkg is still running on ${this.root} (${locks.join(', ')} held)`,
    );
  }

  /** dpkg's locks are fcntl locks, freed when their process dies: a locked database is one in use, so wait. */
  private runLocked(args: string[], what: string): Promise<unknown> {
    return runToolWaitingForLock('dpkg', args, what, {
      isLocked: (r) =>
        /(frontend lock|database is locked|lock was locked|locked by another process)/i.test(r.stderr),
    });
  }
}
