// Builds a .deb with dpkg-deb from a staged tree: the files with their modes, DEBIAN/ with the
// control file, conffiles, maintainer scripts and md5sums. Owners are root (--root-owner-group).
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmod, cp, mkdir, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { dirname, join, relative } from 'node:path';
import { gzipSync } from 'node:zlib';

export const DEB_ARCH = { x86_64: 'amd64', aarch64: 'arm64' };

/** Installs FROM at PATH inside the staged tree with MODE, like install(1) -Dm. */
export async function put(tree, path, from, mode) {
  const target = join(tree, path);
  await mkdir(dirname(target), { recursive: true });
  await cp(from, target, { recursive: true, dereference: true });
  await chmod(target, mode);
}

export async function dir(tree, path, mode) {
  await mkdir(join(tree, path), { recursive: true });
  await chmod(join(tree, path), mode);
}

/** gzip -9n: what Debian expects for man pages and changelogs (no name or time in the header). */
export async function putGzipped(tree, path, from) {
  const target = join(tree, path);
  await mkdir(dirname(target), { recursive: true });
  await writeFile(target, gzipSync(await readFile(from), { level: 9 }));
  await chmod(target, 0o644);
}

async function files(tree) {
  const out = [];
  for (const entry of await readdir(tree, { recursive: true, withFileTypes: true })) {
    const path = join(entry.parentPath, entry.name);
    if (entry.isFile() && !relative(tree, path).startsWith('DEBIAN')) out.push(path);
  }
  return out.sort();
}

async function installedSizeKiB(tree) {
  let bytes = 0;
  for (const file of await files(tree)) bytes += Math.ceil((await stat(file)).size / 1024) * 1024;
  return Math.ceil(bytes / 1024);
}

function debianChangelog(name, version, date) {
  return `${name} (${version}) unstable; urgency=medium

  * Release ${version}: see the project's README for what it contains.

 -- Core LivePatch release team <release@core-livepatch.org>  ${date}
`;
}

/**
 * Writes OUT from the staged TREE. CONTROL_DIR holds control (with @VERSION@, @ARCH@ and
 * @INSTALLED_SIZE@), conffiles, and the maintainer scripts.
 */
export async function buildDeb({ tree, controlDir, name, version, arch, out, copyright, overrides }) {
  const doc = `usr/share/doc/${name}`;
  await put(tree, `${doc}/copyright`, copyright, 0o644);
  const changelog = join(tree, `${doc}/changelog.gz`);
  // A fixed date keeps the package the same from the same sources.
  await writeFile(
    changelog,
    gzipSync(Buffer.from(debianChangelog(name, version, 'Mon, 01 Dec 2025 12:00:00 +0000')), { level: 9 }),
  );
  await chmod(changelog, 0o644);
  if (overrides) await put(tree, `usr/share/lintian/overrides/${name}`, overrides, 0o644);
  const debian = join(tree, 'DEBIAN');
  await rm(debian, { recursive: true, force: true });
  await mkdir(debian, { mode: 0o755 });
  const control = (await readFile(join(controlDir, 'control'), 'utf8'))
    .replaceAll('@VERSION@', version)
    .replaceAll('@ARCH@', DEB_ARCH[arch])
    .replaceAll('@INSTALLED_SIZE@', String(await installedSizeKiB(tree)));
  await writeFile(join(debian, 'control'), control);
  await chmod(join(debian, 'control'), 0o644);
  for (const [file, mode] of [
    ['conffiles', 0o644],
    ['postinst', 0o755],
    ['prerm', 0o755],
    ['postrm', 0o755],
  ]) {
    await cp(join(controlDir, file), join(debian, file));
    await chmod(join(debian, file), mode);
  }
  const sums = [];
  for (const file of await files(tree)) {
    sums.push(
      `${createHash('md5')
        .update(await readFile(file))
        .digest('hex')}  ${relative(tree, file)}`,
    );
  }
  await writeFile(join(debian, 'md5sums'), `${sums.join('\n')}\n`);
  await chmod(join(debian, 'md5sums'), 0o644);
  await mkdir(dirname(out), { recursive: true });
  // xz -0: a twentieth of the CPU time of the default preset for 10 % more size (the Node.js runtime is most of it).
  execFileSync('dpkg-deb', ['--root-owner-group', '-Zxz', '-z0', '--build', tree, out], {
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  return out;
}
