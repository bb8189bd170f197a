import { createServer, type IncomingMessage, request, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';

/** What the proxy does with one request. */
export type Fault =
  | { kind: 'pass' }
  /** Answers this status itself (the server never sees the request). */
  | { kind: 'status'; status: number }
  /** Waits, then forwards. */
  | { kind: 'delay'; ms: number }
  /**
   * Forwards the status line, the headers and the first `bytes` of the body, then cuts the
   * connection; with 0 the server handles the request but the client gets no answer at all.
   */
  | { kind: 'cut'; bytes: number }
  /** Forwards the whole answer with one byte of the body flipped. */
  | { kind: 'corrupt' };

export interface SeenRequest {
  method: string;
  url: string;
  range: string | undefined;
  fault: Fault['kind'];
  status: number | undefined;
  /** performance.now() when the request arrived. */
  at: number;
}

export type FaultRule = (req: IncomingMessage) => Fault;

const pass: FaultRule = () => ({ kind: 'pass' });

/**
 * An HTTP proxy between agents and the server that misbehaves on demand (bar R4 in bench/README.md): `down()`
 * closes its port (connections are refused, as when the server is down), and a rule chooses a
 * fault per request. Every request is logged.
 */
export class FaultProxy {
  readonly #upstream: URL;
  readonly #sockets = new Set<Socket>();
  #server: Server | undefined;
  #port = 0;
  #rule: FaultRule = pass;
  readonly log: SeenRequest[] = [];

  constructor(upstream: string) {
    this.#upstream = new URL(upstream);
  }

  get url(): string {
    return `http://127.0.0.1:${this.#port}`;
  }

  setRule(rule: FaultRule): void {
    this.#rule = rule;
  }

  passAll(): void {
    this.#rule = pass;
  }

  /** Requests logged so far whose path starts with `prefix`. */
  seen(prefix: string): SeenRequest[] {
    return this.log.filter((r) => r.url.startsWith(prefix));
  }

  async up(): Promise<void> {
    if (this.#server) return;
    const server = createServer((req, res) => void this.#handle(req, res));
    server.on('connection', (socket) => {
      this.#sockets.add(socket);
      socket.on('close', () => this.#sockets.delete(socket));
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.#port, '127.0.0.1', () => resolve());
    });
    this.#port = (server.address() as AddressInfo).port;
    this.#server = server;
  }

  /** Stops listening and drops open connections: clients now get "connection refused". */
  async down(): Promise<void> {
    const server = this.#server;
    if (!server) return;
    this.#server = undefined;
    for (const socket of this.#sockets) socket.destroy();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  async #handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const fault = this.#rule(req);
    const entry: SeenRequest = {
      method: req.method ?? 'GET',
      url: req.url ?? '/',
      range: req.headers.range,
      fault: fault.kind,
      status: undefined,
      at: performance.now(),
    };
    this.log.push(entry);
    if (fault.kind === 'status') {
      entry.status = fault.status;
      req.resume();
      res.writeHead(fault.status, { 'content-type': 'application/json' });
      res.end(
        JSON.stringify({ error: { code: 'CLP_E_PROXY_FAULT', message: 'injected by the test proxy' } }),
      );
      return;
    }
    if (fault.kind === 'delay') await new Promise((r) => setTimeout(r, fault.ms));
    const upstream = request(
      {
        host: this.#upstream.hostname,
        port: this.#upstream.port,
        method: req.method,
        path: req.url,
        headers: { ...req.headers, host: this.#upstream.host },
        agent: false,
      },
      (up) => {
        entry.status = up.statusCode;
        if (fault.kind === 'cut' && fault.bytes <= 0) {
          // The server did the work; its answer never reaches the client.
          up.resume();
          up.on('end', () => res.socket?.destroy());
          return;
        }
        if (fault.kind === 'cut') {
          res.writeHead(up.statusCode ?? 502, up.headers);
          let left = fault.bytes;
          up.on('data', (chunk: Buffer) => {
            if (left <= 0) return;
            const part = chunk.subarray(0, left);
            left -= part.length;
            res.write(part);
            if (left <= 0) {
              up.destroy();
              // Let the written bytes reach the client, then cut.
              setTimeout(() => res.socket?.destroy(), 50);
            }
          });
          up.on('end', () => res.end());
          return;
        }
        if (fault.kind === 'corrupt') {
          const chunks: Buffer[] = [];
          up.on('data', (c: Buffer) => chunks.push(c));
          up.on('end', () => {
            const body = Buffer.concat(chunks);
            if (body.length > 0) body[body.length >> 1]! ^= 0xff;
            res.writeHead(up.statusCode ?? 502, up.headers);
            res.end(body);
          });
          return;
        }
        res.writeHead(up.statusCode ?? 502, up.headers);
        up.pipe(res);
      },
    );
    upstream.on('error', () => {
      if (!res.headersSent) res.writeHead(502).end();
      else res.socket?.destroy();
    });
    req.pipe(upstream);
  }
}
