// The Node.js 24 binary a package carries: the build's own (the npm 'node' package) for the
// machine's architecture, or the same version for another architecture from the npm registry's
// node-linux-ARCH package (fetched with npm itself; no other download).
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';

const NPM_ARCH = { x86_64: 'x64', aarch64: 'arm64' };
const MACHINE = { x64: 'x86_64', arm64: 'aarch64' }[process.arch];

export const ARCHES = Object.keys(NPM_ARCH);

export function isNativeArch(arch) {
  return arch === MACHINE;
}

export async function nodeBinary(root, arch) {
  if (!NPM_ARCH[arch]) throw new Error(`unknown architecture ${arch}; known: ${ARCHES.join(', ')}`);
  if (isNativeArch(arch)) return process.execPath;
  const version = process.versions.node;
  const dir = join(root, 'dist/cache', `node-linux-${NPM_ARCH[arch]}-${version}`);
  const binary = join(dir, 'package/bin/node');
  if (existsSync(binary)) return binary;
  await mkdir(dir, { recursive: true });
  const tarball = execFileSync(
    'npm',
    ['pack', '--silent', `node-linux-${NPM_ARCH[arch]}@${version}`, '--pack-destination', dir],
    { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] },
  ).trim();
  execFileSync('tar', ['-xzf', join(dir, tarball), '-C', dir, 'package/bin/node']);
  return binary;
}
