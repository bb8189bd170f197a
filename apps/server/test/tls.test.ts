import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { copyFile, mkdtemp, rm } from 'node:fs/promises';
import { request } from 'node:https';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { makeCertificate } from './tls-files.ts';

/** The server program serving HTTPS itself: CLP_LISTEN, CLP_TLS_CERT/KEY, SIGHUP after a renewal. */

const root = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');
const bundle = join(root, 'apps/server/dist/server.mjs');
const entry = existsSync(bundle) ? bundle : join(root, 'apps/server/src/main.ts');

interface Child {
  proc: ChildProcess;
  output(): string;
  exited: Promise<number | null>;
}

function launch(env: Record<string, string>): Child {
  const proc = spawn(process.execPath, [entry], {
    cwd: root,
    env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/root', CLP_LOG_LEVEL: 'info', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  for (const stream of [proc.stdout!, proc.stderr!]) stream.on('data', (c: Buffer) => (out += c.toString()));
  const exited = new Promise<number | null>((done) => proc.once('exit', (code) => done(code)));
  return { proc, output: () => out, exited };
}

async function waitFor(child: Child, pattern: RegExp, timeoutMs = 60_000): Promise<RegExpExecArray> {
  const started = Date.now();
  for (;;) {
    const m = pattern.exec(child.output());
    if (m) return m;
    if (child.proc.exitCode !== null) throw new Error(`the server exited:\n${child.output()}`);
    if (Date.now() - started > timeoutMs)
      throw new Error(`no ${pattern} within ${timeoutMs} ms:\n${child.output()}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** GET /healthz over HTTPS trusting only CA; resolves with the certificate the server presented. */
function healthz(url: string, ca: string): Promise<{ status: number; fingerprint: string }> {
  return new Promise((done, fail) => {
    const req = request(`${url}/healthz`, { ca: readFileSync(ca), agent: false }, (res) => {
      const fingerprint = (res.socket as import('node:tls').TLSSocket).getPeerCertificate().fingerprint256;
      res.resume();
      res.on('end', () => done({ status: res.statusCode ?? 0, fingerprint }));
    });
    req.on('error', fail);
    req.end();
  });
}

describe('the server over TLS', () => {
  const dirs: string[] = [];
  afterAll(async () => {
    for (const d of dirs) await rm(d, { recursive: true, force: true });
  });

  it('serves HTTPS on CLP_LISTEN, prints the bound address, and takes a new certificate on SIGHUP', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'clp-tls-'));
    dirs.push(dir);
    const first = makeCertificate(dir, 'first');
    const second = makeCertificate(dir, 'second');
    const live = { certFile: join(dir, 'live.crt'), keyFile: join(dir, 'live.key') };
    await copyFile(first.certFile, live.certFile);
    await copyFile(first.keyFile, live.keyFile);
    const child = launch({
      CLP_LISTEN: '127.0.0.1:0',
      CLP_DATA_DIR: join(dir, 'data'),
      DATABASE_URL: '',
      CLP_BOOTSTRAP_TOKEN: `clp_adm_${randomBytes(24).toString('hex')}`,
      CLP_TLS_CERT: live.certFile,
      CLP_TLS_KEY: live.keyFile,
    });
    try {
      const url = (
        await waitFor(child, /listening on (https:\/\/127\.0\.0\.1:\d+) \(bound to 127\.0\.0\.1:\d+;/)
      )[1]!;
      const before = await healthz(url, first.certFile);
      expect(before).toEqual({ status: 200, fingerprint: first.fingerprint });
      // Plain HTTP to the TLS port is not served.
      await expect(fetch(url.replace('https:', 'http:'))).rejects.toThrow();

      await copyFile(second.certFile, live.certFile);
      await copyFile(second.keyFile, live.keyFile);
      child.proc.kill('SIGHUP');
      await waitFor(child, /TLS certificate reloaded/);
      const after = await healthz(url, second.certFile);
      expect(after).toEqual({ status: 200, fingerprint: second.fingerprint });
      // The old certificate no longer verifies what is served.
      await expect(healthz(url, first.certFile)).rejects.toThrow(/self.signed|unable to verify|certificate/i);

      // A broken renewal is refused and the working certificate stays.
      await copyFile(first.keyFile, live.keyFile);
      child.proc.kill('SIGHUP');
      await waitFor(child, /TLS certificate not reloaded/);
      expect(child.output()).toMatch(/not a usable pair/);
      expect((await healthz(url, second.certFile)).fingerprint).toBe(second.fingerprint);
    } finally {
      child.proc.kill('SIGTERM');
      expect(await child.exited).toBe(0);
    }
  });

  it('refuses to start with only one of CLP_TLS_CERT and CLP_TLS_KEY, or an unreadable file', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'clp-tls-bad-'));
    dirs.push(dir);
    const half = launch({
      CLP_LISTEN: '127.0.0.1:0',
      CLP_DATA_DIR: join(dir, 'a'),
      CLP_TLS_CERT: '/etc/hostname',
    });
    expect(await half.exited).toBe(1);
    expect(half.output()).toContain('set both CLP_TLS_CERT and CLP_TLS_KEY');
    const missing = launch({
      CLP_LISTEN: '127.0.0.1:0',
      CLP_DATA_DIR: join(dir, 'b'),
      CLP_TLS_CERT: join(dir, 'nope.crt'),
      CLP_TLS_KEY: join(dir, 'nope.key'),
    });
    expect(await missing.exited).toBe(1);
    expect(missing.output()).toMatch(/CLP_TLS_CERT=.*nope\.crt cannot be read \(ENOENT\)/);
  });

  it('binds only the address CLP_LISTEN names', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'clp-listen-'));
    dirs.push(dir);
    const child = launch({ CLP_LISTEN: '127.0.0.1:0', CLP_DATA_DIR: join(dir, 'data'), DATABASE_URL: '' });
    try {
      const m = await waitFor(
        child,
        /listening on (http:\/\/127\.0\.0\.1:(\d+)) \(bound to 127\.0\.0\.1:\d+; set CLP_LISTEN/,
      );
      expect(child.output()).toContain('TLS: off');
      expect((await fetch(`${m[1]}/healthz`)).status).toBe(200);
    } finally {
      child.proc.kill('SIGTERM');
      expect(await child.exited).toBe(0);
    }
  });
});
