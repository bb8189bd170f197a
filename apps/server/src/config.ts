import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { DEFAULT_PORT, listenAddressFromEnv } from './listen-address.ts';
import { parseSize } from './size-setting.ts';
import { type TlsFiles, tlsFilesFromEnv } from './tls.ts';

export interface ServerConfig {
  /** PGlite data (when no databaseUrl) and blobs live here. */
  dataDir: string;
  /** postgres:// URL; empty selects the embedded PGlite. */
  databaseUrl: string;
  /** Folder of release public keys (*.pub) that uploads must be signed by. */
  trustedKeysDir: string;
  /** The first admin token; when unset and no admin token exists, one is made and printed once. */
  bootstrapToken: string;
  /** Largest accepted .clp upload, in bytes. */
  maxUploadBytes: number;
  /** Per-IP limits per minute. */
  rateLimits: { enrollPerMinute: number; authFailuresPerMinute: number };
  /**
   * How old the cached live rollouts may be when a poll is answered (ms; at most 1000). On
   * PostgreSQL a change made through any server process also empties every cache at once.
   */
  rolloutCacheMs: number;
  /** How long a looked-up machine credential is trusted without asking the database (ms; at most 1000). */
  credentialCacheMs: number;
  /** How often each server process moves due rollout stages along without waiting for traffic (ms). */
  stageTickMs: number;
  /** Where release files live: `folder` (DATA_DIR/blobs, one host or a shared filesystem) or `postgres`. */
  blobStore: 'folder' | 'postgres';
  /** Hint sent to agents for their next poll (seconds); a rollout's default silence timeout is twice this. */
  nextPollSeconds: number;
  /** How long a count of a rollout's targeted machines is reused, and how often silence is checked (ms; 0: every time). */
  rolloutEvidenceMs: number;
  /** Where rollout events (halt, completion, failure warning) are POSTed, signed with `secret`. */
  webhooks: { urls: string[]; secret: string };
  /** How often each process sends due webhook deliveries (ms). */
  webhookIntervalMs: number;
  /**
   * How long a JSON body may take to arrive once its headers have (ms). The enrollment route
   * reads its body before any credential; a stranger dribbling one holds a connection no longer.
   */
  jsonBodyMs: number;
  /** pino level; `silent` in tests. */
  logLevel: string;
  /** Express `trust proxy` (e.g. `loopback`, `10.0.0.0/8`, `1`); empty: use the socket address. */
  trustProxy: string;
  /** The built console (index.html and assets/), served at /console/. */
  consoleDir: string;
}

export { DEFAULT_PORT };

/** pino's levels, most severe first; `silent` logs nothing. */
export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;

/**
 * The built console: apps/console/dist, seen from this file in apps/server/src or from the bundle
 * in apps/server/dist; in the server packages, console/ beside the bundle's dist/.
 */
const CONSOLE_CANDIDATES = ['../../console/dist', '../console'].map((p) =>
  fileURLToPath(new URL(p, import.meta.url)),
);
const BUILT_CONSOLE =
  CONSOLE_CANDIDATES.find((dir) => existsSync(join(dir, 'index.html'))) ?? CONSOLE_CANDIDATES[0]!;

export function defaultConfig(overrides: Partial<ServerConfig> = {}): ServerConfig {
  const dataDir = resolve(overrides.dataDir ?? './data');
  return {
    dataDir,
    databaseUrl: '',
    trustedKeysDir: join(dataDir, 'keys'),
    bootstrapToken: '',
    maxUploadBytes: 1024 * 1024 * 1024,
    rateLimits: { enrollPerMinute: 60, authFailuresPerMinute: 30 },
    rolloutCacheMs: 1000,
    credentialCacheMs: 1000,
    stageTickMs: 1000,
    blobStore: 'folder',
    nextPollSeconds: 86_400,
    rolloutEvidenceMs: 5000,
    webhooks: { urls: [], secret: '' },
    webhookIntervalMs: 1000,
    jsonBodyMs: 30_000,
    logLevel: 'info',
    trustProxy: '',
    consoleDir: BUILT_CONSOLE,
    ...overrides,
  };
}

/** Settings from the environment (the README lists them). */
export function configFromEnv(env: NodeJS.ProcessEnv = process.env): {
  config: ServerConfig;
  port: number;
  /** CLP_LISTEN's address; every interface by default. */
  host: string;
  /** CLP_TLS_CERT and CLP_TLS_KEY: serve HTTPS with them. */
  tls: TlsFiles | undefined;
} {
  const dataDir = resolve(env.CLP_DATA_DIR || './data');
  const { host, port } = listenAddressFromEnv(env);
  const tls = tlsFilesFromEnv(env);
  const maxUpload = env.CLP_MAX_UPLOAD_BYTES
    ? parseSize(env.CLP_MAX_UPLOAD_BYTES, 'CLP_MAX_UPLOAD_BYTES')
    : undefined;
  const logLevel = env.CLP_LOG_LEVEL || 'info';
  if (!(LOG_LEVELS as readonly string[]).includes(logLevel)) {
    throw new Error(`CLP_LOG_LEVEL=${logLevel} is not a log level: use one of ${LOG_LEVELS.join(', ')}`);
  }
  const blobStore = env.CLP_BLOB_STORE || 'folder';
  if (blobStore !== 'folder' && blobStore !== 'postgres') {
    throw new Error(`CLP_BLOB_STORE=${blobStore} is not a blob store: use folder or postgres`);
  }
  if (blobStore === 'postgres' && !env.DATABASE_URL) {
    throw new Error(
      'CLP_BLOB_STORE=postgres needs DATABASE_URL (a PostgreSQL server that every replica reaches)',
    );
  }
  const webhookUrls = (env.CLP_WEBHOOK_URLS ?? '').split(/[\s,]+/).filter(Boolean);
  for (const [index, url] of webhookUrls.entries()) {
    let parsed: URL | undefined;
    try {
      parsed = new URL(url);
    } catch {}
    if (!parsed || (parsed.protocol !== 'http:' && parsed.protocol !== 'https:'))
      throw new Error(`CLP_WEBHOOK_URLS: URL number ${index + 1} is not an http(s) URL`);
    // fetch refuses such a URL at every delivery; and the password must not reach the log.
    if (parsed.username || parsed.password)
      throw new Error(
        `CLP_WEBHOOK_URLS: ${parsed.origin} has a user name or password in its URL, which deliveries cannot send; give the receiver a key in its path or check the X-CLP-Signature HMAC instead`,
      );
  }
  const webhookSecret = env.CLP_WEBHOOK_SECRET ?? '';
  if (webhookUrls.length > 0 && !webhookSecret)
    throw new Error(
      'CLP_WEBHOOK_URLS needs CLP_WEBHOOK_SECRET: receivers check the X-CLP-Signature HMAC with it (e.g. $(openssl rand -hex 32))',
    );
  const config = defaultConfig({
    blobStore,
    webhooks: { urls: webhookUrls, secret: webhookSecret },
    dataDir,
    databaseUrl: env.DATABASE_URL ?? '',
    trustedKeysDir: resolve(env.CLP_TRUSTED_KEYS || join(dataDir, 'keys')),
    bootstrapToken: env.CLP_BOOTSTRAP_TOKEN ?? '',
    logLevel,
    trustProxy: env.CLP_TRUST_PROXY ?? '',
    ...(env.CLP_CONSOLE_DIR ? { consoleDir: resolve(env.CLP_CONSOLE_DIR) } : {}),
    ...(maxUpload ? { maxUploadBytes: maxUpload } : {}),
  });
  return { config, port, host, tls };
}
