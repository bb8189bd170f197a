import { mkdir, readdir } from 'node:fs/promises';
import { isClpError } from '@clp/format';
import { configFromEnv } from './config.ts';
import { describeDatabaseStartError } from './database-start-error.ts';
import { isDatabaseUnavailable, sqlState } from './db-errors.ts';
import { createServer } from './server.ts';
import { loadTls } from './tls.ts';

async function countKeys(dir: string): Promise<number> {
  try {
    return (await readdir(dir)).filter((n) => n.endsWith('.pub')).length;
  } catch {
    return 0;
  }
}

/** Makes the trusted keys folder when it is missing, so the operator knows where the .pub goes. */
async function ensureKeysFolder(dir: string): Promise<boolean> {
  const made = await mkdir(dir, { recursive: true, mode: 0o755 });
  return made !== undefined;
}

async function main(): Promise<void> {
  const { config, port, host, tls } = configFromEnv();
  // A certificate that cannot be used stops the start before the database is opened.
  if (tls) await loadTls(tls);
  const server = await createServer(config).catch((error: unknown) => {
    if (config.databaseUrl && !isClpError(error) && (sqlState(error) || isDatabaseUnavailable(error))) {
      throw new Error(describeDatabaseStartError(error, config.databaseUrl), { cause: error });
    }
    throw error;
  });
  const keysCreated = await ensureKeysFolder(config.trustedKeysDir);
  const { url, bound } = await server.listen(port, host, tls);
  const db = server.context.database;
  const keys = await countKeys(config.trustedKeysDir);
  const out = process.stdout;
  const everywhere = host === '0.0.0.0' || host === '::';
  out.write(
    `Core LivePatch server listening on ${url} (bound to ${bound}${everywhere ? ', every interface' : ''}; set CLP_LISTEN to change)\n`,
  );
  out.write(
    tls
      ? `TLS: certificate ${tls.certFile}, key ${tls.keyFile} (read again on SIGHUP)\n`
      : 'TLS: off, plain HTTP (set CLP_TLS_CERT and CLP_TLS_KEY, or put a TLS proxy in front)\n',
  );
  out.write(
    db.kind === 'pglite'
      ? `database: embedded PGlite in ${db.location} (set DATABASE_URL to use PostgreSQL)\n`
      : `database: PostgreSQL at ${db.location}\n`,
  );
  out.write(
    config.blobStore === 'postgres'
      ? 'blobs: in PostgreSQL (CLP_BLOB_STORE=postgres; every replica reaches them)\n'
      : `blobs: ${config.dataDir}/blobs\n`,
  );
  out.write(
    `trusted release keys: ${config.trustedKeysDir}${keysCreated ? ' (created now)' : ''}: ${keys} key${keys === 1 ? '' : 's'}${keys === 0 ? '; uploads are refused until a release key (NAME.pub from clpctl keygen) is copied there' : ''}\n`,
  );
  if (server.generatedAdminToken) {
    out.write(
      `\nfirst admin token (shown only now; store it safely, it is kept hashed):\n  ${server.generatedAdminToken}\n` +
        `use it as: Authorization: Bearer <token>; make more with 'clpctl admin api-tokens create --role ROLE'\n\n`,
    );
  } else if (config.bootstrapToken) {
    out.write('admin token: the one in CLP_BOOTSTRAP_TOKEN\n');
  } else {
    out.write('admin tokens: already made (the first one was printed at the first start)\n');
  }
  out.write(`API description: ${url}/openapi.json\n`);

  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    server.context.log.info({ signal }, 'shutting down');
    server.close().then(
      () => process.exit(0),
      (error: unknown) => {
        server.context.log.error({ err: error }, 'shutdown failed');
        process.exit(1);
      },
    );
  };
  // A renewed certificate is taken without a restart; a bad one is refused and the old one kept.
  process.on('SIGHUP', () => {
    server.reloadTls().then(
      () =>
        server.context.log.info(
          { signal: 'SIGHUP' },
          tls ? 'TLS certificate reloaded' : 'nothing to reload: TLS is off',
        ),
      (error: unknown) =>
        server.context.log.error(
          { err: error },
          'TLS certificate not reloaded; the previous one is still served',
        ),
    );
  });
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
}

main().catch((error: unknown) => {
  process.stderr.write(
    `error: the server could not start: ${error instanceof Error ? error.message : String(error)}\n`,
  );
  process.exit(1);
});
