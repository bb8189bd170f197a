import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { ClpError, FORMAT_ERROR_CODES } from '@clp/format';
import { ApiError } from '@clp/protocol';
import { TRUST_ERROR_CODES } from '@clp/trust';
import type { Got } from 'got';
import { certificateAuthorities, checkServerUrl, type TransportPolicy } from '../fleet/server-transport.ts';
import { AGENT_VERSION } from '../version.ts';
import { AdminError, isAdminErrorCode } from './errors.ts';

export interface AdminClientOptions {
  /** Base URL of the server, e.g. http://clp.example:8080 (a path prefix is kept). */
  server: string;
  token: string;
  timeoutMs?: number;
  /** CA file and plain-HTTP permission, as for the agent's own servers. */
  transport?: TransportPolicy;
}

export type Query = Record<string, string | number | undefined>;

interface Extra {
  json?: unknown;
  body?: NodeJS.ReadableStream;
  headers?: Record<string, string>;
  timeout?: { connect: number; response: number };
}

/** Codes a 4xx may carry that clpctl already maps to its own exit codes (bad archive, signature, not found). */
const PASSED_THROUGH = new Set<string>([...FORMAT_ERROR_CODES, ...TRUST_ERROR_CODES, 'CLP_E_NOT_FOUND']);

/** Turns a non-2xx answer into the error clpctl prints: the server's code and message for a 4xx. */
export function errorFromAnswer(status: number, body: string, url: string): ClpError {
  let code: string | undefined;
  let message = `HTTP ${status} from ${url}`;
  try {
    const parsed = ApiError.safeParse(JSON.parse(body));
    if (parsed.success) {
      code = parsed.data.error.code;
      message = parsed.data.error.message;
    }
  } catch {
    // not JSON (a proxy's error page): keep the status line
  }
  const details = { status, url, ...(code ? { serverCode: code } : {}) };
  if (status < 500 && code) {
    if (isAdminErrorCode(code)) return new AdminError(code, message, { details });
    if (PASSED_THROUGH.has(code)) return new ClpError(code, message, { details });
  }
  return new AdminError(
    'CLP_E_ADMIN_SERVER_FAILED',
    `the server answered HTTP ${status}${code ? ` ${code}` : ''}: ${message}${status >= 500 ? '; see the server log' : ''}`,
    { details },
  );
}

/** The admin API over HTTP with a Bearer token. One request per call; no retries (calls change state). */
export class AdminClient {
  readonly server: string;
  readonly #got: () => Promise<Got>;

  constructor(options: AdminClientOptions) {
    this.server = options.server.replace(/\/+$/, '');
    const transport = options.transport ?? {};
    checkServerUrl(this.server, transport, '--server');
    const https = this.server.startsWith('https:')
      ? { https: { certificateAuthority: certificateAuthorities(transport.caFile) } }
      : {};
    let client: Promise<Got> | undefined;
    // got is loaded with the first request: `clpctl --help` and the machine commands start without it.
    this.#got = () =>
      (client ??= import('got').then(({ default: got }) =>
        got.extend({
          ...https,
          headers: {
            // Without a token (a user changing their own password): no Authorization at all.
            ...(options.token ? { authorization: `Bearer ${options.token}` } : {}),
            'user-agent': `clpctl/${AGENT_VERSION}`,
          },
          timeout: { connect: 10_000, response: options.timeoutMs ?? 60_000 },
          retry: { limit: 0 },
          throwHttpErrors: false,
          responseType: 'text',
        }),
      ));
  }

  url(path: string, query: Query = {}): string {
    const url = new URL(this.server + path);
    for (const [k, v] of Object.entries(query))
      if (v !== undefined && v !== '') url.searchParams.set(k, String(v));
    return url.toString();
  }

  get<T>(path: string, query?: Query): Promise<T> {
    return this.#send<T>('GET', this.url(path, query));
  }

  post<T>(path: string, json: unknown = {}): Promise<T> {
    return this.#send<T>('POST', this.url(path), { json });
  }

  put<T>(path: string, json: unknown): Promise<T> {
    return this.#send<T>('PUT', this.url(path), { json });
  }

  delete<T>(path: string): Promise<T> {
    return this.#send<T>('DELETE', this.url(path));
  }

  patch<T>(path: string, json: unknown): Promise<T> {
    return this.#send<T>('PATCH', this.url(path), { json });
  }

  /** Streams a file as the raw request body (the file is never held in memory); answers the status too. */
  async upload<T>(path: string, file: string): Promise<{ status: number; body: T }> {
    let size: number;
    try {
      size = (await stat(file)).size;
    } catch (error) {
      throw new ClpError('CLP_E_NOT_FOUND', `cannot read ${file}: ${(error as Error).message}`, {
        cause: error,
      });
    }
    return this.#exchange<T>('POST', this.url(path), {
      body: createReadStream(file),
      headers: { 'content-type': 'application/octet-stream', 'content-length': String(size) },
      // A large release takes long to send and to verify.
      timeout: { connect: 10_000, response: 30 * 60_000 },
    });
  }

  async #send<T>(
    method: 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE',
    url: string,
    extra: Extra = {},
  ): Promise<T> {
    return (await this.#exchange<T>(method, url, extra)).body;
  }

  async #exchange<T>(
    method: 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE',
    url: string,
    extra: Extra = {},
  ): Promise<{ status: number; body: T }> {
    let answer: { statusCode: number; body: string };
    try {
      const send = await this.#got();
      answer = await send(url, { method, ...extra } as never);
    } catch (error) {
      const { RequestError } = await import('got');
      if (error instanceof RequestError) {
        throw new AdminError(
          'CLP_E_ADMIN_UNREACHABLE',
          `cannot reach the server at ${this.server} (${error.code ?? 'network error'}: ${error.message}); check --server / CLP_SERVER`,
          { cause: error, details: { url } },
        );
      }
      throw error;
    }
    if (answer.statusCode < 200 || answer.statusCode >= 300) {
      throw errorFromAnswer(answer.statusCode, answer.body, url);
    }
    if (answer.body === '') return { status: answer.statusCode, body: undefined as T };
    try {
      return { status: answer.statusCode, body: JSON.parse(answer.body) as T };
    } catch (error) {
      throw new AdminError(
        'CLP_E_ADMIN_SERVER_FAILED',
        `${url} answered ${answer.statusCode} with a body that is not JSON; is --server a Core LivePatch server?`,
        { cause: error },
      );
    }
  }
}
