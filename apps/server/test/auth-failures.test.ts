import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { drivers, FACTS, type Running, start } from './harness.ts';

/**
 * Failed authentications are counted per presented credential (and, for calls with none, per
 * address): the credential that keeps failing is slowed with 429, a valid credential never is,
 * whoever shares its address — the whole fleet, behind one proxy.
 */
describe.each(drivers())('failed logins on $name', (driver) => {
  let s: Running;
  let machine: string;
  const LIMIT = 5;
  const proxy = (client: string) => ({ 'x-forwarded-for': client });

  beforeAll(async () => {
    s = await start({
      driver,
      config: { trustProxy: 'loopback', rateLimits: { enrollPerMinute: 1000, authFailuresPerMinute: LIMIT } },
    });
    const token = await s.call('POST', '/v1/enrollment-tokens', { token: s.admin, json: { tier: 'edge' } });
    const enrolled = await s.call('POST', '/v1/agent/enroll', {
      json: { token: token.body.token, facts: FACTS, machineId: 'limit-machine-1' },
    });
    expect(enrolled.status).toBe(201);
    machine = enrolled.body.credential;
  });
  afterAll(async () => {
    await s?.close();
  });

  const poll = (token: string | undefined, client: string) =>
    s.call('POST', '/v1/agent/poll', { token, json: { facts: FACTS }, headers: proxy(client) });
  const tiers = (token: string | undefined, client: string) =>
    s.call('GET', '/v1/tiers', { token, headers: proxy(client) });

  it('slows the one credential that keeps failing, and no other', async () => {
    s.server.context.limits.authFailures.reset();
    const revoked = `clp_mch_${randomBytes(32).toString('base64url')}`;
    const statuses: number[] = [];
    for (let i = 0; i < LIMIT + 2; i++) statuses.push((await poll(revoked, '203.0.113.7')).status);
    expect(statuses).toEqual([...Array(LIMIT).fill(401), 429, 429]);
    const refused = await poll(revoked, '198.51.100.9');
    expect(refused.status).toBe(429);
    expect(refused.body.error).toMatchObject({ code: 'CLP_E_RATE_LIMITED' });
    expect(refused.body.error.message).toMatch(/this credential was refused 5 times/);
    expect(Number(refused.headers.get('retry-after'))).toBeGreaterThan(0);
    // Another bad credential from the same address is judged on its own.
    expect((await poll(`clp_mch_${randomBytes(32).toString('base64url')}`, '203.0.113.7')).status).toBe(401);
  });

  it('never refuses a valid admin token or machine credential behind a proxy that many failures came through', async () => {
    s.server.context.limits.authFailures.reset();
    const client = '192.0.2.44';
    // 30 failures through the proxy from one client address: distinct tokens, one repeated, none at all.
    for (let i = 0; i < 10; i++)
      expect([401]).toContain((await tiers(`clp_adm_${randomBytes(32).toString('hex')}`, client)).status);
    for (let i = 0; i < 10; i++) expect([401, 429]).toContain((await tiers('clp_adm_guess', client)).status);
    for (let i = 0; i < 10; i++) expect([401, 429]).toContain((await poll(undefined, client)).status);
    expect((await tiers('clp_adm_guess', client)).status).toBe(429);
    expect((await poll(undefined, client)).status).toBe(429);
    // A caller without a credential from another address behind the same proxy is not slowed.
    expect((await poll(undefined, '192.0.2.45')).status).toBe(401);
    for (let i = 0; i < 3; i++) {
      expect((await tiers(s.admin, client)).status).toBe(200);
      expect((await poll(machine, client)).status).toBe(200);
    }
  });

  it('counts a credential tried on the wrong kind of route apart from its own kind', async () => {
    s.server.context.limits.authFailures.reset();
    // A machine credential sent to an admin route fails there, as often as it likes…
    for (let i = 0; i < LIMIT + 1; i++) await tiers(machine, '192.0.2.50');
    expect((await tiers(machine, '192.0.2.50')).status).toBe(429);
    // …and still works where it belongs.
    expect((await poll(machine, '192.0.2.50')).status).toBe(200);
  });
  const signIn = (json: unknown, client: string) =>
    s.call('POST', '/v1/session', { json, headers: proxy(client) });

  it('slows password guesses at one user name, and no one else signing in from that address', async () => {
    s.server.context.limits.authFailures.reset();
    const created = await s.call('POST', '/v1/users', {
      token: s.admin,
      json: { username: 'guessed', role: 'viewer', password: 'correct horse battery' },
    });
    expect(created.status).toBe(201);
    await s.call('POST', '/v1/users', {
      token: s.admin,
      json: { username: 'neighbour', role: 'viewer', password: 'another long password' },
    });
    const statuses: number[] = [];
    for (let i = 0; i < LIMIT + 1; i++)
      statuses.push((await signIn({ username: 'guessed', password: `guess ${i}` }, '192.0.2.60')).status);
    expect(statuses).toEqual([...Array(LIMIT).fill(401), 429]);
    // The name is slowed from another address as well, whatever the password…
    const blocked = await signIn({ username: 'GUESSED', password: 'guess again' }, '198.51.100.60');
    expect(blocked.status).toBe(429);
    expect(blocked.body.error.code).toBe('CLP_E_RATE_LIMITED');
    expect(blocked.body.error.message).toMatch(/sign-in as GUESSED failed 5 times.*admin token/);
    // Changing the password is no way around it, even with the right one…
    const change = await s.call('POST', '/v1/users/password', {
      json: {
        username: 'guessed',
        currentPassword: 'correct horse battery',
        newPassword: 'a new long passphrase',
      },
      headers: proxy('198.51.100.61'),
    });
    expect(change.status).toBe(429);
    // …while another person and an admin token sign in through the same address.
    expect(
      (await signIn({ username: 'neighbour', password: 'another long password' }, '192.0.2.60')).status,
    ).toBe(201);
    expect((await signIn({ token: s.admin }, '192.0.2.60')).status).toBe(201);
  });

  it('counts a session cookie that keeps failing by itself, not by the address it comes from', async () => {
    s.server.context.limits.authFailures.reset();
    const ended = { cookie: `clp_session=clp_ses_${randomBytes(32).toString('base64url')}` };
    const statuses: number[] = [];
    for (let i = 0; i < LIMIT + 1; i++)
      statuses.push(
        (await s.call('GET', '/v1/tiers', { headers: { ...ended, ...proxy('192.0.2.70') } })).status,
      );
    expect(statuses).toEqual([...Array(LIMIT).fill(401), 429]);
    const session = await signIn({ token: s.admin }, '192.0.2.70');
    const cookie = /clp_session=([^;]*)/.exec(session.headers.get('set-cookie') ?? '')?.[1];
    const live = await s.call('GET', '/v1/tiers', {
      headers: { cookie: `clp_session=${cookie}`, ...proxy('192.0.2.70') },
    });
    expect(live.status).toBe(200);
  });
});
