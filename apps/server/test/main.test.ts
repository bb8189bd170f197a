import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createTestDatabase } from '@clp/db';
import { afterAll, describe, expect, it } from 'vitest';
import { configFromEnv } from '../src/config.ts';

/**
 * The program as an operator runs it: the esbuild bundle (`npm run build`) when it exists, else
 * main.ts itself. Settings from the environment, the first admin token printed once, graceful
 * shutdown on SIGTERM.
 */

const root = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');
const bundle = join(root, 'apps/server/dist/server.mjs');
const entry = existsSync(bundle) ? bundle : join(root, 'apps/server/src/main.ts');
if (entry !== bundle)
  console.warn('skipped: the bundle (run npm run build); testing apps/server/src/main.ts');

interface Child {
  proc: ChildProcess;
  url: string;
  output(): string;
  exited: Promise<number | null>;
}

async function launch(env: Record<string, string>): Promise<Child> {
  const proc = spawn(process.execPath, [entry], {
    cwd: root,
    env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/root', CLP_LOG_LEVEL: 'info', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  proc.stdout!.on('data', (c: Buffer) => {
    out += c.toString();
  });
  proc.stderr!.on('data', (c: Buffer) => {
    out += c.toString();
  });
  const exited = new Promise<number | null>((done) => proc.once('exit', (code) => done(code)));
  const url = await new Promise<string>((done, fail) => {
    const timer = setInterval(() => {
      const m = /listening on (http:\/\/[^\s]+)/.exec(out);
      if (m && out.includes('API description')) {
        clearInterval(timer);
        done(m[1]!);
      }
    }, 50);
    void exited.then((code) => {
      clearInterval(timer);
      fail(new Error(`server exited with ${code} before listening:\n${out}`));
    });
  });
  return { proc, url, output: () => out, exited };
}

/** A POST whose body is sent in two halves, with `between` run in the middle. */
function slowUpload(url: string, token: string, between: () => Promise<void>): Promise<number> {
  const { hostname, port } = new URL(url);
  return new Promise((done, fail) => {
    const req = request(
      {
        hostname,
        port,
        path: '/v1/releases',
        method: 'POST',
        headers: { authorization: `Bearer ${token}`, 'content-type': 'application/octet-stream' },
      },
      (res) => {
        res.resume();
        res.on('end', () => done(res.statusCode ?? 0));
      },
    );
    req.on('error', fail);
    req.write(Buffer.alloc(64 * 1024, 1));
    // Only once the server holds the connection and the first half: then it is a request in flight.
    req.once('socket', (socket) =>
      socket.once('connect', () =>
        setTimeout(() => void between().then(() => req.end(Buffer.alloc(64 * 1024, 2)), fail), 300),
      ),
    );
  });
}

