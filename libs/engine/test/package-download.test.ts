/** Package files named by URL: HTTPS only (HTTP when allowed), redirects held to the same rule. */
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtemp, readFile } from 'node:fs/promises';
import { createServer as createHttpServer, type Server as HttpServer } from 'node:http';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import tls from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { download } from '../src/package-managers/download.ts';
import { hasTool } from './package-fixtures.ts';

const noOpenssl = !hasTool('openssl');
if (noOpenssl) console.warn('skipped: needs openssl (a test certificate for the HTTPS download tests)');

const BODY = Buffer.from('a package file\n');
const SHA = createHash('sha256').update(BODY).digest('hex');
const RULES = { maxBytes: 1024, limitFrom: 'cap' as const, allowHttp: false };

describe.skipIf(noOpenssl)('downloading a package file by URL', () => {
  let work: string;
  let https: Server;
  let http: HttpServer;
  let httpsBase: string;
  let httpBase: string;
  const trusted = tls.getCACertificates('default');

  beforeAll(async () => {
    work = await mkdtemp(join(tmpdir(), 'clp-download-'));
    const made = spawnSync(
      'openssl',
      [
        'req',
        '-x509',
        '-newkey',
        'rsa:2048',
        '-nodes',
        '-days',
        '1',
        '-subj',
        '/CN=127.0.0.1',
        '-addext',
        'subjectAltName=IP:127.0.0.1',
      ].concat(['-keyout', join(work, 'key.pem'), '-out', join(work, 'cert.pem')]),
      { stdio: 'ignore' },
    );
    expect(made.status).toBe(0);
    const cert = await readFile(join(work, 'cert.pem'), 'utf8');
    http = createHttpServer((req, res) => {
      if (req.url === '/pkg') res.end(BODY);
      else res.writeHead(404).end();
    });
    await new Promise<void>((r) => http.listen(0, '127.0.0.1', r));
    httpBase = `http://127.0.0.1:${(http.address() as AddressInfo).port}`;
    https = createServer({ key: await readFile(join(work, 'key.pem')), cert }, (req, res) => {
      if (req.url === '/pkg') res.end(BODY);
      else if (req.url === '/to-https') res.writeHead(302, { location: '/pkg' }).end();
      else if (req.url === '/to-http') res.writeHead(302, { location: `${httpBase}/pkg` }).end();
      else res.writeHead(404).end();
    });
    await new Promise<void>((r) => https.listen(0, '127.0.0.1', r));
    httpsBase = `https://127.0.0.1:${(https.address() as AddressInfo).port}`;
    // The test's own certificate authority, trusted as an operator's would be (NODE_EXTRA_CA_CERTS).
    tls.setDefaultCACertificates([...trusted, cert]);
  });
  afterAll(async () => {
    tls.setDefaultCACertificates(trusted);
    https.closeAllConnections();
    http.closeAllConnections();
    await new Promise((r) => https.close(r));
    await new Promise((r) => http.close(r));
  });

  it('fetches over https, following a redirect that stays on https', async () => {
    for (const path of ['/pkg', '/to-https']) {
      const file = await download(`${httpsBase}${path}`, SHA, join(work, `ok${path}`), RULES);
      expect(await readFile(file)).toEqual(BODY);
    }
  });

  it('refuses a redirect from https to plain http, and plain http itself unless allowed', async () => {
    await expect(download(`${httpsBase}/to-http`, SHA, join(work, 'down'), RULES)).rejects.toMatchObject({
      code: 'CLP_E_PACKAGE_URL_REFUSED',
      message: expect.stringMatching(/redirects to http:\/\/.*plain HTTP is refused unless allowed/),
    });
    await expect(download(`${httpBase}/pkg`, SHA, join(work, 'plain'), RULES)).rejects.toMatchObject({
      code: 'CLP_E_PACKAGE_URL_REFUSED',
    });
    const file = await download(`${httpBase}/pkg`, SHA, join(work, 'allowed'), { ...RULES, allowHttp: true });
    expect(await readFile(file)).toEqual(BODY);
  });

  it('refuses a server whose certificate nothing trusts', async () => {
    // A server of its own: the connections to the trusted one may be kept open and reused.
    const other = createServer(
      { key: await readFile(join(work, 'key.pem')), cert: await readFile(join(work, 'cert.pem')) },
      (_req, res) => res.end(BODY),
    );
    await new Promise<void>((r) => other.listen(0, '127.0.0.1', r));
    tls.setDefaultCACertificates(trusted);
    try {
      const url = `https://127.0.0.1:${(other.address() as AddressInfo).port}/pkg`;
      await expect(download(url, SHA, join(work, 'untrusted'), RULES)).rejects.toMatchObject({
        code: 'CLP_E_PACKAGE_DOWNLOAD_FAILED',
      });
    } finally {
      tls.setDefaultCACertificates([...trusted, await readFile(join(work, 'cert.pem'), 'utf8')]);
      other.closeAllConnections();
      await new Promise((r) => other.close(r));
    }
  }, 30_000);
});
