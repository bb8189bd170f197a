import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createTestDatabase } from '@clp/db';
import { NODE, SERVER } from './paths.ts';

export interface CallResult {
  status: number;
  body: any;
  headers: Headers;
}

/** The real server bundle running as its own process. */
export interface ServerProcess {
  url: string;
  /** The operating system's process id. */
  pid: number;
  /** Resolves with the exit code (or the signal's name) once the process has ended. */
  exited: Promise<number | string>;
  /** The admin token given to the server at start (CLP_BOOTSTRAP_TOKEN). */
  admin: string;
  database: 'postgres' | 'pglite';
  /** Folder of trusted release keys (CLP_TRUSTED_KEYS): put *.pub here before uploading. */
  keysDir: string;
  /** Everything the process printed, for failure messages. */
  output(): string;
  call(
    method: string,
    path: string,
    options?: { json?: unknown; body?: Buffer; token?: string; headers?: Record<string, string> },
  ): Promise<CallResult>;
  stop(): Promise<void>;
}

function waitForUrl(child: ChildProcess, output: () => string, timeoutMs: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      cleanup();
      reject(new Error(`the server did not say where it listens within ${timeoutMs} ms:\n${output()}`));
    }, timeoutMs);
    const onData = () => {
      const m = /listening on (http:\/\/\S+)/.exec(output());
      if (m) {
        cleanup();
        resolve(m[1]!);
      }
    };
    const onExit = (code: number | null) => {
      cleanup();
      reject(new Error(`the server exited with code ${code} before listening:\n${output()}`));
    };
    const cleanup = () => {
      clearTimeout(timer);
      child.stdout?.off('data', onData);
      child.off('exit', onExit);
    };
    child.stdout?.on('data', onData);
    child.on('exit', onExit);
  });
}

export interface ServerProcessOptions {
  /**
   * A database that other processes share (replicas): used as it is and not dropped at stop.
   * Without it: a fresh PostgreSQL database when DATABASE_URL is set, else PGlite; '' forces PGlite.
   */
  databaseUrl?: string;
  /** The admin token (CLP_BOOTSTRAP_TOKEN); replicas of one database share one. */
  admin?: string;
  /** A data folder to use (and keep) instead of a fresh temporary one. */
  dataDir?: string;
  /** More environment (CLP_BLOB_STORE, …). */
  env?: Record<string, string>;
}

/**
 * Starts apps/server/dist/server.mjs on a free port: on a fresh PostgreSQL database when
 * DATABASE_URL is set, else on PGlite in a temporary data folder.
 */
export async function startServerProcess(options: ServerProcessOptions = {}): Promise<ServerProcess> {
  const ownDataDir = options.dataDir === undefined;
  const dataDir = options.dataDir ?? (await mkdtemp(join(tmpdir(), 'clp-e2e-server-')));
  const keysDir = join(dataDir, 'keys');
  await mkdir(keysDir, { recursive: true });
  const admin = options.admin ?? `clp_adm_e2e${randomBytes(16).toString('hex')}`;
  const adminUrl = process.env.DATABASE_URL;
  const db =
    options.databaseUrl !== undefined || !adminUrl
      ? undefined
      : await createTestDatabase(adminUrl, 'clp_e2e');
  const databaseUrl = options.databaseUrl ?? db?.url ?? '';
  if (!databaseUrl) console.warn('end-to-end server runs on PGlite: DATABASE_URL not set');
  const child = spawn(NODE, [SERVER], {
    env: {
      ...process.env,
      PORT: '0',
      CLP_DATA_DIR: dataDir,
      CLP_TRUSTED_KEYS: keysDir,
      CLP_BOOTSTRAP_TOKEN: admin,
      CLP_LOG_LEVEL: 'warn',
      DATABASE_URL: databaseUrl,
      ...options.env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const exited = new Promise<number | string>((resolve) =>
    child.once('exit', (code, signal) => resolve(code ?? signal ?? 'unknown')),
  );
  let out = '';
  child.stdout!.setEncoding('utf8').on('data', (s: string) => (out += s));
  child.stderr!.setEncoding('utf8').on('data', (s: string) => (out += s));
  const output = () => out;
  let url: string;
  try {
    url = await waitForUrl(child, output, 60_000);
  } catch (error) {
    child.kill('SIGKILL');
    await db?.drop();
    throw error;
  }
  return {
    url,
    pid: child.pid!,
    exited,
    admin,
    database: databaseUrl ? 'postgres' : 'pglite',
    keysDir,
    output,
    async call(method, path, o = {}) {
      const headers: Record<string, string> = { authorization: `Bearer ${o.token ?? admin}`, ...o.headers };
      let body: string | Buffer | undefined = o.body;
      if (o.json !== undefined) {
        headers['content-type'] = 'application/json';
        body = JSON.stringify(o.json);
      } else if (o.body !== undefined) {
        headers['content-type'] = 'application/octet-stream';
      }
      const res = await fetch(url + path, { method, headers, body: body as RequestInit['body'] });
      const text = await res.text();
      let parsed: unknown = text;
      if ((res.headers.get('content-type') ?? '').includes('json') && text) parsed = JSON.parse(text);
      return { status: res.status, body: parsed, headers: res.headers };
    },
    async stop() {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGTERM');
        const killer = setTimeout(() => child.kill('SIGKILL'), 15_000);
        await exited;
        clearTimeout(killer);
      }
      await db?.drop();
      if (ownDataDir) await rm(dataDir, { recursive: true, force: true });
    },
  };
}
