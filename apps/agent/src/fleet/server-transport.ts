import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { type AgentConfig, underRoot } from './config.ts';
import { FleetError } from './errors.ts';

/** How the agent may talk to its servers: which certificates it trusts, whether plain HTTP is allowed. */
export interface TransportPolicy {
  /** PEM file of the certificate authorities (or self-signed certificates) to trust instead of the system's. */
  caFile?: string | undefined;
  /** Plain http:// to a server that is not on this machine: its answers and the credential travel in clear. */
  allowInsecureHttp?: boolean | undefined;
}

/** The machine's policy from its configuration; the CA file is a path on the target system (under --root). */
export function transportFor(root: string, config: AgentConfig): TransportPolicy {
  return {
    ...(config.caFile !== null ? { caFile: underRoot(root, config.caFile) } : {}),
    allowInsecureHttp: config.allowInsecureHttp,
  };
}

/** localhost, 127.0.0.0/8 and ::1: traffic that never leaves the machine. */
export function isLoopback(hostname: string): boolean {
  const host = hostname.replace(/^\[|\]$/g, '').toLowerCase();
  if (host === 'localhost' || host.endsWith('.localhost')) return true;
  if (isIP(host) === 4) return host.startsWith('127.');
  return host === '::1' || host === '::ffff:127.0.0.1';
}

/**
 * Refuses http:// to anything but loopback unless allowed: a machine credential or a poll
 * answer in clear can be read or changed on the way. Patches stay signed either way; this
 * protects the credential and what the server is told.
 */
export function checkServerUrl(
  url: string,
  policy: TransportPolicy,
  setting: 'servers' | '--server' = 'servers',
): void {
  const parsed = new URL(url);
  if (parsed.protocol !== 'http:' || isLoopback(parsed.hostname) || policy.allowInsecureHttp) return;
  throw new FleetError(
    'CLP_E_INSECURE_HTTP',
    `${url} is plain http:// to another machine: the credential and the server's answers would travel unencrypted; ${INSECURE_HTTP_REMEDY[setting]}`,
    { details: { url, setting } },
  );
}

/** What to do about plain http://, in the words of who asked: the machine's configuration, or clpctl admin's options. */
const INSECURE_HTTP_REMEDY = {
  servers:
    "use https:// (a self-signed server: 'clpctl config set caFile /etc/clp/server-ca.pem') or accept the risk with 'clpctl config set allowInsecureHttp true'",
  '--server':
    'use https:// (a server with its own CA: --ca-file FILE or CLP_CA_FILE) or accept the risk with --allow-insecure-http (CLP_ALLOW_INSECURE_HTTP=1)',
} as const;

/**
 * The certificates an https:// server must chain to: the CA file alone when one is configured
 * (an on-premises server with its own CA), else Node's bundled Mozilla list and the system's
 * store (/etc/ssl/certs), so that a CA the administrator added to the system is trusted too.
 */
export function certificateAuthorities(caFile: string | undefined, shownAs = caFile): string[] {
  if (caFile === undefined) {
    // Loaded here, not at start: TLS is a tenth of clpctl's start-up and most commands never use it.
    const { getCACertificates } = process.getBuiltinModule('node:tls');
    return [...new Set([...getCACertificates('bundled'), ...getCACertificates('system')])];
  }
  let text: string;
  try {
    text = readFileSync(caFile, 'utf8');
  } catch (error) {
    throw new FleetError(
      'CLP_E_CA_FILE',
      `the CA file ${shownAs} cannot be read (${(error as NodeJS.ErrnoException).code ?? (error as Error).message}); put the server's CA certificate there (PEM) or clear the setting with 'clpctl config set caFile none'`,
      { cause: error, details: { file: shownAs } },
    );
  }
  const certificates = text.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
  if (certificates.length === 0) {
    throw new FleetError(
      'CLP_E_CA_FILE',
      `the CA file ${shownAs} holds no PEM certificate (-----BEGIN CERTIFICATE-----); give the server's CA certificate in PEM form`,
      { details: { file: shownAs } },
    );
  }
  return certificates;
}
