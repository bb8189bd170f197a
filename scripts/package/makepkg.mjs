// Builds a .pkg.tar.zst with makepkg from a PKGBUILD, running package() only (-R): the files
// were built before. makepkg refuses to run as root, so as root it runs as 'nobody' on a copy
// of what the PKGBUILD reads, in a folder that user owns.
import { execFileSync } from 'node:child_process';
import { chown, cp, mkdir, mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const NOBODY = 65534;

async function chownTree(dir, uid, gid) {
  await chown(dir, uid, gid);
  for (const entry of await readdir(dir, { recursive: true })) await chown(join(dir, entry), uid, gid);
}

/**
 * PKGBUILD is relative to the checkout (e.g. packaging/PKGBUILD); INPUTS are the checkout's
 * paths its package() reads. Returns the package file, moved into OUT_DIR.
 */
export async function buildArchPackage({ root, pkgbuild, inputs, arch, outDir }) {
  const work = await mkdtemp(join(tmpdir(), 'clp-makepkg-'));
  try {
    const checkout = join(work, 'checkout');
    for (const input of [...new Set([pkgbuild.replace(/\/[^/]+$/, ''), ...inputs])]) {
      await cp(join(root, input), join(checkout, input), { recursive: true, dereference: true });
    }
    for (const folder of ['build', 'out', 'src', 'home']) await mkdir(join(work, folder));
    const asRoot = process.getuid?.() === 0;
    if (asRoot) await chownTree(work, NOBODY, NOBODY);
    const env = {
      PATH: process.env.PATH ?? '/usr/bin:/bin',
      HOME: join(work, 'home'),
      BUILDDIR: join(work, 'build'),
      PKGDEST: join(work, 'out'),
      SRCDEST: join(work, 'src'),
      PKGEXT: '.pkg.tar.zst',
      CARCH: arch,
      PACKAGER: 'Core LivePatch release team <release@core-livepatch.org>',
      SOURCE_DATE_EPOCH: '1764590400',
      LC_ALL: 'C',
    };
    const makepkg = ['makepkg', '--repackage', '--nodeps', '--noconfirm', '--nocolor', '-p', 'PKGBUILD'];
    const command = asRoot
      ? ['setpriv', '--reuid=nobody', '--regid=nogroup', '--clear-groups', ...makepkg]
      : makepkg;
    const cwd = join(checkout, pkgbuild.replace(/\/[^/]+$/, ''));
    try {
      execFileSync(command[0], command.slice(1), { cwd, env, stdio: ['ignore', 'pipe', 'pipe'] });
    } catch (error) {
      throw new Error(`makepkg failed for ${pkgbuild}:\n${error.stdout ?? ''}${error.stderr ?? ''}`);
    }
    const [made] = await readdir(join(work, 'out'));
    if (!made) throw new Error(`makepkg made no package for ${pkgbuild}`);
    await mkdir(outDir, { recursive: true });
    await cp(join(work, 'out', made), join(outDir, made));
    await chown(join(outDir, made), process.getuid?.() ?? 0, process.getgid?.() ?? 0);
    return join(outDir, made);
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}
