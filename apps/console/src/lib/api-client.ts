import { CSRF_HEADER } from '@clp/protocol';

/**
 * The one way the console talks to the server. Every call is declared with `endpoint()` (its
 * operationId, method and path), so a test can check each of them against /openapi.json; errors
 * come back as ApiFailure with the server's code and message, whatever went wrong.
 */
export type Method = 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';

export interface EndpointInfo {
  /** The route's operationId in /openapi.json. */
  id: string;
  method: Method;
  /** Express-style path: /v1/rollouts/:id. */
  path: string;
}

/** Every endpoint the console calls, registered as the feature modules load. */
export const ENDPOINTS: EndpointInfo[] = [];

export class ApiFailure extends Error {
  readonly code: string;
  readonly status: number;
  readonly field: string | undefined;
  constructor(status: number, code: string, message: string, field?: string) {
    super(message);
    this.name = 'ApiFailure';
    this.status = status;
    this.code = code;
    this.field = field;
  }
}

type Query = Record<string, string | number | boolean | undefined | null>;

export interface CallArgs<B> {
  params?: Record<string, string>;
  query?: Query;
  body?: B;
}

let csrfToken: string | null = null;
let clockSkewMs = 0;
let onUnauthorized: (() => void) | undefined;

/** The session's CSRF token, sent on every unsafe call (the server derives it from the cookie). */
export function setCsrfToken(token: string | null): void {
  csrfToken = token;
}

/** Remembers how far the server's clock is from this browser's, for relative times. */
export function setServerTime(iso: string): void {
  const t = Date.parse(iso);
  if (!Number.isNaN(t)) clockSkewMs = t - Date.now();
}

/** Now, by the server's clock. */
export function serverNow(): number {
  return Date.now() + clockSkewMs;
}

/** Called when the server says the session has ended (401): the app shows the sign-in page. */
export function setUnauthorizedHandler(handler: () => void): void {
  onUnauthorized = handler;
}

function url(path: string, args: CallArgs<unknown>): string {
  const filled = path.replace(/:([A-Za-z0-9_]+)/g, (_m, name: string) => {
    const value = args.params?.[name];
    if (value === undefined) throw new Error(`missing path parameter ${name} for ${path}`);
    return encodeURIComponent(value);
  });
  const search = new URLSearchParams();
  for (const [k, v] of Object.entries(args.query ?? {})) {
    if (v !== undefined && v !== null && v !== '') search.set(k, String(v));
  }
  const qs = search.toString();
  return qs ? `${filled}?${qs}` : filled;
}

function headersFor(method: Method, json: boolean): Record<string, string> {
  const headers: Record<string, string> = { accept: 'application/json' };
  if (json) headers['content-type'] = 'application/json';
  if (method !== 'GET' && csrfToken) headers[CSRF_HEADER] = csrfToken;
  return headers;
}

/** Turns any failed answer into an ApiFailure whose message says what to do. */
function failureOf(status: number, text: string): ApiFailure {
  try {
    const body = JSON.parse(text) as { error?: { code?: string; message?: string; field?: string } };
    if (body.error?.code && body.error.message) {
      return new ApiFailure(status, body.error.code, body.error.message, body.error.field);
    }
  } catch {
    // not JSON: a proxy's page
  }
  if (status === 502 || status === 503 || status === 504)
    return new ApiFailure(
      status,
      'CLP_E_UNAVAILABLE',
      `the server is not answering (HTTP ${status}); try again in a moment`,
    );
  return new ApiFailure(status, 'CLP_E_HTTP', `the server answered HTTP ${status}; see the server log`);
}

async function send<R>(method: Method, target: string, body: unknown, bySession: boolean): Promise<R> {
  let res: Response;
  try {
    res = await fetch(target, {
      method,
      headers: headersFor(method, body !== undefined),
      body: body === undefined ? undefined : JSON.stringify(body),
      credentials: 'same-origin',
      cache: 'no-store',
    });
  } catch {
    throw new ApiFailure(
      0,
      'CLP_E_OFFLINE',
      'cannot reach the server; check the network and that the server runs',
    );
  }
  const text = await res.text();
  if (!res.ok) {
    const failure = failureOf(res.status, text);
    if (res.status === 401 && bySession && onUnauthorized) onUnauthorized();
    throw failure;
  }
  return (text ? JSON.parse(text) : undefined) as R;
}

/**
 * Declares an endpoint and answers the function that calls it. A 401 from an endpoint the session
 * authenticates means the session ended (the console shows the sign-in page); `public` endpoints
 * (signing in, changing one's password) answer 401 for a wrong password, which ends nothing.
 */
export function endpoint<R, B = undefined>(
  id: string,
  method: Method,
  path: string,
  options: { public?: boolean } = {},
) {
  ENDPOINTS.push({ id, method, path });
  return (args: CallArgs<B> = {}): Promise<R> => send<R>(method, url(path, args), args.body, !options.public);
}

/** Declares an upload endpoint: a file as the raw body, with progress (fetch has no upload progress). */
export function uploadEndpoint<R>(id: string, path: string) {
  ENDPOINTS.push({ id, method: 'POST', path });
  return (file: Blob, onProgress: (fraction: number) => void): Promise<R> =>
    new Promise((resolve, reject) => {
      const xhr = new XMLHttpRequest();
      xhr.open('POST', path);
      xhr.setRequestHeader('content-type', 'application/octet-stream');
      if (csrfToken) xhr.setRequestHeader(CSRF_HEADER, csrfToken);
      xhr.upload.onprogress = (e) => {
        if (e.lengthComputable) onProgress(e.loaded / e.total);
      };
      xhr.onerror = () =>
        reject(new ApiFailure(0, 'CLP_E_OFFLINE', 'the upload was cut; check the network and try again'));
      xhr.onload = () => {
        if (xhr.status >= 200 && xhr.status < 300) {
          onProgress(1);
          resolve(JSON.parse(xhr.responseText) as R);
        } else {
          if (xhr.status === 401 && onUnauthorized) onUnauthorized();
          reject(failureOf(xhr.status, xhr.responseText));
        }
      };
      xhr.send(file);
    });
}
