import { isIP } from 'node:net';

/** Where the server listens: an address (empty: every interface) and a TCP port (0: any free one). */
export interface ListenAddress {
  host: string;
  port: number;
}

export const DEFAULT_PORT = 8080;
/** Every interface, IPv4: what a server in a container or behind a firewall is expected to do. */
export const DEFAULT_HOST = '0.0.0.0';

function port(text: string, setting: string): number {
  const value = /^\d{1,5}$/.test(text) ? Number(text) : Number.NaN;
  if (!Number.isInteger(value) || value > 65_535) {
    throw new Error(`${setting}: "${text}" is not a TCP port number (0-65535)`);
  }
  return value;
}

function host(text: string, setting: string): string {
  if (text === '' || text === '*') return DEFAULT_HOST;
  if (isIP(text) !== 0 || /^[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?$/.test(text)) return text;
  throw new Error(
    `${setting}: "${text}" is not an address; give an IP address or host name, e.g. 127.0.0.1, [::1] or 0.0.0.0`,
  );
}

/**
 * Reads CLP_LISTEN (`ADDRESS:PORT`, `[IPv6]:PORT`, `:PORT`, `ADDRESS` or `PORT`). A missing port
 * comes from PORT, then 8080; a missing address means every interface.
 */
export function listenAddressFromEnv(env: NodeJS.ProcessEnv): ListenAddress {
  const fallbackPort = env.PORT ? port(env.PORT, `PORT=${env.PORT}`) : DEFAULT_PORT;
  const listen = (env.CLP_LISTEN ?? '').trim();
  if (listen === '') return { host: DEFAULT_HOST, port: fallbackPort };
  const setting = `CLP_LISTEN=${listen}`;
  const bracketed = /^\[([^\]]+)\](?::(.*))?$/.exec(listen);
  if (bracketed) {
    if (isIP(bracketed[1]!) !== 6) throw new Error(`${setting}: "${bracketed[1]}" is not an IPv6 address`);
    return {
      host: bracketed[1]!,
      port: bracketed[2] === undefined ? fallbackPort : port(bracketed[2], setting),
    };
  }
  if (/^\d+$/.test(listen)) return { host: DEFAULT_HOST, port: port(listen, setting) };
  if (isIP(listen) === 6) return { host: listen, port: fallbackPort };
  const colon = listen.lastIndexOf(':');
  if (colon === -1) return { host: host(listen, setting), port: fallbackPort };
  return { host: host(listen.slice(0, colon), setting), port: port(listen.slice(colon + 1), setting) };
}

/** `ADDRESS:PORT` as people write it, brackets around IPv6. */
export function formatAddress(address: string, portNumber: number): string {
  return `${isIP(address) === 6 ? `[${address}]` : address}:${portNumber}`;
}

/** An address to reach a server bound to HOST from this machine: loopback for "every interface". */
export function reachableHost(bound: string): string {
  if (bound === '0.0.0.0' || bound === '') return '127.0.0.1';
  if (bound === '::') return '[::1]';
  return isIP(bound) === 6 ? `[${bound}]` : bound;
}
