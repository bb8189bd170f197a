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

/**
 * The agent's network modules (got and its helpers) import node:http, https, http2, tls, dns and
 * net at the top of the bundle. Node builds an ES module facade for each by reading every export,
 * and node:http's WebSocket, CloseEvent and MessageEvent getters load undici (≈ 15 ms of each
 * start, install included). These builtins are taken through process.getBuiltinModule instead:
 * the same objects, without the facade. The costly lazy getters are not re-exported (an import of
 * one fails the build, so the list below stays honest).
 */
const FACADE_FREE_BUILTINS = ['http', 'https', 'http2', 'tls', 'dns', 'net'];
const COSTLY_GETTERS = new Set(['WebSocket', 'CloseEvent', 'MessageEvent', 'rootCertificates']);
const builtinsWithoutFacade = {
  name: 'builtins-without-facade',
  setup(b) {
    const filter = new RegExp(`^node:(${FACADE_FREE_BUILTINS.join('|')})$`);
    b.onResolve({ filter }, (args) => ({ path: args.path, namespace: 'clp-builtin' }));
    b.onLoad({ filter: /.*/, namespace: 'clp-builtin' }, async (args) => {
      const module = await import(args.path);
      const exported = Object.keys(module.default).filter(
        (k) => /^[A-Za-z_$][\w$]*$/.test(k) && !COSTLY_GETTERS.has(k),
      );
      const lines = [
        `const m = process.getBuiltinModule(${JSON.stringify(args.path)});`,
        'export default m;',
        ...exported.map((k) => `export const ${k} = m.${k};`),
      ];
      return { contents: lines.join('\n'), loader: 'js' };
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
  plugins: [builtinsWithoutFacade],
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
