import { spawnSync } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');

/** `docker compose` (plugin) or `docker-compose` (standalone), whichever answers. */
function composeCommand(): string[] | undefined {
  for (const cmd of [['docker', 'compose'], ['docker-compose']]) {
    const probe = spawnSync(cmd[0]!, [...cmd.slice(1), 'version'], { encoding: 'utf8' });
    if (probe.status === 0) return cmd;
  }
  return undefined;
}

const compose = composeCommand();
if (!compose) console.warn('skipped: needs docker compose');

describe('docker-compose.yml', () => {
  it('runs the bundle that the build makes, from a Dockerfile that exists', async () => {
    const file = await readFile(join(root, 'docker-compose.yml'), 'utf8');
    const dockerfile = await readFile(join(root, 'apps/server/Dockerfile'), 'utf8');
    const build = await readFile(join(root, 'scripts/build.mjs'), 'utf8');
    expect(file).toMatch(/dockerfile: apps\/server\/Dockerfile/);
    expect(build).toContain("outfile: 'apps/server/dist/server.mjs'");
    expect(dockerfile).toContain('CMD ["node", "apps/server/dist/server.mjs"]');
    expect(dockerfile).toMatch(/^FROM node:24/m);
    for (const name of ['PORT', 'DATABASE_URL', 'CLP_DATA_DIR', 'CLP_TRUSTED_KEYS', 'CLP_BOOTSTRAP_TOKEN']) {
      expect(file).toContain(`${name}:`);
    }
  });

  it('checks the health of the server by liveness, and says sharing /data needs PostgreSQL', async () => {
    const file = await readFile(join(root, 'docker-compose.yml'), 'utf8');
    const dockerfile = await readFile(join(root, 'apps/server/Dockerfile'), 'utf8');
    expect(file).toMatch(/healthcheck:[\s\S]*\/healthz/);
    expect(file).not.toMatch(/\/readyz'\)/);
    expect(dockerfile).toMatch(/HEALTHCHECK[\s\S]*\/healthz/);
    expect(file).toMatch(/share this folder\s+# only when they use PostgreSQL/);
  });

  it.skipIf(!compose)('is valid for docker compose config', () => {
    const [cmd, ...args] = compose!;
    const env: NodeJS.ProcessEnv = { ...process.env, POSTGRES_PASSWORD: 'secret-pw', CLP_PORT: '18080' };
    delete env.CLP_BOOTSTRAP_TOKEN;
    const res = spawnSync(cmd!, [...args, '-f', join(root, 'docker-compose.yml'), 'config'], {
      cwd: root,
      encoding: 'utf8',
      env,
    });
    expect(res.status, res.stderr).toBe(0);
    const out = res.stdout;
    expect(out).toMatch(/postgres:\/\/clp:secret-pw@postgres:5432\/clp/);
    expect(out).toMatch(/18080/);
    expect(out).toMatch(/\/data/);
    expect(out).toMatch(/condition: service_healthy/);
  });
});

describe('docker-compose.scale.yml', () => {
  it('runs several replicas on PostgreSQL with release files in the database, behind nginx with the tested locations file', async () => {
    const file = await readFile(join(root, 'docker-compose.scale.yml'), 'utf8');
    const nginx = await readFile(join(root, 'deploy/nginx/nginx.conf'), 'utf8');
    expect(file).toMatch(/replicas: \$\{CLP_REPLICAS:-3\}/);
    expect(file).toContain('CLP_BLOB_STORE: postgres');
    expect(file).toContain('./deploy/nginx/clp-locations.conf:/etc/nginx/clp-locations.conf:ro');
    expect(file).toMatch(/healthcheck:[\s\S]*\/healthz/);
    expect(nginx).toContain('include /etc/nginx/clp-locations.conf;');
    expect(nginx).toContain('keys_zone=clp_blobs:');
    expect(nginx).toMatch(/upstream clp_servers \{[\s\S]*server server:8080/);
  });

  it.skipIf(!compose)(
    'is valid for docker compose config, and refuses to start without CLP_BOOTSTRAP_TOKEN',
    () => {
      const [cmd, ...args] = compose!;
      const run = (extra: NodeJS.ProcessEnv) => {
        const env: NodeJS.ProcessEnv = { ...process.env, POSTGRES_PASSWORD: 'secret-pw', ...extra };
        if (!extra.CLP_BOOTSTRAP_TOKEN) delete env.CLP_BOOTSTRAP_TOKEN;
        return spawnSync(cmd!, [...args, '-f', join(root, 'docker-compose.scale.yml'), 'config'], {
          cwd: root,
          encoding: 'utf8',
          env,
        });
      };
      const ok = run({ CLP_BOOTSTRAP_TOKEN: `clp_adm_${'ab'.repeat(32)}`, CLP_REPLICAS: '4' });
      expect(ok.status, ok.stderr).toBe(0);
      expect(ok.stdout).toMatch(/replicas: 4/);
      expect(ok.stdout).toMatch(/postgres:\/\/clp:secret-pw@postgres:5432\/clp/);
      expect(ok.stdout).toMatch(/nginx:stable/);
      const refused = run({});
      expect(refused.status).not.toBe(0);
      expect(refused.stderr).toContain('set CLP_BOOTSTRAP_TOKEN');
    },
  );
});

/** Docker's .dockerignore rules: glob patterns from the context root, `**` across folders, `!` re-includes; the last match wins. */
function dockerIgnored(patterns: string[], path: string): boolean {
  let ignored = false;
  const parts = path.split('/');
  for (const raw of patterns) {
    const negated = raw.startsWith('!');
    const pattern = (negated ? raw.slice(1) : raw).replace(/^\/+/, '');
    const source = pattern
      .split(/(\*\*\/|\*\*|\*|\?)/)
      .map((piece) => {
        if (piece === '**/') return '(?:.*/)?';
        if (piece === '**') return '.*';
        if (piece === '*') return '[^/]*';
        if (piece === '?') return '[^/]';
        return piece.replace(/[.+^${}()|[\]\\]/g, '\\$&');
      })
      .join('');
    const regex = new RegExp(`^${source}$`);
    // A pattern that matches a folder excludes everything in it.
    if (parts.some((_, i) => regex.test(parts.slice(0, i + 1).join('/')))) ignored = !negated;
  }
  return ignored;
}

describe('the container build context', () => {
  it('leaves out installed packages, build output, local data, keys and tokens, and keeps what the Dockerfile builds from', async () => {
    for (const file of ['.dockerignore', 'apps/server/Dockerfile.dockerignore']) {
      const patterns = (await readFile(join(root, file), 'utf8'))
        .split('\n')
        .map((line) => line.trim())
        .filter((line) => line !== '' && !line.startsWith('#'));
      for (const secret of [
        'node_modules/express/package.json',
        'apps/server/node_modules/x/index.js',
        'apps/agent/dist/clpctl.mjs',
        'dist/packages/core-livepatch-agent_0.1.0_amd64.deb',
        'data/pglite/PG_VERSION',
        'data/keys/release.key',
        'data/demo-admin-token',
        'examples/keys/release.key',
        'keys/server.pem',
        'tls/server.crt',
        '.env',
        'apps/server/.env',
        '.git/config',
        'CLP1251123.clp',
      ]) {
        expect(dockerIgnored(patterns, secret), `${file} keeps ${secret} out`).toBe(true);
      }
      for (const needed of [
        'package.json',
        'package-lock.json',
        'scripts/build.mjs',
        'apps/server/src/main.ts',
        'apps/server/src/token-strength.ts',
        'apps/agent/src/admin/token-commands.ts',
        'libs/format/src/index.ts',
        'db/migrations/meta/_journal.json',
        'examples/keys/release.pub',
      ]) {
        expect(dockerIgnored(patterns, needed), `${file} keeps ${needed}`).toBe(false);
      }
    }
  });

  it('the image is built from the repository root with that context (no Docker engine runs here to build it)', async () => {
    const dockerfile = await readFile(join(root, 'apps/server/Dockerfile'), 'utf8');
    // Everything the build stage copies comes from the context the ignore file filters.
    expect(dockerfile).toMatch(/^COPY \. \.$/m);
    expect(dockerfile).toMatch(/^USER node$/m);
    expect(await readFile(join(root, '.dockerignore'), 'utf8')).toBe(
      await readFile(join(root, 'apps/server/Dockerfile.dockerignore'), 'utf8'),
    );
  });
});
