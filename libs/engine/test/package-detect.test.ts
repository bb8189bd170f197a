import { mkdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { detectPackageManager } from '../src/package-managers/detect.ts';
import { tempDir } from './package-fixtures.ts';

describe('choosing the package manager of a root', () => {
  let root: string;
  beforeEach(async () => {
    root = await tempDir('detect');
  });
  afterEach(async () => {
    await rm(root, { recursive: true, force: true });
  });

  it('follows os-release: an Arch-like system uses pacman even when a dpkg database exists', async () => {
    await mkdir(join(root, 'etc'), { recursive: true });
    await mkdir(join(root, 'var/lib/dpkg'), { recursive: true });
    await writeFile(join(root, 'etc/os-release'), 'NAME="Vincent OS"\nID=vincent\nID_LIKE="arch"\n');
    expect((await detectPackageManager(root)).kind).toBe('pacman');
  });

  it('follows os-release: Debian uses dpkg even when pacman is installed with its own database', async () => {
    await mkdir(join(root, 'usr/lib'), { recursive: true });
    await mkdir(join(root, 'var/lib/pacman'), { recursive: true });
    await writeFile(join(root, 'usr/lib/os-release'), 'PRETTY_NAME="Debian GNU/Linux 12"\nID=debian\n');
    expect((await detectPackageManager(root)).kind).toBe('dpkg');
  });

  it('falls back to whichever package database the root has', async () => {
    await mkdir(join(root, 'var/lib/pacman'), { recursive: true });
    expect((await detectPackageManager(root)).kind).toBe('pacman');
  });

  it('an explicit choice wins, and an unknown one is a coded error', async () => {
    expect((await detectPackageManager(root, 'dpkg')).kind).toBe('dpkg');
    await expect(detectPackageManager(root, 'rpm')).rejects.toMatchObject({
      code: 'CLP_E_NO_PACKAGE_MANAGER',
    });
  });

  it('a root with no package database and no os-release is a coded error naming the option', async () => {
    const error = await detectPackageManager(root).catch((e: unknown) => e);
    expect(error).toMatchObject({ code: 'CLP_E_NO_PACKAGE_MANAGER' });
    expect((error as Error).message).toContain('--package-manager');
  });
});
