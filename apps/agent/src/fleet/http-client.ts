import { ApiError } from '@clp/protocol';
import got, { type Got, HTTPError, RequestError } from 'got';
import type { z } from 'zod';
import { AGENT_VERSION } from '../version.ts';
import type { HttpConfig } from './config.ts';
import { FleetError } from './errors.ts';
import { RETRY_ERROR_CODES, RETRY_STATUS_CODES, retryDelay } from './retry-delay.ts';
import { certificateAuthorities, checkServerUrl, type TransportPolicy } from './server-transport.ts';

export interface HttpClientOptions {
  /** Base URLs, tried in order. */
  servers: readonly string[];
  credential?: string | undefined;
  http: HttpConfig;
  log?: ((line: string) => void) | undefined;
  /** CA file and plain-HTTP permission (default: the system store; http:// only to loopback). */
  transport?: TransportPolicy | undefined;
}

export interface ServerAnswer<T> {
  value: T;
  /** The base URL that answered. */
  server: string;
}

/** Joins a base URL (with or without a path or trailing slash) and an absolute API path. */
export function joinUrl(base: string, path: string): string {
  return `${base.replace(/\/+$/, '')}/${path.replace(/^\/+/, '')}`;
}

/** The server's own error message when the body is an ApiError, else the status line. */
export function describeHttpError(error: HTTPError): { message: string; code?: string } {
  const body = error.response.body;
  try {
    const parsed = ApiError.safeParse(typeof body === 'string' ? JSON.parse(body) : JSON.parse(String(body)));
    if (parsed.success) return { message: parsed.data.error.message, code: parsed.data.error.code };
  } catch {
    // not JSON: fall through
  }
  return { message: `HTTP ${error.response.statusCode} ${error.response.statusMessage ?? ''}`.trim() };
}

/** A network failure or 5xx/429 that survived the retries: worth trying another server. */
export function isTransient(error: unknown): boolean {
  if (error instanceof HTTPError) return RETRY_STATUS_CODES.includes(error.response.statusCode);
  return error instanceof RequestError;
}

/**
 * The agent's HTTP client: got with time limits, bounded retries (exponential back-off with
 * jitter, Retry-After respected on 429/503) and fallback across the configured servers.
 */
export class AgentHttpClient {
  readonly servers: readonly string[];
  readonly http: HttpConfig;
  readonly got: Got;
  /** For downloads: no total time limit (a large patch takes long), but connect/first-byte/idle limits; retries are the caller's, so that it can resume. */
  readonly streamGot: Got;
  readonly #log: (line: string) => void;

  constructor(options: HttpClientOptions) {
    this.servers = options.servers;
    this.http = options.http;
    this.#log = options.log ?? (() => {});
    const http = options.http;
    const log = this.#log;
    const transport = options.transport ?? {};
    for (const server of options.servers) checkServerUrl(server, transport);
    // Read only when a server speaks https: a plain-loopback agent starts without the CA list.
    const https = options.servers.some((s) => s.startsWith('https:'))
      ? { certificateAuthority: certificateAuthorities(transport.caFile) }
      : {};
    const headers = {
      'user-agent': `clpctl/${AGENT_VERSION}`,
      ...(options.credential ? { authorization: `Bearer ${options.credential}` } : {}),
    };
    this.streamGot = got.extend({
      headers,
      timeout: { connect: http.timeoutMs, response: http.timeoutMs, socket: http.timeoutMs },
      retry: { limit: 0 },
      decompress: false,
      https,
    });
    this.got = got.extend({
      headers,
      timeout: { request: http.timeoutMs },
      https,
      retry: {
        limit: http.retries,
        methods: ['GET', 'HEAD', 'POST', 'PUT'],
        statusCodes: RETRY_STATUS_CODES,
        errorCodes: RETRY_ERROR_CODES,
        maxRetryAfter: http.maxRetryAfterMs,
        calculateDelay: ({ attemptCount, retryAfter, computedValue, error }) => {
          // computedValue 0: got's own rules say no (limit reached, 4xx, Retry-After too long).
          if (computedValue === 0) return 0;
          const delay = retryAfter !== undefined ? computedValue : retryDelay(attemptCount, http);
          const why = error.response ? `HTTP ${error.response.statusCode}` : error.code;
          log(
            `retry ${attemptCount}/${http.retries} of ${error.options.url?.toString() ?? ''} in ${delay} ms (${why})`,
          );
          return Math.max(1, delay);
        },
      },
    });
  }

  log(line: string): void {
    this.#log(line);
  }

  /**
   * POSTs JSON to PATH on each server in order until one answers 2xx with a body the schema
   * accepts. Network errors, 5xx and 429 (after retries) and malformed answers move on to the
   * next server; any other 4xx is the server's considered answer and stops here.
   */
  async postJson<T>(
    path: string,
    body: unknown,
    schema: z.ZodType<T>,
    servers = this.servers,
  ): Promise<ServerAnswer<T>> {
    const failures: string[] = [];
    let protocolError: FleetError | undefined;
    for (const server of servers) {
      const url = joinUrl(server, path);
      let raw: unknown;
      try {
        raw = await this.got.post(url, { json: body }).json();
      } catch (error) {
        if (error instanceof HTTPError && !isTransient(error)) {
          const { message, code } = describeHttpError(error);
          throw new FleetError(
            'CLP_E_SERVER_REJECTED',
            `${url} refused the request: ${message}${code ? ` (${code})` : ''}`,
            { cause: error, details: { url, status: error.response.statusCode, serverCode: code } },
          );
        }
        const reason =
          error instanceof HTTPError ? `HTTP ${error.response.statusCode}` : describeNetworkError(error);
        this.#log(`${url}: ${reason}; trying the next server`);
        failures.push(`${server}: ${reason}`);
        continue;
      }
      const parsed = schema.safeParse(raw);
      if (parsed.success) return { value: parsed.data, server };
      const issue = parsed.error.issues[0];
      protocolError = new FleetError(
        'CLP_E_SERVER_PROTOCOL',
        `${url} answered with a body this agent does not understand (field "${issue?.path.join('.') ?? ''}": ${issue?.message ?? ''}); is the server the same version?`,
        { details: { url } },
      );
      failures.push(`${server}: unexpected answer`);
      this.#log(protocolError.message);
    }
    if (protocolError && failures.length === 1) throw protocolError;
    throw new FleetError(
      'CLP_E_SERVER_UNREACHABLE',
      `no server answered ${path}: ${failures.join('; ') || 'no server configured'}; the next check will try again`,
      { details: { failures } },
    );
  }
}

export function describeNetworkError(error: unknown): string {
  if (error instanceof RequestError) return `${error.code ?? 'network error'}: ${error.message}`;
  return error instanceof Error ? error.message : String(error);
}
