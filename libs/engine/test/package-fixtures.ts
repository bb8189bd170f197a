/** Builders for real pacman and dpkg packages and empty roots, used by the package tests. */
import { execFileSync, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmod, mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';

export function hasTool(tool: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${tool}`], { stdio: 'ignore' }).status === 0;
}

/** Files of a test package: path (relative, no leading /) → content, with an optional mode. */
export type PackageFiles = Record<string, string | { content: string; mode: number }>;

async function writeTree(dir: string, files: PackageFiles): Promise<number> {
  let size = 0;
  for (const [path, spec] of Object.entries(files)) {
    const { content, mode } = typeof spec === 'string' ? { content: spec, mode: 0o644 } : spec;
    const file = join(dir, path);
    await mkdir(dirname(file), { recursive: true });
    await writeFile(file, content);
    await chmod(file, mode);
    size += Buffer.byteLength(content);
  }
  return size;
}

export async function tempDir(prefix: string): Promise<string> {
  return mkdtemp(join(tmpdir(), `clp-${prefix}-`));
}

/** A pacman package NAME-VERSION-any.pkg.tar.zst built with bsdtar, as makepkg lays it out. */
export async function makePacmanPackage(
  outDir: string,
  name: string,
  version: string,
  files: PackageFiles,
  options: { backup?: string[] } = {},
): Promise<string> {
  const work = await mkdtemp(join(outDir, '.build-'));
  const size = await writeTree(work, files);
  const info = [
    `pkgname = ${name}`,
    `pkgbase = ${name}`,
    `pkgver = ${version}`,
    `pkgdesc = test package ${name}`,
    'url = https://example.invalid/',
    'builddate = 1700000000',
    'packager = Test <test@example.invalid>',
    `size = ${size}`,
    'arch = any',
    ...(options.backup ?? []).map((b) => `backup = ${b}`),
    '',
  ].join('\n');
  await writeFile(join(work, '.PKGINFO'), info);
  const top = [...new Set(Object.keys(files).map((p) => p.split('/')[0] ?? p))];
  const out = join(outDir, `${name}-${version}-any.pkg.tar.zst`);
  execFileSync('bsdtar', ['--zstd', '-cf', out, '.PKGINFO', ...top], { cwd: work });
  await rm(work, { recursive: true, force: true });
  return out;
}

/** A Debian package NAME_VERSION_all.deb built with dpkg-deb. */
export async function makeDeb(
  outDir: string,
  name: string,
  version: string,
  files: PackageFiles,
  options: { conffiles?: string[] } = {},
): Promise<string> {
  const work = await mkdtemp(join(outDir, '.build-'));
  await writeTree(work, files);
  await mkdir(join(work, 'DEBIAN'));
  await writeFile(
    join(work, 'DEBIAN/control'),
    `Package: ${name}\nVersion: ${version}\nArchitecture: all\nMaintainer: Test <test@example.invalid>\nDescription: test package ${name}\n`,
  );
  if (options.conffiles?.length)
    await writeFile(join(work, 'DEBIAN/conffiles'), `${options.conffiles.join('\n')}\n`);
  const out = join(outDir, `${name}_${version}_all.deb`);
  execFileSync('dpkg-deb', ['--root-owner-group', '-Zgzip', '--build', work, out], { stdio: 'ignore' });
  await rm(work, { recursive: true, force: true });
  return out;
}

/** An empty root pacman can install into. */
export async function makePacmanRoot(): Promise<string> {
  const root = await tempDir('pacman-root');
  await mkdir(join(root, 'var/lib/pacman'), { recursive: true });
  return root;
}

/** An empty root dpkg can install into. */
export async function makeDpkgRoot(): Promise<string> {
  const root = await tempDir('dpkg-root');
  for (const d of ['info', 'updates', 'triggers'])
    await mkdir(join(root, 'var/lib/dpkg', d), { recursive: true });
  await writeFile(join(root, 'var/lib/dpkg/status'), '');
  await writeFile(join(root, 'var/lib/dpkg/available'), '');
  return root;
}

/** Cuts the last `bytes` off a file, leaving its head (and so its metadata) readable. */
export async function truncateTail(file: string, bytes: number): Promise<void> {
  const data = await readFile(file);
  await writeFile(file, data.subarray(0, data.length - bytes));
}

/** sha256 of every regular file under dir/sub (path → hash, mode), to show that nothing changed. */
export async function snapshot(dir: string, subs: string[]): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  async function walk(path: string): Promise<void> {
    const st = await stat(path).catch(() => null);
    if (!st) return;
    if (st.isDirectory()) {
      for (const e of (await readdir(path)).sort()) await walk(join(path, e));
    } else {
      out[path.slice(dir.length)] = `${createHash('sha256')
        .update(await readFile(path))
        .digest('hex')} ${(st.mode & 0o7777).toString(8)} ${st.uid}:${st.gid}`;
    }
  }
  for (const s of subs) await walk(join(dir, s));
  return out;
}
