import { createServer as createHttpServer, type Server } from 'node:http';
import { createServer as createHttpsServer, type Server as HttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { adminTokens, type DatabaseHandle, migrate, openDatabase } from '@clp/db';
import { isClpError } from '@clp/format';
import express, { type NextFunction, type Request, type Response } from 'express';
import { pino } from 'pino';
import type { ZodError, z } from 'zod';
import { authenticate, MachineAuthCache } from './auth.ts';
import { type BlobStore, cleanUploads, FolderBlobStore } from './blob-store.ts';
import { followDatabaseChanges } from './change-feed.ts';
import { type Clock, systemClock } from './clock.ts';
import type { ServerConfig } from './config.ts';
import { mountConsole } from './console-static.ts';
import type { AppContext, Principal } from './context.ts';
import { type DataDirLock, lockDataDir } from './data-dir-lock.ts';
import { isDatabaseUnavailable } from './db-errors.ts';
import { httpStatusFor, ServerError } from './errors.ts';
import { formatAddress, reachableHost } from './listen-address.ts';
import { MachineSeen } from './machine-seen.ts';
import { ServerMetrics } from './metrics.ts';
import { OfferLog } from './offer-log.ts';
import { PostgresBlobStore } from './postgres-blob-store.ts';
import { RateLimiter } from './rate-limit.ts';
import { type ReleaseInspector, trustedReleaseInspector } from './release-inspector.ts';
import { ReportWriter } from './report-writer.ts';
import { checkRequestText } from './request-text.ts';
import { ActiveRollouts } from './rollout-cache.ts';
import { advanceRollouts } from './rollout-judge.ts';
import { ROUTES, type Route } from './routes.ts';
import { newSecret } from './secrets.ts';
import { sessionCredential } from './sessions.ts';
import { startStageTicker } from './stage-ticker.ts';
import { loadTls, type TlsFiles } from './tls.ts';
import { weakTokenReason } from './token-strength.ts';
import { insertAdminToken } from './tokens.ts';
import { WebhookSender } from './webhooks.ts';

const JSON_LIMIT = '2mb';
const REPORT_JSON_LIMIT = '10mb';

export interface ServerDeps {
  clock?: Clock;
  /** Replaces the format + trust check of uploads (tests of the server alone). */
  inspect?: ReleaseInspector;
  /** An already opened database (tests share one); it is not closed by close(). */
  database?: DatabaseHandle;
  /** Where the JSON log lines go (default: stdout). */
  logStream?: { write(line: string): unknown };
}

export interface ClpServer {
  app: express.Express;
  context: AppContext;
  /** Set when this start made the first admin token (it is not stored in clear anywhere). */
  generatedAdminToken: string | undefined;
  /** HOST defaults to every interface; with TLS files the server speaks HTTPS only. */
  listen(port: number, host?: string, tls?: TlsFiles): Promise<Listening>;
  /** Reads the TLS files again (SIGHUP after a renewal); new connections get the new certificate. */
  reloadTls(): Promise<void>;
  /** Applies due rollout stage changes now (simulations with a manual clock). */
  tick(): Promise<void>;
  close(): Promise<void>;
}

export interface Listening {
  port: number;
  /** A URL that reaches the server from this machine (loopback when bound to every interface). */
  url: string;
  /** The address and port actually bound, e.g. 0.0.0.0:8080 or [::1]:43121. */
  bound: string;
}

/** The media type of a Content-Type header, without parameters: `application/octet-stream; x=y` → `application/octet-stream`. */
function mediaType(header: string): string {
  return (header.split(';', 1)[0] ?? '').trim().toLowerCase();
}

function validationError(error: ZodError, where: string): ServerError {
  const issue = error.issues[0];
  const field = [where, ...(issue?.path ?? []).map(String)].filter(Boolean).join('.');
  return new ServerError('CLP_E_VALIDATION', `${field || where}: ${issue?.message ?? 'invalid'}`, {
    field: field || where,
    details: { issues: error.issues.slice(0, 10) },
  });
}

function parse<T>(schema: z.ZodType<T> | undefined, value: unknown, where: string): T {
  if (!schema) return value as T;
  const result = schema.safeParse(value);
  if (!result.success) throw validationError(result.error, where);
  return result.data;
}

/**
 * Answers 400 and closes the connection when a JSON body has not arrived whole within `ms`
 * (a request that sends a byte now and then never trips the socket's idle timeout).
 */
function limitBodyTime(req: Request, res: Response, ms: number): void {
  if (req.complete) return;
  const timer = setTimeout(() => {
    if (req.complete || res.headersSent) return;
    res.setHeader('Connection', 'close');
    res.setHeader('Cache-Control', 'no-store');
    res.once('finish', () => req.socket.destroy());
    res.status(400).json({
      error: {
        code: 'CLP_E_VALIDATION',
        message: `body: not received whole within ${ms / 1000} s; send the request body at once`,
        field: 'body',
      },
    });
  }, ms);
  timer.unref();
  const stop = () => clearTimeout(timer);
  req.once('end', stop);
  res.once('close', stop);
}

/** Makes the first admin token when there is none: from CLP_BOOTSTRAP_TOKEN, or a new one to print once. */
async function bootstrapAdmin(ctx: AppContext): Promise<string | undefined> {
  if (ctx.config.bootstrapToken) {
    await insertAdminToken(ctx, ctx.config.bootstrapToken, 'bootstrap', 'admin');
    return undefined;
  }
  const [any] = await ctx.db.select({ id: adminTokens.id }).from(adminTokens).limit(1);
  if (any) return undefined;
  const token = newSecret('clp_adm');
  await insertAdminToken(ctx, token, 'bootstrap', 'admin');
  return token;
}

/** Builds the whole server (database opened and migrated) without listening yet. */
export async function createServer(config: ServerConfig, deps: ServerDeps = {}): Promise<ClpServer> {
  // Refused before anything is opened: a guessable admin token is a server anyone may run.
  const weak = config.bootstrapToken
    ? weakTokenReason('CLP_BOOTSTRAP_TOKEN', config.bootstrapToken)
    : undefined;
  if (weak) throw new Error(weak);
  const weakHook = config.webhooks.secret
    ? weakTokenReason('CLP_WEBHOOK_SECRET', config.webhooks.secret)
    : undefined;
  if (weakHook) throw new Error(weakHook);
  const clock = deps.clock ?? systemClock;
  const log = pino(
    { level: config.logLevel, base: { service: 'clp-server' }, timestamp: pino.stdTimeFunctions.isoTime },
    deps.logStream ?? process.stdout,
  );
  // The embedded database is one process: claim the folder before opening it.
  const ownsDataDir = !deps.database && !config.databaseUrl;
  const lock: DataDirLock | undefined = ownsDataDir
    ? await lockDataDir(config.dataDir, (message) => log.warn(message))
    : undefined;
  let database: DatabaseHandle;
  try {
    database =
      deps.database ??
      (await openDatabase({
        url: config.databaseUrl,
        dataDir: config.dataDir,
        // The message and code only: the driver's error carries its whole connection object.
        onConnectionError: (error) =>
          log.warn(
            { error: error.message, code: (error as { code?: string }).code },
            'a database connection failed; it is replaced on the next query',
          ),
      }));
    await migrate(database);
  } catch (error) {
    lock?.release();
    throw error;
  }
  let blobs: BlobStore;
  if (config.blobStore === 'postgres') {
    const store = new PostgresBlobStore(database.db, `${config.dataDir}/uploads`);
    await store.init();
    blobs = store;
  } else {
    const store = new FolderBlobStore(`${config.dataDir}/blobs`);
    await store.init();
    blobs = store;
  }
  // Uploads cut off by a crash leave their temporary files behind; a shared folder may also hold
  // uploads other servers are receiving now, so only old ones go unless this process owns it.
  const cleaned = await cleanUploads(blobs.tempDir, ownsDataDir);
  if (cleaned > 0) log.info({ files: cleaned, folder: blobs.tempDir }, 'removed abandoned uploads');
  const metrics = new ServerMetrics({ defaultMetrics: !deps.database });
  const offers = new OfferLog(database.db, log);
  for (const event of ['halted', 'completed', 'failure_warning', 'silent'])
    metrics.rolloutEvents.inc({ event }, 0);
  const judge = () =>
    advanceRollouts(database.db, clock, {
      webhooks: config.webhooks,
      metrics,
      evidenceMs: config.rolloutEvidenceMs,
    });
  const ctx: AppContext = {
    config,
    database,
    db: database.db,
    blobs,
    clock,
    log,
    metrics,
    inspect: deps.inspect ?? trustedReleaseInspector(config.trustedKeysDir),
    rollouts: new ActiveRollouts(database.db, clock, config.rolloutCacheMs, judge),
    judge,
    webhooks: new WebhookSender(database.db, clock, config.webhooks, log, metrics, config.webhookIntervalMs),
    seen: new MachineSeen(database.db, log),
    offers,
    reportWriter: new ReportWriter(database.db, offers),
    machineAuth: new MachineAuthCache(config.credentialCacheMs),
    limits: {
      enroll: new RateLimiter(config.rateLimits.enrollPerMinute),
      authFailures: new RateLimiter(config.rateLimits.authFailuresPerMinute),
    },
  };
  const generatedAdminToken = await bootstrapAdmin(ctx);
  const changes = await followDatabaseChanges(database, ctx, log);
  const ticker = startStageTicker(judge, log, config.stageTickMs, () => ctx.rollouts.invalidate());

  const app = express();
  app.disable('x-powered-by');
  // Behind a load balancer, rate limits must see the client's address, not the balancer's.
  if (config.trustProxy) app.set('trust proxy', config.trustProxy);
  app.set('etag', false);
  app.set('query parser', 'simple');
  app.use((req, res, next) => {
    const started = performance.now();
    res.on('finish', () => {
      const route = (res.locals.route as Route | undefined)?.path ?? 'unmatched';
      const seconds = (performance.now() - started) / 1000;
      metrics.requests.inc({ method: req.method, route, status: String(res.statusCode) });
      metrics.duration.observe({ method: req.method, route }, seconds);
      if (res.statusCode >= 500)
        log.error({ method: req.method, url: req.originalUrl, status: res.statusCode }, 'request failed');
      else if (res.statusCode === 401 || res.statusCode === 403 || res.statusCode === 429)
        log.warn({ method: req.method, route, status: res.statusCode, ip: req.ip }, 'request refused');
      else
        log.debug(
          { method: req.method, route, status: res.statusCode, ms: Math.round(seconds * 1000) },
          'request',
        );
    });
    next();
  });
  const json = express.json({ limit: JSON_LIMIT });
  // A full report batch (500 reports with 16 KiB of log each) is larger than any admin body.
  const reportJson = express.json({ limit: REPORT_JSON_LIMIT });

  for (const route of ROUTES) {
    const method = route.method.toLowerCase() as 'get' | 'head' | 'post' | 'put' | 'patch' | 'delete';
    const handlers: express.RequestHandler[] = [];
    // Who is calling is settled before any body is read: a stranger cannot make the server parse
    // megabytes of JSON, and a refused upload is not received at all.
    handlers.push(async (req: Request, res: Response, next: NextFunction) => {
      res.locals.route = route;
      res.setHeader('X-Content-Type-Options', 'nosniff');
      const ip = req.ip ?? req.socket.remoteAddress ?? 'unknown';
      if (route.access.kind === 'enroll' && !ctx.limits.enroll.hit(ip)) {
        throw new ServerError(
          'CLP_E_RATE_LIMITED',
          `too many enrollments from ${ip}; wait ${ctx.limits.enroll.retryAfter(ip)} s`,
          {
            details: { retryAfter: ctx.limits.enroll.retryAfter(ip) },
          },
        );
      }
      res.locals.principal = await authenticate(
        ctx,
        route.access,
        req.headers.authorization,
        ip,
        sessionCredential(req),
      );
      if (route.body === 'binary') {
        const type = req.headers['content-type'] ?? '';
        if (mediaType(type) !== 'application/octet-stream') {
          throw new ServerError(
            'CLP_E_UNSUPPORTED_MEDIA_TYPE',
            `send the .clp file as the raw body with Content-Type: application/octet-stream (got ${type || 'none'})`,
          );
        }
      }
      next();
    });
    if (route.body && route.body !== 'binary') {
      handlers.push((req, res, next) => {
        // A full report batch is five times the size of any other body, over a machine's link.
        limitBodyTime(req, res, route.id === 'report' ? config.jsonBodyMs * 10 : config.jsonBodyMs);
        next();
      });
      handlers.push(route.id === 'report' ? reportJson : json);
    }
    handlers.push(async (req: Request, res: Response) => {
      const principal = res.locals.principal as Principal;
      checkRequestText(req.params, 'params');
      checkRequestText(req.query ?? {}, 'query');
      if (route.body && route.body !== 'binary')
        checkRequestText(
          req.body,
          'body',
          (route.textBlocks ?? []).map((f) => `body.${f}`),
        );
      const params = parse(route.params, req.params, 'params');
      const query = parse(route.query, req.query ?? {}, 'query');
      const body = route.body && route.body !== 'binary' ? parse(route.body, req.body, 'body') : undefined;
      const result = await route.handle(ctx, { params, query, body, principal, req, res });
      if (result === 'sent') return;
      res.status(result.status ?? route.status ?? 200).json(result.body);
    });
    app[method](route.path, ...handlers);
  }

  mountConsole(app, config.consoleDir);

  app.use((req: Request, _res: Response, next: NextFunction) => {
    next(new ServerError('CLP_E_NOT_FOUND', `no route ${req.method} ${req.path}; see /openapi.json`));
  });
  app.use((error: unknown, req: Request, res: Response, _next: NextFunction) => {
    let err = error;
    const bodyParser = error as { type?: string; status?: number };
    if (bodyParser?.type === 'entity.parse.failed') {
      err = new ServerError('CLP_E_VALIDATION', 'body: not valid JSON', { field: 'body' });
    } else if (bodyParser?.type === 'entity.too.large') {
      err = new ServerError(
        'CLP_E_UPLOAD_TOO_LARGE',
        `body: larger than the ${(res.locals.route as Route | undefined)?.id === 'report' ? REPORT_JSON_LIMIT : JSON_LIMIT} allowed for this JSON request`,
        { field: 'body' },
      );
    } else if (bodyParser?.type && typeof bodyParser.status === 'number' && bodyParser.status < 500) {
      err = new ServerError('CLP_E_VALIDATION', `body: ${(error as Error).message}`, { field: 'body' });
    } else if (error instanceof URIError) {
      err = new ServerError('CLP_E_VALIDATION', 'the URL is not valid percent-encoding');
    } else if (!isClpError(error) && isDatabaseUnavailable(error)) {
      const cause = error as { message?: string; code?: string };
      log.warn({ error: cause.message, code: cause.code, url: req.originalUrl }, 'database unavailable');
      err = new ServerError(
        'CLP_E_UNAVAILABLE',
        'the database is not reachable right now; try again shortly',
        { details: { retryAfter: 2 } },
      );
    }
    if (res.headersSent) {
      log.warn({ err, url: req.originalUrl }, 'error after the response started; connection closed');
      res.destroy();
      return;
    }
    // An error describes this request only: no cache keeps it, and no validator of content goes with it.
    res.removeHeader('ETag');
    res.setHeader('Cache-Control', 'no-store');
    if (isClpError(err)) {
      const status = httpStatusFor(err.code);
      const field = (err as ServerError).field;
      // A body left unread (a refused upload) is not worth receiving: end the connection instead.
      if (status === 413 || !req.complete) res.setHeader('Connection', 'close');
      if (status === 401) res.setHeader('WWW-Authenticate', 'Bearer realm="clp"');
      if (status === 429 || status === 503)
        res.setHeader('Retry-After', String(err.details.retryAfter ?? 60));
      // A 503 was logged once as 'database unavailable' above; a stack trace per request adds nothing.
      if (status >= 500 && status !== 503) log.error({ err, url: req.originalUrl }, 'request failed');
      res
        .status(status)
        .json({ error: { code: err.code, message: err.message, ...(field ? { field } : {}) } });
      return;
    }
    log.error({ err, url: req.originalUrl }, 'unexpected error');
    res
      .status(500)
      .json({ error: { code: 'CLP_E_INTERNAL', message: 'internal server error; see the server log' } });
  });

  let server: Server | HttpsServer | undefined;
  let tlsFiles: TlsFiles | undefined;
  return {
    app,
    context: ctx,
    generatedAdminToken,
    async listen(port, host = '0.0.0.0', tls) {
      const s = tls ? createHttpsServer(await loadTls(tls), app) : createHttpServer(app);
      tlsFiles = tls;
      s.keepAliveTimeout = 65_000;
      // A release of hundreds of MiB over a slow link takes longer than Node's 5-minute default;
      // headers must still arrive within a minute.
      s.requestTimeout = 30 * 60_000;
      s.headersTimeout = 60_000;
      server = s;
      await new Promise<void>((resolve, reject) => {
        s.once('error', reject);
        s.listen(port, host, () => {
          s.off('error', reject);
          resolve();
        });
      });
      const address = s.address() as AddressInfo;
      return {
        port: address.port,
        url: `${tls ? 'https' : 'http'}://${reachableHost(address.address)}:${address.port}`,
        bound: formatAddress(address.address, address.port),
      };
    },
    async reloadTls() {
      if (!tlsFiles || !server || !('setSecureContext' in server)) return;
      server.setSecureContext(await loadTls(tlsFiles));
    },
    async tick() {
      await judge();
      ctx.rollouts.invalidate();
    },
    async close() {
      if (server) {
        const s = server;
        await new Promise<void>((resolve) => {
          s.close(() => resolve());
          s.closeIdleConnections();
          // Requests still running after 10 s are cut.
          setTimeout(() => s.closeAllConnections(), 10_000).unref();
        });
      }
      await ticker.stop();
      await changes.close();
      await ctx.seen.close();
      await ctx.offers.close();
      await ctx.webhooks.close();
      if (!deps.database) await database.close();
      lock?.release();
    },
  };
}
