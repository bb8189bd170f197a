import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vite';

// The console is served by the server at /console/; everything it loads is bundled here.
export default defineConfig({
  root: fileURLToPath(new URL('.', import.meta.url)),
  base: '/console/',
  // Preact's automatic JSX runtime (tsconfig.json says the same to the type checker).
  oxc: { jsx: { runtime: 'automatic', importSource: 'preact' } },
  resolve: { alias: { react: 'preact/compat', 'react-dom': 'preact/compat' } },
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    assetsInlineLimit: 0,
    sourcemap: true,
    chunkSizeWarningLimit: 400,
  },
  server: {
    // `npx vite apps/console` during development: the API comes from a server on :8080.
    proxy: { '/v1': 'http://127.0.0.1:8080' },
  },
});
