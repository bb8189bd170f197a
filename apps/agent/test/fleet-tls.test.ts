import { randomBytes } from 'node:crypto';
import { copyFile, mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { type StartedServer, startServer } from '@clp/server';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeCertificate } from '../../server/test/tls-files.ts';
import { AdminClient } from '../src/admin/admin-client.ts';
import { defaultConfig, HttpConfig, loadConfig, saveConfig } from '../src/fleet/config.ts';
import { getConfigValue, setConfigValue } from '../src/fleet/config-keys.ts';
import { enrollMachine } from '../src/fleet/enroll.ts';
import { AgentHttpClient } from '../src/fleet/http-client.ts';
import { FAST_HTTP, newRoot, removeAll, tempDir } from './fleet-harness.ts';

function codeOf(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (error) {
    return (error as { code?: string }).code;
  }
  return undefined;
}

async function codeOfAsync(promise: Promise<unknown>): Promise<{ code?: string; message: string }> {
  try {
    await promise;
  } catch (error) {
    return { code: (error as { code?: string }).code, message: (error as Error).message };
  }
  return { message: 'resolved' };
}

const ADMIN_TOKEN = `clp_adm_${randomBytes(24).toString('hex')}`;

describe('the agent over TLS: the system store or a configured CA, and no plain http to other machines', () => {
  let dir: string;
  let server: StartedServer;
  let cert: ReturnType<typeof makeCertificate>;
  let admin: AdminClient;
  const roots: string[] = [];

  beforeAll(async () => {
    dir = await tempDir('clp-agent-tls-');
    cert = makeCertificate(dir, 'clp-server');
    server = await startServer({
      dataDir: join(dir, 'data'),
      bootstrapToken: ADMIN_TOKEN,
      tls: { certFile: cert.certFile, keyFile: cert.keyFile },
      logLevel: 'silent',
    });
    admin = new AdminClient({
      server: server.url,
      token: ADMIN_TOKEN,
      transport: { caFile: cert.certFile },
    });
  });
  afterAll(async () => {
    await server?.close();
    await removeAll(dir, ...roots);
  });

  async function enrollmentToken(): Promise<string> {
    const answer = await admin.post<{ token: string }>('/v1/enrollment-tokens', { tier: 'stable', uses: 5 });
    return answer.token;
  }

  it('refuses a self-signed server that the system store does not know, and enrolls once its CA file is configured', async () => {
    expect(server.url).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);
    const root = await newRoot();
    roots.push(root);
    const token = await enrollmentToken();
    const http = { ...defaultConfig(), http: HttpConfig.parse({ ...FAST_HTTP, retries: 0 }) };
    await saveConfig(root, http);
    const refused = await codeOfAsync(enrollMachine({ root, url: server.url, token }));
    expect(refused.code).toBe('CLP_E_SERVER_UNREACHABLE');
    expect(refused.message).toMatch(/SELF_SIGNED|self.signed/i);
    expect((await loadConfig(root)).credential).toBeUndefined();

    await mkdir(join(root, 'etc/clp'), { recursive: true });
    await copyFile(cert.certFile, join(root, 'etc/clp/server-ca.pem'));
    await saveConfig(root, setConfigValue(root, await loadConfig(root), 'caFile', '/etc/clp/server-ca.pem'));
    const enrolled = await enrollMachine({ root, url: server.url, token });
    expect(enrolled.servers).toEqual([server.url]);
    expect((await loadConfig(root)).credential).toMatch(/.+/);
  });

  it('refuses plain http:// to another machine before sending anything, unless allowInsecureHttp is set', () => {
    const http = HttpConfig.parse(FAST_HTTP);
    expect(codeOf(() => new AgentHttpClient({ servers: ['http://192.0.2.10:8080'], http }))).toBe(
      'CLP_E_INSECURE_HTTP',
    );
    expect(
      codeOf(() => new AgentHttpClient({ servers: ['https://192.0.2.10', 'http://clp.example.org'], http })),
    ).toBe('CLP_E_INSECURE_HTTP');
    for (const loopback of [
      'http://127.0.0.1:8080',
      'http://127.3.4.5',
      'http://localhost:1',
      'http://[::1]:80',
    ]) {
      expect(
        codeOf(() => new AgentHttpClient({ servers: [loopback], http })),
        loopback,
      ).toBeUndefined();
    }
    expect(
      codeOf(
        () =>
          new AgentHttpClient({
            servers: ['http://192.0.2.10:8080'],
            http,
            transport: { allowInsecureHttp: true },
          }),
      ),
    ).toBeUndefined();
    expect(codeOf(() => new AdminClient({ server: 'http://192.0.2.10:8080', token: 't' }))).toBe(
      'CLP_E_INSECURE_HTTP',
    );
    // Each says what to do in its own terms: the machine's settings, or clpctl admin's options.
    const messageOf = (make: () => unknown) => {
      try {
        make();
      } catch (error) {
        return (error as Error).message;
      }
      return '';
    };
    const agent = messageOf(() => new AgentHttpClient({ servers: ['http://192.0.2.10:8080'], http }));
    expect(agent).toContain("'clpctl config set allowInsecureHttp true'");
    const admin = messageOf(() => new AdminClient({ server: 'http://192.0.2.10:8080', token: 't' }));
    expect(admin).toContain('--allow-insecure-http (CLP_ALLOW_INSECURE_HTTP=1)');
    expect(admin).toContain('--ca-file FILE or CLP_CA_FILE');
    expect(admin).not.toContain('clpctl config set');
  });

  it('refuses a CA file that is missing or holds no certificate, naming the file', async () => {
    const http = HttpConfig.parse(FAST_HTTP);
    const notPem = join(dir, 'not-a-ca.pem');
    await writeFile(notPem, 'hello\n');
    for (const caFile of [join(dir, 'missing.pem'), notPem]) {
      let error: { code?: string; message: string } | undefined;
      try {
        new AgentHttpClient({ servers: [server.url], http, transport: { caFile } });
      } catch (e) {
        error = e as { code?: string; message: string };
      }
      expect(error?.code).toBe('CLP_E_CA_FILE');
      expect(error?.message).toContain(caFile);
    }
  });

  it('config set takes caFile and allowInsecureHttp, and none / false undo them', async () => {
    const root = await newRoot();
    roots.push(root);
    let config = setConfigValue(root, defaultConfig(), 'caFile', '/etc/clp/server-ca.pem');
    config = setConfigValue(root, config, 'allowInsecureHttp', 'true');
    expect(getConfigValue(config, 'caFile')).toBe('/etc/clp/server-ca.pem');
    expect(getConfigValue(config, 'allowInsecureHttp')).toBe(true);
    config = setConfigValue(root, config, 'caFile', 'none');
    config = setConfigValue(root, config, 'allowInsecureHttp', 'false');
    expect(getConfigValue(config, 'caFile')).toBeNull();
    expect(getConfigValue(config, 'allowInsecureHttp')).toBe(false);
    expect(codeOf(() => setConfigValue(root, defaultConfig(), 'allowInsecureHttp', 'maybe'))).toBe(
      'CLP_E_CONFIG_KEY',
    );
    expect(codeOf(() => setConfigValue(root, defaultConfig(), 'caFile', 'relative.pem'))).toBe(
      'CLP_E_CONFIG_INVALID',
    );
  });
});
