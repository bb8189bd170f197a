import type { Clock } from './clock.ts';
import { defaultConfig, type ServerConfig } from './config.ts';
import type { ReleaseInspector } from './release-inspector.ts';
import { type ClpServer, createServer, type ServerDeps } from './server.ts';
import type { TlsFiles } from './tls.ts';

export interface StartServerOptions extends Partial<ServerConfig> {
  /** TCP port; 0 (the default here) lets the system choose one. */
  port?: number;
  /** Address to listen on (default 127.0.0.1: in-process servers are for this machine). */
  host?: string;
  /** Serve HTTPS with this certificate and key. */
  tls?: TlsFiles;
  clock?: Clock;
  inspect?: ReleaseInspector;
  database?: ServerDeps['database'];
  logStream?: ServerDeps['logStream'];
}

export interface StartedServer {
  server: ClpServer;
  url: string;
  port: number;
  /** An admin token that works now: CLP_BOOTSTRAP_TOKEN's, or the one made at this first start. */
  adminToken: string | undefined;
  close(): Promise<void>;
}

/**
 * Starts a whole server in this process (tests, end-to-end runs, benchmarks): database opened
 * and migrated, listening, with an admin token at hand. `close()` shuts it down gracefully.
 */
export async function startServer(options: StartServerOptions = {}): Promise<StartedServer> {
  const { port = 0, host = '127.0.0.1', tls, clock, inspect, database, logStream, ...overrides } = options;
  const config = defaultConfig({ logLevel: 'warn', ...overrides });
  const server = await createServer(config, {
    ...(clock ? { clock } : {}),
    ...(inspect ? { inspect } : {}),
    ...(database ? { database } : {}),
    ...(logStream ? { logStream } : {}),
  });
  const listening = await server.listen(port, host, tls);
  return {
    server,
    url: listening.url,
    port: listening.port,
    adminToken: server.generatedAdminToken ?? (config.bootstrapToken || undefined),
    close: () => server.close(),
  };
}
