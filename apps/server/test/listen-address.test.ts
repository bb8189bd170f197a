import { describe, expect, it } from 'vitest';
import { listenAddressFromEnv, reachableHost } from '../src/listen-address.ts';

describe('CLP_LISTEN and PORT', () => {
  it('listens on every interface, port 8080, when neither is set', () => {
    expect(listenAddressFromEnv({})).toEqual({ host: '0.0.0.0', port: 8080 });
  });

  it('keeps PORT working alone', () => {
    expect(listenAddressFromEnv({ PORT: '9000' })).toEqual({ host: '0.0.0.0', port: 9000 });
  });

  it('reads ADDRESS:PORT, [IPv6]:PORT, :PORT and a bare port', () => {
    expect(listenAddressFromEnv({ CLP_LISTEN: '127.0.0.1:8443' })).toEqual({ host: '127.0.0.1', port: 8443 });
    expect(listenAddressFromEnv({ CLP_LISTEN: '[::1]:8443' })).toEqual({ host: '::1', port: 8443 });
    expect(listenAddressFromEnv({ CLP_LISTEN: ':8443' })).toEqual({ host: '0.0.0.0', port: 8443 });
    expect(listenAddressFromEnv({ CLP_LISTEN: '8443' })).toEqual({ host: '0.0.0.0', port: 8443 });
  });

  it('takes the port from PORT when CLP_LISTEN names only an address', () => {
    expect(listenAddressFromEnv({ CLP_LISTEN: '10.1.2.3', PORT: '81' })).toEqual({
      host: '10.1.2.3',
      port: 81,
    });
    expect(listenAddressFromEnv({ CLP_LISTEN: '::' })).toEqual({ host: '::', port: 8080 });
    expect(listenAddressFromEnv({ CLP_LISTEN: 'clp.internal' })).toEqual({
      host: 'clp.internal',
      port: 8080,
    });
  });

  it('lets CLP_LISTEN win over PORT', () => {
    expect(listenAddressFromEnv({ CLP_LISTEN: '127.0.0.1:7000', PORT: '9000' }).port).toBe(7000);
  });

  it('refuses a port out of range or not a number, naming the setting', () => {
    expect(() => listenAddressFromEnv({ CLP_LISTEN: '127.0.0.1:70000' })).toThrow(
      /CLP_LISTEN=127\.0\.0\.1:70000/,
    );
    expect(() => listenAddressFromEnv({ CLP_LISTEN: '127.0.0.1:http' })).toThrow(/not a TCP port/);
    expect(() => listenAddressFromEnv({ PORT: 'eighty' })).toThrow(/PORT=eighty/);
  });

  it('refuses an address with spaces or a bracketed non-IPv6 address', () => {
    expect(() => listenAddressFromEnv({ CLP_LISTEN: 'my host:80' })).toThrow(/not an address/);
    expect(() => listenAddressFromEnv({ CLP_LISTEN: '[1.2.3.4]:80' })).toThrow(/not an IPv6 address/);
  });

  it('reaches a server bound to every interface through loopback', () => {
    expect(reachableHost('0.0.0.0')).toBe('127.0.0.1');
    expect(reachableHost('::')).toBe('[::1]');
    expect(reachableHost('::1')).toBe('[::1]');
    expect(reachableHost('192.0.2.7')).toBe('192.0.2.7');
  });
});
