// Bundles the two programs so that they start fast and run from a plain checkout, and builds the
// console into static assets that the server serves at /console/.
import { chmod, mkdir } from 'node:fs/promises';
import { build } from 'esbuild';
import { build as buildConsole } from 'vite';

const requireShim =
  "import { createRequire as __clpCreateRequire } from 'node:module';\nconst require = __clpCreateRequire(import.meta.url);";

/** Keep npm packages outside the server bundle: PGlite loads its WebAssembly files by path. */
const externalNpmPackages = {
  name: 'external-npm-packages',
  setup(b) {
    b.onResolve({ filter: /^[^./]/ }, (args) => {
      if (args.path.startsWith('@clp/') || args.path.startsWith('node:')) return undefined;
      return { path: args.path, external: true };
    });
  },
};

const common = {
  bundle: true,
  platform: 'node',
  format: 'esm',
  target: 'node24',
  sourcemap: 'linked',
  logLevel: 'warning',
};

await mkdir('apps/agent/dist', { recursive: true });
await build({
  ...common,
  entryPoints: ['apps/agent/src/main.ts'],
  outfile: 'apps/agent/dist/clpctl.mjs',
  banner: { js: requireShim },
});
await chmod('apps/agent/dist/clpctl.mjs', 0o755);

await build({
  ...common,
  entryPoints: ['apps/server/src/main.ts'],
  outfile: 'apps/server/dist/server.mjs',
  plugins: [externalNpmPackages],
});
await buildConsole({ configFile: 'apps/console/vite.config.ts', logLevel: 'warn' });
console.log('built apps/agent/dist/clpctl.mjs, apps/server/dist/server.mjs and apps/console/dist');
