import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createTestDatabase, type DatabaseHandle, migrate, openDatabase } from '@clp/db';
import type { PatchMeta } from '@clp/format';
import {
  type Clock,
  type ClpServer,
  createServer,
  defaultConfig,
  type ReleaseInspector,
  type ServerConfig,
} from '../src/index.ts';
import { conformanceProblem } from './conformance.ts';

/** Origins of the servers whose every fetched response is checked against /openapi.json. */
const watched = new Set<string>();
const realFetch = globalThis.fetch;

/**
 * Checks every response fetched from `url` against the server's OpenAPI document from now on (a
 * non-conforming one fails the call that got it); `start()` does it for the servers it starts.
 */
export function watchResponses(url: string): () => void {
  const origin = new URL(url).origin;
  watched.add(origin);
  return () => watched.delete(origin);
}

globalThis.fetch = async (input: string | URL | Request, init?: RequestInit): Promise<Response> => {
  const res = await realFetch(input, init);
  const url = new URL(typeof input === 'string' ? input : input instanceof URL ? input.href : input.url);
  if (!watched.has(url.origin)) return res;
  const method = (init?.method ?? (input instanceof Request ? input.method : 'GET')).toUpperCase();
  let body: string;
  try {
    body = method === 'HEAD' ? '' : await res.clone().text();
  } catch {
    // A body cut off on purpose (a test that aborts a download) has nothing to check.
    return res;
  }
  const problem = conformanceProblem(method, url.pathname, res.status, res.headers.get('content-type'), body);
  if (problem) throw new Error(`the response does not conform to /openapi.json: ${problem}`);
  return res;
};

export interface Driver {
  name: 'pglite' | 'postgres';
  open(): Promise<{ handle: DatabaseHandle; drop(): Promise<void> }>;
}

const pglite: Driver = {
  name: 'pglite',
  async open() {
    const handle = await openDatabase({ dataDir: ':memory:' });
    await migrate(handle);
    return { handle, drop: async () => {} };
  },
};

const postgresDriver: Driver = {
  name: 'postgres',
  async open() {
    const test = await createTestDatabase(process.env.DATABASE_URL!);
    const handle = await openDatabase({ url: test.url, dataDir: ':memory:', poolSize: 5 });
    return { handle, drop: () => test.drop() };
  },
};

/** PGlite always; PostgreSQL as well when DATABASE_URL is set (a fresh database per test file). */
export function drivers(): Driver[] {
  if (!process.env.DATABASE_URL) {
    console.warn('skipped: PostgreSQL (set DATABASE_URL)');
    return [pglite];
  }
  return [pglite, postgresDriver];
}

/**
 * Test double for the archive check, for suites about rollouts rather than archives: the
 * "release file" is the JSON of a PatchMeta plus a signer key id. The real check (format +
 * trust) is exercised by the upload suite.
 */
export const jsonInspector: ReleaseInspector = async (file) => {
  const doc = JSON.parse(await readFile(file, 'utf8')) as { meta: PatchMeta; signerKeyId: string };
  return doc;
};

export function fakeRelease(
  name: string,
  options: { arch?: 'x86_64' | 'aarch64' | 'any'; series?: string } = {},
): Buffer {
  const meta: PatchMeta = {
    name,
    version: '1',
    architecture: options.arch ?? 'any',
    series: options.series ?? `CLP${name.slice(-6)}`,
    systems: [],
    actions: [],
    dialect: 'xml',
  };
  return Buffer.from(JSON.stringify({ meta, signerKeyId: '0123456789abcdef' }));
}

export interface Running {
  server: ClpServer;
  url: string;
  dataDir: string;
  /** The admin token made at start. */
  admin: string;
  close(): Promise<void>;
  /** fetch against the server with an optional bearer token and JSON body. */
  call(
    method: string,
    path: string,
    options?: {
      token?: string | undefined;
      json?: unknown;
      body?: Buffer | string;
      headers?: Record<string, string>;
    },
  ): Promise<{ status: number; body: any; headers: Headers }>;
}

export async function start(
  options: {
    driver?: Driver;
    clock?: Clock;
    inspect?: ReleaseInspector;
    config?: Partial<ServerConfig>;
    logStream?: { write(line: string): unknown };
  } = {},
): Promise<Running> {
  const dataDir = await mkdtemp(join(tmpdir(), 'clp-server-'));
  const db = await (options.driver ?? pglite).open();
  const config = defaultConfig({
    dataDir,
    trustedKeysDir: join(dataDir, 'keys'),
    logLevel: 'silent',
    rateLimits: { enrollPerMinute: 100_000, authFailuresPerMinute: 100_000 },
    // Tests move a fake clock and look at once: every check counts the machines afresh.
    rolloutEvidenceMs: 0,
    ...options.config,
  });
  const server = await createServer(config, {
    database: db.handle,
    ...(options.clock ? { clock: options.clock } : {}),
    ...(options.inspect ? { inspect: options.inspect } : {}),
    ...(options.logStream ? { logStream: options.logStream } : {}),
  });
  const { url } = await server.listen(0, '127.0.0.1');
  const unwatch = watchResponses(url);
  const admin = server.generatedAdminToken!;
  return {
    server,
    url,
    dataDir,
    admin,
    async close() {
      unwatch();
      await server.close();
      await db.handle.close();
      await db.drop();
      await rm(dataDir, { recursive: true, force: true });
    },
    async call(method, path, o = {}) {
      const headers: Record<string, string> = { ...(o.headers ?? {}) };
      if (o.token !== undefined) headers.authorization = `Bearer ${o.token}`;
      let body: string | Buffer | undefined = o.body;
      if (o.json !== undefined) {
        headers['content-type'] = 'application/json';
        body = JSON.stringify(o.json);
      }
      const res = await fetch(url + path, { method, headers, body: body as RequestInit['body'] });
      const text = await res.text();
      let parsed: unknown = text;
      if ((res.headers.get('content-type') ?? '').includes('json') && text) parsed = JSON.parse(text);
      return { status: res.status, body: parsed, headers: res.headers };
    },
  };
}

export const FACTS = {
  hostname: 'web-1',
  os: { id: 'vincent', version: '2025.11' },
  arch: 'x86_64' as const,
  agentVersion: '0.1.0',
};