describe('the server program', () => {
  const dirs: string[] = [];
  afterAll(async () => {
    for (const d of dirs) await rm(d, { recursive: true, force: true });
  });

  it('starts on PGlite, prints the first admin token once, and stops gracefully on SIGTERM', async () => {
    const dataDir = await mkdtemp(join(tmpdir(), 'clp-main-'));
    dirs.push(dataDir);
    const first = await launch({ PORT: '0', CLP_DATA_DIR: dataDir, DATABASE_URL: '' });
    const out = first.output();
    expect(out).toContain(`embedded PGlite in ${join(dataDir, 'pglite')}`);
    // The keys folder exists from the first start, so the operator knows where the .pub goes.
    expect(out).toContain(`trusted release keys: ${join(dataDir, 'keys')} (created now): 0 keys;`);
    expect(existsSync(join(dataDir, 'keys'))).toBe(true);
    const token = /first admin token[^\n]*\n\s+(clp_adm_\S+)/.exec(out)?.[1];
    expect(token, out).toBeDefined();
    expect((await fetch(`${first.url}/healthz`)).status).toBe(200);
    expect(
      (await fetch(`${first.url}/v1/tiers`, { headers: { authorization: `Bearer ${token}` } })).status,
    ).toBe(200);
    // A request in flight when SIGTERM arrives still gets its answer (a refused archive: 422).
    const status = await slowUpload(first.url, token!, async () => {
      first.proc.kill('SIGTERM');
      await new Promise((r) => setTimeout(r, 300));
    });
    expect(status).toBe(422);
    expect(await first.exited).toBe(0);
    expect(first.output()).toMatch(/"msg":"shutting down"/);

    // Same data folder: the token is not printed again and still works; CLP_BOOTSTRAP_TOKEN adds one.
    const fromEnvironment = `clp_adm_${randomBytes(32).toString('hex')}`;
    const second = await launch({
      PORT: '0',
      CLP_DATA_DIR: dataDir,
      CLP_BOOTSTRAP_TOKEN: fromEnvironment,
    });
    expect(second.output()).not.toContain('first admin token');
    expect(second.output()).not.toContain('(created now)');
    expect(second.output()).toContain('CLP_BOOTSTRAP_TOKEN');
    for (const t of [token!, fromEnvironment]) {
      expect(
        (await fetch(`${second.url}/v1/tiers`, { headers: { authorization: `Bearer ${t}` } })).status,
      ).toBe(200);
    }
    second.proc.kill('SIGTERM');
    expect(await second.exited).toBe(0);
  });

  it.skipIf(!process.env.DATABASE_URL)('uses PostgreSQL when DATABASE_URL is set', async () => {
    const db = await createTestDatabase(process.env.DATABASE_URL!);
    const dataDir = await mkdtemp(join(tmpdir(), 'clp-main-pg-'));
    dirs.push(dataDir);
    try {
      const child = await launch({ PORT: '0', CLP_DATA_DIR: dataDir, DATABASE_URL: db.url });
      expect(child.output()).toMatch(/database: PostgreSQL at 127\.0\.0\.1:5432\/clp_test_/);
      const ready = await fetch(`${child.url}/readyz`);
      expect(await ready.json()).toEqual({ status: 'ready', database: 'postgres' });
      child.proc.kill('SIGTERM');
      expect(await child.exited).toBe(0);
    } finally {
      await db.drop();
    }
  });

  it.each(['fleet-admin-token', 'clp_adm_short', `clp_adm_${'ab'.repeat(40)}`])(
    'refuses to start with a bootstrap token as weak as %s, saying why',
    async (weak) => {
      const dataDir = await mkdtemp(join(tmpdir(), 'clp-main-weak-'));
      dirs.push(dataDir);
      const proc = spawn(process.execPath, [entry], {
        cwd: root,
        env: { PATH: process.env.PATH ?? '', PORT: '0', CLP_DATA_DIR: dataDir, CLP_BOOTSTRAP_TOKEN: weak },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let err = '';
      proc.stderr!.on('data', (c: Buffer) => {
        err += c.toString();
      });
      const code = await new Promise<number | null>((done) => proc.once('exit', done));
      expect(code).toBe(1);
      expect(err).toMatch(/CLP_BOOTSTRAP_TOKEN is too weak .* at least 128 are needed/);
      expect(err).not.toContain(weak);
    },
  );

  /** Starts the program expecting it to refuse; answers its stderr. */
  async function refusal(env: Record<string, string>): Promise<string> {
    const dataDir = await mkdtemp(join(tmpdir(), 'clp-main-refused-'));
    dirs.push(dataDir);
    const proc = spawn(process.execPath, [entry], {
      cwd: root,
      env: { PATH: process.env.PATH ?? '', PORT: '0', CLP_DATA_DIR: dataDir, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let err = '';
    proc.stderr!.on('data', (c: Buffer) => {
      err += c.toString();
    });
    const code = await new Promise<number | null>((done) => proc.once('exit', done));
    expect(code, err).toBe(1);
    return err;
  }

  it('reads sizes as the README writes them, and refuses settings it cannot read, naming what it takes', async () => {
    expect(configFromEnv({ CLP_MAX_UPLOAD_BYTES: '1GiB' }).config.maxUploadBytes).toBe(1024 ** 3);
    expect(configFromEnv({ CLP_MAX_UPLOAD_BYTES: '512MiB' }).config.maxUploadBytes).toBe(512 * 1024 ** 2);
    expect(configFromEnv({ CLP_MAX_UPLOAD_BYTES: '100MB' }).config.maxUploadBytes).toBe(100_000_000);
    expect(configFromEnv({ CLP_MAX_UPLOAD_BYTES: '4096' }).config.maxUploadBytes).toBe(4096);
    expect(configFromEnv({ CLP_LOG_LEVEL: 'debug' }).config.logLevel).toBe('debug');
    expect(await refusal({ CLP_LOG_LEVEL: 'loud' })).toContain(
      'CLP_LOG_LEVEL=loud is not a log level: use one of fatal, error, warn, info, debug, trace, silent',
    );
    expect(await refusal({ CLP_MAX_UPLOAD_BYTES: 'lots' })).toMatch(
      /CLP_MAX_UPLOAD_BYTES=lots is not a size: .*KiB, MiB, GiB/,
    );
  });

  it('says which host, database and user it could not use, and the reason, when PostgreSQL cannot be reached', async () => {
    const closed = await refusal({ DATABASE_URL: 'postgres://clp:secret-password@127.0.0.1:1/fleet' });
    expect(closed).toContain(
      'cannot use PostgreSQL at 127.0.0.1:1, database fleet, as user clp: connect ECONNREFUSED 127.0.0.1:1',
    );
    expect(closed).not.toContain('secret-password');
    expect(closed).not.toContain('Failed query');
    if (!process.env.DATABASE_URL) return;
    const url = new URL(process.env.DATABASE_URL);
    url.username = 'no_such_role';
    expect(await refusal({ DATABASE_URL: url.toString() })).toMatch(
      /cannot use PostgreSQL at [^,]+, database \S+, as user no_such_role: .*no_such_role/,
    );
  });

  it('refuses a PORT that is not a port number', async () => {
    const proc = spawn(process.execPath, [entry], {
      cwd: root,
      env: { PATH: process.env.PATH ?? '', PORT: 'eighty', CLP_DATA_DIR: join(tmpdir(), 'clp-never-made') },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let err = '';
    proc.stderr!.on('data', (c: Buffer) => {
      err += c.toString();
    });
    const code = await new Promise<number | null>((done) => proc.once('exit', done));
    expect(code).toBe(1);
    expect(err).toContain('PORT=eighty');
  });
});

if (!process.env.DATABASE_URL) console.warn('skipped: PostgreSQL (set DATABASE_URL)');
