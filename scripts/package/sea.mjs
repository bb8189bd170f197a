// Builds clpctl as one executable that needs no Node.js on the machine: a Node single executable
// application (SEA). The agent is bundled into one CommonJS file (a SEA runs its main script as
// CommonJS and can require only Node's built-in modules, so every npm package is inside), a blob
// with a V8 startup snapshot is made from it, and the blob is injected into a copy of the Node 24 binary.
// The result is cached by content: the same bundle and the same Node binary give the same file.
// Node warns while building the snapshot that node:child_process is not verified in snapshots;
// the engine's use of it (flock, package managers, scripts) is tested on the packaged executable.
import { execFileSync, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmod, copyFile, mkdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { build } from 'esbuild';
import { inject } from 'postject';

const ROOT = resolve(import.meta.dirname, '../..');
/** Fixed by Node: the fuse a SEA flips so that the binary runs its blob instead of the command line. */
const SEA_FUSE = 'NODE_SEA_FUSE_fce680ab2cc467b6e072b8b5df1996b2';

async function sha256(file) {
  return createHash('sha256')
    .update(await readFile(file))
    .digest('hex');
}

async function exists(file) {
  try {
    await stat(file);
    return true;
  } catch {
    return false;
  }
}

/** The CommonJS bundle every architecture's SEA runs (platform independent). */
export async function bundleForSea(outDir) {
  await mkdir(outDir, { recursive: true });
  const outfile = join(outDir, 'clpctl.cjs');
  await build({
    entryPoints: [join(ROOT, 'apps/agent/src/main.ts')],
    outfile,
    bundle: true,
    platform: 'node',
    format: 'cjs',
    target: 'node24',
    minify: true,
    // Error classes are named in messages and --json output.
    keepNames: true,
    legalComments: 'none',
    logLevel: 'warning',
  });
  // A SEA's main script has no loader for import(): esbuild inlines imports of the program's own
  // modules, but an import() of a built-in stays and fails at run time (require it instead).
  const dynamic = /(?<![\w$.])import\(\s*["'`]([^"'`]+)/.exec(await readFile(outfile, 'utf8'));
  if (dynamic) {
    throw new Error(
      `the agent bundle still has import("${dynamic[1]}"), which a single executable cannot load; import it statically`,
    );
  }
  return outfile;
}

/**
 * Makes OUT_DIR/clpctl from the bundle and the Node binary NODE_BINARY (the build's own for
 * x86_64; another architecture's binary cannot make its own snapshot here, so it gets none).
 */
export async function buildSea({ bundle, nodeBinary, outDir, snapshot }) {
  await mkdir(outDir, { recursive: true });
  const output = join(outDir, 'clpctl');
  const key = createHash('sha256')
    .update(`${await sha256(bundle)} ${await sha256(nodeBinary)} snapshot=${snapshot} v2`)
    .digest('hex');
  const stamp = join(outDir, 'clpctl.build-key');
  if ((await exists(output)) && (await exists(stamp)) && (await readFile(stamp, 'utf8')) === key) {
    return { output, cached: true };
  }
  const blob = join(outDir, 'clpctl.blob');
  const config = join(outDir, 'sea-config.json');
  await writeFile(
    config,
    JSON.stringify({
      main: bundle,
      output: blob,
      disableExperimentalSEAWarning: true,
      // A V8 startup snapshot: every module of the bundle (zod's schemas, the command tree's
      // modules) is evaluated once here, and clpctl starts from that heap instead of running
      // 1 MB of JavaScript at each start. The snapshot is made by the Node that will run it, so
      // another architecture's executable gets none.
      useSnapshot: snapshot,
    }),
  );
  // The blob is made by the Node that will run it when it can: the snapshot is V8-version bound.
  const made = spawnSync(snapshot ? nodeBinary : process.execPath, ['--experimental-sea-config', config], {
    encoding: 'utf8',
  });
  if (made.status !== 0) throw new Error(`the SEA blob could not be made:\n${made.stdout}${made.stderr}`);
  const work = `${output}.tmp`;
  await rm(work, { force: true });
  // Debug symbols are a fifth of the binary and nothing at run time needs them.
  try {
    execFileSync('strip', ['--strip-all', '-o', work, nodeBinary], { stdio: 'ignore' });
  } catch {
    await copyFile(nodeBinary, work);
  }
  await inject(work, 'NODE_SEA_BLOB', await readFile(blob), { sentinelFuse: SEA_FUSE });
  await chmod(work, 0o755);
  await rename(work, output);
  await rm(blob, { force: true });
  await writeFile(stamp, key);
  return { output, cached: false };
}
