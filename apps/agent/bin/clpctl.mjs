#!/usr/bin/env node
// Entry point of clpctl: checks the Node.js version, then loads the bundled program.
const major = Number(process.versions.node.split('.')[0]);
if (major < 24) {
  process.stderr.write(
    `error CLP_E_USAGE: clpctl needs Node.js 24 or later; this is ${process.version}. ` +
      "Run it through 'npx clpctl' in the repository (which uses the node@24 dev dependency) or install Node.js 24.\n",
  );
  process.exit(2);
}
// Caches the compiled bundle on disk: later starts skip parsing it (an agent starts often).
const { enableCompileCache } = await import('node:module');
enableCompileCache?.();
try {
  await import('../dist/clpctl.mjs');
} catch (error) {
  if (error?.code === 'ERR_MODULE_NOT_FOUND' && String(error.message).includes('clpctl.mjs')) {
    process.stderr.write(
      "error CLP_E_USAGE: clpctl is not built yet; run 'npm run build' in the repository first.\n",
    );
    process.exit(2);
  }
  throw error;
}
