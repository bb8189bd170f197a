// The main job: starts the server on its embedded database (PGlite in ./data) and, on the first
// start, walks through the whole product once: sign a patch, upload it, roll it out, enroll two
// machines (each a folder standing in for a root file system), run their update, take the patch
// back on one and let its next check install it again, and end with both machines shown patched.
// Later starts skip the walk-through and only run the server. Options:
//   --once    exit after the walk-through instead of serving (CI=true implies it); when it has
//             run already, say so and exit without starting the server
//   --reset   delete the data folder first and start over
import { spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, cpSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { basename, dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const repo = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const args = new Set(process.argv.slice(2));
const once = args.has('--once') || process.env.CI === 'true';
const dataDir = resolve(process.env.CLP_DATA_DIR || join(repo, 'data'));
const port = process.env.PORT || '8080';
const url = `http://127.0.0.1:${port}`;
const clpctlBin = join(repo, 'apps/agent/bin/clpctl.mjs');
const serverBin = join(repo, 'apps/server/dist/server.mjs');
/** A path as the reader would type it from here: ./data/… inside this folder, absolute outside it. */
const show = (p) => {
  const r = relative(process.cwd(), p);
  return r === '' ? '.' : r.startsWith('..') ? p : `./${r}`;
};
/** Indents every line that has text: a trailing newline must not indent what is printed next. */
const indent = (text, by = '  ') => text.replace(/^(?=.)/gm, by);

if (args.has('--reset')) rmSync(dataDir, { recursive: true, force: true });
mkdirSync(dataDir, { recursive: true });

const doneMarker = join(dataDir, 'demo-done');
if (once && existsSync(doneMarker)) {
  // Nothing to show: starting the server only to stop it again would print a server that is gone.
  process.stdout.write(
    `The walk-through already ran on ${readFileSync(doneMarker, 'utf8').trim()} with the data in ${show(dataDir)}.\n` +
      `Run it again from an empty data folder with 'npm start -- --reset --once', or start the server with 'npm start'.\n`,
  );
  process.exit(0);
}

const tokenFile = join(dataDir, 'demo-admin-token');
if (!existsSync(tokenFile))
  writeFileSync(tokenFile, `clp_adm_demo_${randomBytes(24).toString('hex')}\n`, { mode: 0o600 });
const adminToken = readFileSync(tokenFile, 'utf8').trim();

const say = (text) => process.stdout.write(`${text}\n`);
// Bold on a terminal only: a log or a pipe gets the plain text, not escape codes.
const bold = (text) => (process.stdout.isTTY ? `\x1b[1m${text}\x1b[0m` : text);
const step = (text) => say(`\n${bold(`== ${text}`)}`);

/** Runs clpctl, echoing the command as a user would type it; stops the demo on failure. */
function clpctl(argv, { env = {}, quiet = false } = {}) {
  say(`$ clpctl ${argv.map((a) => (/[\s"']/.test(a) ? JSON.stringify(a) : a)).join(' ')}`);
  const r = spawnSync(process.execPath, [clpctlBin, ...argv], {
    encoding: 'utf8',
    env: { ...process.env, CLP_SERVER: url, CLP_TOKEN: adminToken, ...env },
  });
  if (!quiet && r.stdout) process.stdout.write(indent(r.stdout));
  if (r.stderr) process.stderr.write(indent(r.stderr));
  if (r.status !== 0) throw new Error(`clpctl ${argv[0]} exited with ${r.status}`);
  return r.stdout;
}

async function waitReady(child) {
  for (let i = 0; i < 300; i++) {
    if (child.exitCode !== null)
      throw new Error(`the server exited with ${child.exitCode}; see ${show(serverLog)}`);
    try {
      const res = await fetch(`${url}/readyz`);
      if (res.ok) return;
    } catch {}
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`the server did not become ready on ${url}; see ${show(serverLog)}`);
}

// ---- the release key the server trusts ----
const releaseKeys = join(dataDir, 'release-keys');
const keyFile = join(releaseKeys, 'demo-release.key');
const trustedKeys = join(dataDir, 'keys');
if (!existsSync(keyFile)) {
  step('a release signing key (the release team keeps the .key; servers and machines trust the .pub)');
  clpctl(['keygen', '--name', 'demo-release', '--out', releaseKeys]);
}
mkdirSync(trustedKeys, { recursive: true });
cpSync(join(releaseKeys, 'demo-release.pub'), join(trustedKeys, 'demo-release.pub'));

// ---- the server ----
step(`the server on ${url} (data in ${show(dataDir)}, log in ${show(join(dataDir, 'server.log'))})`);
const serverLog = join(dataDir, 'server.log');
const child = spawn(process.execPath, [serverBin], {
  env: {
    ...process.env,
    PORT: port,
    CLP_DATA_DIR: dataDir,
    CLP_TRUSTED_KEYS: trustedKeys,
    CLP_BOOTSTRAP_TOKEN: adminToken,
    CLP_LOG_LEVEL: process.env.CLP_LOG_LEVEL || 'info',
  },
  stdio: ['ignore', 'pipe', 'pipe'],
});
let banner = '';
child.stdout.on('data', (chunk) => {
  const text = chunk.toString();
  writeFileSync(serverLog, text, { flag: 'a' });
  for (const line of text.split('\n')) {
    if (line && !line.startsWith('{')) banner += `  ${line}\n`;
  }
});
child.stderr.on('data', (chunk) => process.stderr.write(chunk));
const stopServer = () => {
  if (child.exitCode === null) child.kill('SIGTERM');
};
process.on('SIGINT', () => {
  stopServer();
  process.exit(130);
});
process.on('SIGTERM', () => {
  stopServer();
  process.exit(143);
});

try {
  await waitReady(child);
  process.stdout.write(banner);
  say(`  admin token for this demo: ${adminToken} (kept in ${show(tokenFile)})`);
  say(`  console: ${url}/console/ (sign in with 'API token' and the admin token above)`);

  if (existsSync(doneMarker)) {
    say(
      `\nthe walk-through ran at the first start; 'npm start -- --reset' starts over from an empty ${show(dataDir)}`,
    );
  } else {
    await walkThrough();
    writeFileSync(doneMarker, `${new Date().toISOString()}\n`);
  }
  if (!once) printTryNext();
} catch (error) {
  process.stderr.write(`\ndemo failed: ${error instanceof Error ? error.message : String(error)}\n`);
  stopServer();
  process.exit(1);
}

if (once) {
  stopServer();
  say(
    `\n--once: the server is stopped again. 'npm start' starts it on ${url} with this data and keeps it running; 'npm start -- --reset' starts over.`,
  );
} else {
  say(`\nThe server keeps running on ${url}; Ctrl-C stops it.`);
  child.on('exit', (code) => process.exit(code ?? 0));
}

async function walkThrough() {
  const work = join(dataDir, 'demo');
  mkdirSync(work, { recursive: true });
  const patch = join(work, 'CLP1251123.clp');

  step('the release team builds and signs a patch from examples/CLP1251123');
  clpctl(['create', join(repo, 'examples/CLP1251123'), '-o', patch, '--sign', keyFile]);
  clpctl(['inspect', patch, '--keys', trustedKeys]);

  step('and uploads it (the server checks the signature against its trusted keys)');
  clpctl(['admin', 'upload', patch]);

  step('an operator makes an enrollment token for the stable tier');
  const token = JSON.parse(
    clpctl(['admin', 'tokens', 'create', '--tier', 'stable', '--uses', '2', '--json'], { quiet: true }),
  );
  const enrollToken = token.token ?? token.secret;
  say(`  enrollment token: ${enrollToken}`);

  const machines = ['machine-1', 'machine-2'].map((name) => join(work, name));
  for (const root of machines) {
    step(
      `${show(root)} stands in for a machine's root: /etc/motd, /etc/hostname, and the release key in etc/clp/keys.d`,
    );
    rmSync(root, { recursive: true, force: true });
    cpSync(join(repo, 'examples/demo-root'), root, { recursive: true });
    // Its own host name: both stand-ins run on this host, and would otherwise both be listed as it.
    writeFileSync(join(root, 'etc/hostname'), `${basename(root)}\n`);
    mkdirSync(join(root, 'etc/clp/keys.d'), { recursive: true });
    cpSync(join(releaseKeys, 'demo-release.pub'), join(root, 'etc/clp/keys.d/demo-release.pub'));
    chmodSync(join(root, 'etc/clp'), 0o755);
    clpctl(['enroll', url, enrollToken, '--root', root]);
  }

  step('the operator rolls the patch out to stable in one stage of 100 %');
  clpctl([
    'admin',
    'rollout',
    'create',
    'CLP1251123',
    '--tier',
    'stable',
    '--stages',
    '100',
    '--stage-min-minutes',
    '0',
  ]);

  for (const root of machines) {
    step(`${show(root)} runs its daily check now instead of at noon`);
    clpctl(['update', '--root', root]);
    clpctl(['list', '--root', root]);
    say(
      `  ${show(join(root, 'etc/motd'))} now reads:\n${indent(readFileSync(join(root, 'etc/motd'), 'utf8').trimEnd(), '    ')}`,
    );
  }

  step('any patch can be taken back: machine-1 uninstalls it');
  clpctl(['uninstall', 'CLP1251123', '--root', machines[0]]);
  say(
    `  ${show(join(machines[0], 'etc/motd'))} reads again:\n${indent(readFileSync(join(machines[0], 'etc/motd'), 'utf8').trimEnd(), '    ')}`,
  );

  step('the rollout still offers it, so the next check of machine-1 installs it again');
  clpctl(['update', '--root', machines[0]]);

  step('the server shows both machines patched, and every report they sent');
  clpctl(['admin', 'machines']);
  clpctl(['admin', 'reports']);
}

function printTryNext() {
  say(`
Try next (in another terminal, from ${repo}):
  export CLP_SERVER=${url} CLP_TOKEN=${adminToken}
  npx clpctl admin releases
  npx clpctl admin rollout list
  npx clpctl admin machines
  npx clpctl list --root ${show(join(dataDir, 'demo/machine-2'))}
  curl -s ${url}/healthz; curl -s ${url}/openapi.json | head -c 300
  open ${url}/console/ in a browser and sign in with the admin token`);
}
