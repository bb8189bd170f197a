// The files the packages are made of, built once into dist/build/ for one architecture:
//   agent-ARCH/clpctl and agent-ARCH/share/ (man pages, completions)
//   server-ARCH/node, dist/server.mjs, migrations/, console/, node_modules/@electric-sql/pglite/
import { execFileSync } from 'node:child_process';
import { cp, mkdir, readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { build } from 'esbuild';
import { isNativeArch, nodeBinary } from './node-binary.mjs';
import { buildSea, bundleForSea } from './sea.mjs';

const requireShim =
  "import { createRequire as __clpCreateRequire } from 'node:module';\nconst require = __clpCreateRequire(import.meta.url);";

async function writeDocs(root, shareDir) {
  const script = join(root, 'dist/build/write-docs.mjs');
  await build({
    entryPoints: [join(root, 'apps/agent/src/docs/write-docs-main.ts')],
    outfile: script,
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node24',
    banner: { js: requireShim },
    logLevel: 'warning',
  });
  await rm(shareDir, { recursive: true, force: true });
  execFileSync(process.execPath, [script, shareDir], { stdio: ['ignore', 'ignore', 'inherit'] });
}

export async function agentFiles(root, arch) {
  const dir = join(root, `dist/build/agent-${arch}`);
  const bundle = await bundleForSea(join(root, 'dist/build/sea'));
  // Another architecture's Node cannot run here to make its startup snapshot: that SEA starts slower.
  const sea = await buildSea({
    bundle,
    nodeBinary: await nodeBinary(root, arch),
    outDir: join(root, `dist/build/sea-${arch}`),
    snapshot: isNativeArch(arch),
  });
  await mkdir(dir, { recursive: true });
  await cp(sea.output, join(dir, 'clpctl'));
  await writeDocs(root, join(dir, 'share'));
  return { dir, seaCached: sea.cached };
}

async function withoutSourceMaps(dir) {
  for (const entry of await readdir(dir, { recursive: true, withFileTypes: true })) {
    if (entry.isFile() && entry.name.endsWith('.map')) await rm(join(entry.parentPath, entry.name));
  }
}

export async function serverFiles(root, arch) {
  const dir = join(root, `dist/build/server-${arch}`);
  await rm(dir, { recursive: true, force: true });
  await mkdir(join(dir, 'dist'), { recursive: true });
  // Every npm package inside the bundle but PGlite, which reads its WebAssembly and data files
  // from its own folder; pg-native is pg's optional C binding, never installed.
  await build({
    entryPoints: [join(root, 'apps/server/src/main.ts')],
    outfile: join(dir, 'dist/server.mjs'),
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node24',
    banner: { js: requireShim },
    external: ['@electric-sql/pglite', '@electric-sql/pglite/*', 'pg-native'],
    legalComments: 'none',
    logLevel: 'warning',
  });
  await cp(join(root, 'node_modules/@electric-sql/pglite'), join(dir, 'node_modules/@electric-sql/pglite'), {
    recursive: true,
    dereference: true,
  });
  await withoutSourceMaps(join(dir, 'node_modules'));
  // Found by the bundle as ../migrations (see db/src/database.ts).
  await cp(join(root, 'db/migrations'), join(dir, 'migrations'), { recursive: true });
  // The console, built by scripts/build.mjs; found by the bundle as ../console (see config.ts).
  await cp(join(root, 'apps/console/dist'), join(dir, 'console'), { recursive: true });
  await withoutSourceMaps(join(dir, 'console'));
  try {
    execFileSync('strip', ['--strip-all', '-o', join(dir, 'node'), await nodeBinary(root, arch)], {
      stdio: 'ignore',
    });
  } catch {
    await cp(await nodeBinary(root, arch), join(dir, 'node'));
  }
  return { dir };
}
