import { createHash, randomBytes } from 'node:crypto';
import { copyFile, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer, type IncomingMessage, request, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { writePatch } from '@clp/format';
import { loadPrivateKey, signPatch, writeKeyPair } from '@clp/trust';
import { expect } from 'vitest';
import { type Running, start } from '../../server/test/harness.ts';

export { type Running, start };

/** Settings that keep retries in the tests short. */
export const FAST_HTTP = {
  timeoutMs: 3_000,
  retries: 2,
  backoffMs: 20,
  backoffMaxMs: 100,
  maxRetryAfterMs: 1_000,
};

export function sha256(data: Buffer | string): string {
  return createHash('sha256').update(data).digest('hex');
}

export async function tempDir(prefix: string): Promise<string> {
  return mkdtemp(join(tmpdir(), prefix));
}

/** A machine root with os-release, passwd/group (owners resolve), a hostname and a machine-id. */
export async function newRoot(
  options: { hostname?: string; machineId?: string; pubFile?: string } = {},
): Promise<string> {
  const root = await tempDir('clp-fleet-root-');
  await mkdir(join(root, 'etc/clp/keys.d'), { recursive: true });
  await writeFile(join(root, 'etc/os-release'), 'NAME="Vincent OS"\nID=vincent\nVERSION_ID="2025.11"\n');
  await writeFile(join(root, 'etc/hostname'), `${options.hostname ?? 'fleet-test'}\n`);
  if (options.machineId) await writeFile(join(root, 'etc/machine-id'), `${options.machineId}\n`);
  await copyFile('/etc/passwd', join(root, 'etc/passwd'));
  await copyFile('/etc/group', join(root, 'etc/group'));
  if (options.pubFile) await copyFile(options.pubFile, join(root, 'etc/clp/keys.d/release.pub'));
  return root;
}

export async function enrollmentToken(
  s: Running,
  tier = 'stable',
  uses = 10,
  tags: string[] = [],
): Promise<string> {
  const res = await s.call('POST', '/v1/enrollment-tokens', { token: s.admin, json: { tier, uses, tags } });
  expect(res.status).toBe(201);
  return res.body.token as string;
}

export interface SignedPatch {
  file: string;
  name: string;
  sha256: string;
  /** Path the patch adds (absolute on the target). */
  adds: string;
  content: string;
}

/**
 * A real signed .clp: adds /etc/fleet-NAME.conf; with `requires`, also replaces /etc/motd and
 * so needs the given current content there (a precondition some roots do not meet).
 */
export async function signedPatch(
  dir: string,
  keyFile: string,
  name: string,
  options: { requires?: string; padding?: number } = {},
): Promise<SignedPatch> {
  // Random padding does not compress, so the .clp is about that large (for cut downloads).
  const content = `# ${name}\nvalue = ${name.toLowerCase()}\n# ${randomBytes(options.padding ?? 0).toString('base64')}\n`;
  const adds = `/etc/fleet-${name.toLowerCase()}.conf`;
  const motd = `motd from ${name}\n`;
  const actions = [
    `<File action="add" path="${adds}" source="payload/fleet.conf" sha256="${sha256(content)}" mode="0644"/>`,
  ];
  const entries = [{ name: 'payload/fleet.conf', data: Buffer.from(content) }];
  if (options.requires !== undefined) {
    actions.push(
      `<File action="replace" path="/etc/motd" source="payload/motd" expect-sha256="${sha256(options.requires)}" sha256="${sha256(motd)}" mode="0644"/>`,
    );
    entries.push({ name: 'payload/motd', data: Buffer.from(motd) });
  }
  const meta = `<?xml version="1.0" encoding="UTF-8"?>
<Package>
  <Name>${name}</Name>
  <Version>1</Version>
  <Architecture>any</Architecture>
  <Description>fleet test patch</Description>
  <Actions>
    ${actions.join('\n    ')}
  </Actions>
</Package>
`;
  const file = join(dir, `${name}.clp`);
  await writePatch(file, [{ name: 'PKGINFO.meta', data: Buffer.from(meta) }, ...entries]);
  await signPatch(file, file, await loadPrivateKey(keyFile), 'fleet-test');
  return { file, name, sha256: sha256(await readFile(file)), adds, content };
}

/** A release key pair in DIR, with its public half trusted by the server. */
export async function releaseKey(dir: string, s: Running): Promise<{ keyFile: string; pubFile: string }> {
  const written = await writeKeyPair(dir, 'release');
  await mkdir(join(s.dataDir, 'keys'), { recursive: true });
  await copyFile(written.pubFile, join(s.dataDir, 'keys', 'release.pub'));
  return { keyFile: written.keyFile, pubFile: written.pubFile };
}

export async function upload(s: Running, file: string): Promise<string> {
  const res = await s.call('POST', '/v1/releases', {
    token: s.admin,
    body: await readFile(file),
    headers: { 'content-type': 'application/octet-stream' },
  });
  expect(res.status, JSON.stringify(res.body)).toBe(201);
  return res.body.id as string;
}

export async function rollout(
  s: Running,
  releaseId: string,
  tier = 'stable',
  percent = 100,
): Promise<string> {
  const res = await s.call('POST', '/v1/rollouts', {
    token: s.admin,
    json: { releaseId, tier, stages: [{ percent, minDurationSeconds: 0 }] },
  });
  expect(res.status, JSON.stringify(res.body)).toBe(201);
  return res.body.id as string;
}

/** What the proxy does with one request. */
export type Fault =
  | 'pass'
  /** Close the connection without an answer (a server that went away). */
  | 'refuse'
  /** Answer this status with an ApiError body, without asking the server. */
  | { status: number; retryAfter?: number }
  /** Forward, then send only the first `bytes` of the body and cut the connection. */
  | { cutAfter: number }
  /** Forward, and flip one byte of the body. */
  | 'corrupt'
  /** Forward the request, let the server act on it, then drop its answer (a lost acknowledgement). */
  | 'lose-answer';

export interface SeenRequest {
  method: string;
  url: string;
  range: string | undefined;
  at: number;
}

export interface FaultProxy {
  url: string;
  seen: SeenRequest[];
  /** Decides each request's fault; the default passes everything. */
  fault: (req: IncomingMessage, index: number) => Fault;
  close(): Promise<void>;
}

/** A small HTTP proxy in front of TARGET that can fail, cut, corrupt or drop, request by request. */
export async function faultProxy(target: string): Promise<FaultProxy> {
  const upstream = new URL(target);
  const proxy: FaultProxy = {
    url: '',
    seen: [],
    fault: () => 'pass',
    close: async () => {},
  };
  const handle = (req: IncomingMessage, res: ServerResponse) => {
    const index = proxy.seen.length;
    proxy.seen.push({
      method: req.method ?? 'GET',
      url: req.url ?? '/',
      range: req.headers.range,
      at: Date.now(),
    });
    const fault = proxy.fault(req, index);
    if (fault === 'refuse') {
      req.socket.destroy();
      return;
    }
    if (typeof fault === 'object' && 'status' in fault) {
      req.resume();
      res.statusCode = fault.status;
      res.setHeader('content-type', 'application/json');
      if (fault.retryAfter !== undefined) res.setHeader('retry-after', String(fault.retryAfter));
      res.end(JSON.stringify({ error: { code: 'CLP_E_TEST_FAULT', message: `injected ${fault.status}` } }));
      return;
    }
    const forward = request(
      {
        host: upstream.hostname,
        port: upstream.port,
        method: req.method,
        path: req.url,
        headers: { ...req.headers, host: upstream.host },
      },
      (up) => {
        if (fault === 'lose-answer') {
          up.resume();
          up.on('end', () => req.socket.destroy());
          return;
        }
        if (typeof fault === 'object' && 'cutAfter' in fault) {
          res.writeHead(up.statusCode ?? 502, up.headers);
          let sent = 0;
          up.on('data', (chunk: Buffer) => {
            if (sent >= fault.cutAfter) return;
            const part = chunk.subarray(0, fault.cutAfter - sent);
            sent += part.length;
            res.write(part);
            if (sent >= fault.cutAfter) {
              // Let the bytes leave before the cut, as a dropped link would.
              setTimeout(() => {
                up.destroy();
                req.socket.destroy();
              }, 20);
            }
          });
          return;
        }
        if (fault === 'corrupt') {
          const chunks: Buffer[] = [];
          up.on('data', (chunk: Buffer) => chunks.push(chunk));
          up.on('end', () => {
            const body = Buffer.concat(chunks);
            if (body.length > 0) body[Math.floor(body.length / 2)]! ^= 0xff;
            res.writeHead(up.statusCode ?? 502, up.headers);
            res.end(body);
          });
          return;
        }
        res.writeHead(up.statusCode ?? 502, up.headers);
        up.pipe(res);
      },
    );
    forward.on('error', () => req.socket.destroy());
    req.pipe(forward);
  };
  const server: Server = createServer(handle);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  proxy.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  proxy.close = () =>
    new Promise<void>((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    });
  return proxy;
}

/** A URL on which nothing listens (a server that is down). */
export async function deadUrl(): Promise<string> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return `http://127.0.0.1:${port}`;
}

export async function removeAll(...dirs: string[]): Promise<void> {
  await Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true })));
}
