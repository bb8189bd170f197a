import { sessions } from '@clp/db';
import { eq } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ManualClock } from '../src/index.ts';
import { drivers, jsonInspector, type Running, start } from './harness.ts';

/** Console sign-in: users with scrypt passwords, the session cookie, CSRF, sign-out, and roles. */
describe.each(drivers())('console sessions on $name', (driver) => {
  let s: Running;
  const clock = new ManualClock('2026-04-01T00:00:00Z');

  beforeAll(async () => {
    s = await start({ driver, clock, inspect: jsonInspector });
  });
  afterAll(async () => {
    await s?.close();
  });

  async function signIn(json: unknown, headers: Record<string, string> = {}) {
    const res = await s.call('POST', '/v1/session', { json, headers });
    const cookie = /clp_session=([^;]*)/.exec(res.headers.get('set-cookie') ?? '')?.[1];
    return { ...res, cookie };
  }

  function withCookie(cookie: string, csrf?: string): Record<string, string> {
    return { cookie: `clp_session=${cookie}`, ...(csrf ? { 'x-clp-csrf': csrf } : {}) };
  }

  async function createUser(username: string, role: string, password = 'correct horse battery') {
    const res = await s.call('POST', '/v1/users', { token: s.admin, json: { username, role, password } });
    expect(res.status, JSON.stringify(res.body)).toBe(201);
    return res.body as { id: string; username: string; role: string };
  }

  it('a user signs in with a password and gets an HttpOnly, SameSite=Strict session cookie', async () => {
    await createUser('olivia', 'operator');
    const res = await signIn({ username: 'olivia', password: 'correct horse battery' });
    expect(res.status).toBe(201);
    expect(res.body).toMatchObject({ name: 'olivia', role: 'operator', account: 'user' });
    expect(res.body.csrfToken).toMatch(/^[A-Za-z0-9_-]{40,}$/);
    const setCookie = res.headers.get('set-cookie') ?? '';
    expect(setCookie).toMatch(/HttpOnly/);
    expect(setCookie).toMatch(/SameSite=Strict/);
    expect(setCookie).toMatch(/Path=\/v1/);
    const me = await s.call('GET', '/v1/session', { headers: withCookie(res.cookie!) });
    expect(me.status).toBe(200);
    expect(me.body).toMatchObject({ name: 'olivia', role: 'operator', csrfToken: res.body.csrfToken });
  });

  it('a wrong password and an unknown user get the same 401', async () => {
    const wrong = await signIn({ username: 'olivia', password: 'not the password' });
    const unknown = await signIn({ username: 'nobody', password: 'not the password' });
    expect(wrong.status).toBe(401);
    expect(unknown.status).toBe(401);
    expect(wrong.body.error.code).toBe('CLP_E_UNAUTHORIZED');
    expect(wrong.body.error.message).toBe(unknown.body.error.message);
    expect(wrong.cookie).toBeUndefined();
  });

  it('a burst of password sign-ins under ever new names is not hashed all at once: the rest get 429', async () => {
    // Each name has its own count of failures, so a stranger varying the name is never slowed by
    // it; every check is an scrypt of 32 MiB on the thread pool that file reads share.
    const burst = await Promise.all(
      Array.from({ length: 120 }, (_, i) => signIn({ username: `nobody-${i}`, password: 'x'.repeat(12) })),
    );
    const statuses = burst.map((r) => r.status);
    expect(new Set(statuses)).toEqual(new Set([401, 429]));
    // 2 running and 32 waiting at any moment; the requests of the burst arrive over a while.
    expect(statuses.filter((x) => x === 401).length).toBeLessThan(80);
    const refused = burst.find((r) => r.status === 429)!;
    expect(refused.body.error.code).toBe('CLP_E_RATE_LIMITED');
    expect(refused.body.error.message).toMatch(/sign in with an admin token/);
    expect(Number(refused.headers.get('retry-after'))).toBeGreaterThan(0);
    // Once the burst is over, a sign-in is checked again.
    await createUser('after-burst', 'viewer');
    expect((await signIn({ username: 'after-burst', password: 'correct horse battery' })).status).toBe(201);
  });

  it('keeps at most 20 live sessions per account: signing in again ends the oldest', async () => {
    const token = await s.call('POST', '/v1/admin-tokens', {
      token: s.admin,
      json: { name: 'many', role: 'viewer' },
    });
    expect(token.status).toBe(201);
    const cookies: string[] = [];
    for (let i = 0; i < 25; i++) {
      const res = await signIn({ token: token.body.token });
      expect(res.status).toBe(201);
      cookies.push(res.cookie!);
      clock.advance(1);
    }
    const live = await Promise.all(
      cookies.map(async (c) => (await s.call('GET', '/v1/session', { headers: withCookie(c) })).status),
    );
    expect(live).toEqual([...Array(5).fill(401), ...Array(20).fill(200)]);
    const rows = await s.server.context.db
      .select()
      .from(sessions)
      .where(eq(sessions.adminTokenId, token.body.id));
    expect(rows.filter((r) => r.endedAt === null)).toHaveLength(20);
  });

  it('passwords are stored as scrypt hashes, never in clear', async () => {
    const rows = await s.server.context.database.db.execute(
      "select password_hash from users where username = 'olivia'" as never,
    );
    const hash = JSON.stringify(rows);
    expect(hash).toMatch(/scrypt\$32768\$8\$1\$/);
    expect(hash).not.toContain('correct horse battery');
  });

  it('an admin token signs in too, and its session carries the token role', async () => {
    const res = await signIn({ token: s.admin });
    expect(res.status).toBe(201);
    expect(res.body).toMatchObject({ role: 'admin', account: 'token' });
  });

  it('a cookie POST without the CSRF token is refused with CLP_E_CSRF, and passes with it', async () => {
    const { cookie, body } = await signIn({ token: s.admin });
    const without = await s.call('POST', '/v1/tiers', {
      json: { name: 'csrf-a' },
      headers: withCookie(cookie!),
    });
    expect(without.status).toBe(403);
    expect(without.body.error.code).toBe('CLP_E_CSRF');
    const wrong = await s.call('POST', '/v1/tiers', {
      json: { name: 'csrf-a' },
      headers: withCookie(cookie!, 'x'.repeat(43)),
    });
    expect(wrong.body.error.code).toBe('CLP_E_CSRF');
    const foreign = await s.call('POST', '/v1/tiers', {
      json: { name: 'csrf-a' },
      headers: { ...withCookie(cookie!, body.csrfToken), origin: 'https://evil.example' },
    });
    expect(foreign.body.error.code).toBe('CLP_E_CSRF');
    const ok = await s.call('POST', '/v1/tiers', {
      json: { name: 'csrf-a' },
      headers: withCookie(cookie!, body.csrfToken),
    });
    expect(ok.status, JSON.stringify(ok.body)).toBe(201);
  });

  it('sign-in from a page of another origin is refused', async () => {
    const res = await signIn({ token: s.admin }, { origin: 'https://evil.example' });
    expect(res.status).toBe(403);
    expect(res.body.error.code).toBe('CLP_E_CSRF');
  });

  it('sign-out ends the session on the server: the old cookie gets 401', async () => {
    const { cookie, body } = await signIn({ username: 'olivia', password: 'correct horse battery' });
    const out = await s.call('DELETE', '/v1/session', { headers: withCookie(cookie!, body.csrfToken) });
    expect(out.status).toBe(200);
    expect(out.body.ended).toBe(true);
    expect(out.headers.get('set-cookie')).toMatch(/Max-Age=0/);
    const after = await s.call('GET', '/v1/session', { headers: withCookie(cookie!) });
    expect(after.status).toBe(401);
    expect(after.body.error.code).toBe('CLP_E_UNAUTHORIZED');
  });

  it('a session expires after 12 hours', async () => {
    const { cookie } = await signIn({ username: 'olivia', password: 'correct horse battery' });
    clock.advance(12 * 3600 + 1);
    const after = await s.call('GET', '/v1/session', { headers: withCookie(cookie!) });
    expect(after.status).toBe(401);
  });

  it('a viewer user may read but not act, and a role change applies to a live session at once', async () => {
    const vera = await createUser('vera', 'viewer');
    const { cookie, body } = await signIn({ username: 'vera', password: 'correct horse battery' });
    const read = await s.call('GET', '/v1/rollouts', { headers: withCookie(cookie!) });
    expect(read.status).toBe(200);
    const act = await s.call('POST', '/v1/enrollment-tokens', {
      json: { tier: 'edge' },
      headers: withCookie(cookie!, body.csrfToken),
    });
    expect(act.status).toBe(403);
    expect(act.body.error.code).toBe('CLP_E_FORBIDDEN');
    expect(act.body.error.message).toMatch(/viewer user may not do this/);
    const promote = await s.call('PATCH', `/v1/users/${vera.id}`, {
      token: s.admin,
      json: { role: 'operator' },
    });
    expect(promote.status).toBe(200);
    const again = await s.call('POST', '/v1/enrollment-tokens', {
      json: { tier: 'edge' },
      headers: withCookie(cookie!, body.csrfToken),
    });
    expect(again.status).toBe(201);
  });

  it('disabling a user or setting a new password ends their sessions', async () => {
    await createUser('dave', 'release');
    const first = await signIn({ username: 'dave', password: 'correct horse battery' });
    const changed = await s.call('PATCH', '/v1/users/dave', {
      token: s.admin,
      json: { password: 'another long passphrase' },
    });
    expect(changed.status).toBe(200);
    expect((await s.call('GET', '/v1/session', { headers: withCookie(first.cookie!) })).status).toBe(401);
    const second = await signIn({ username: 'dave', password: 'another long passphrase' });
    expect(second.status).toBe(201);
    await s.call('PATCH', '/v1/users/dave', { token: s.admin, json: { disabled: true } });
    expect((await s.call('GET', '/v1/session', { headers: withCookie(second.cookie!) })).status).toBe(401);
    expect((await signIn({ username: 'dave', password: 'another long passphrase' })).status).toBe(401);
  });

  it('a user changes their own password by giving the current one, which ends their sessions', async () => {
    await createUser('erin', 'viewer', 'first long passphrase');
    const session = await signIn({ username: 'erin', password: 'first long passphrase' });
    const change = (currentPassword: string, newPassword: string) =>
      s.call('POST', '/v1/users/password', { json: { username: 'erin', currentPassword, newPassword } });
    const wrong = await change('not the passphrase', 'second long passphrase');
    expect(wrong.status).toBe(401);
    expect(wrong.body.error.code).toBe('CLP_E_UNAUTHORIZED');
    const same = await change('first long passphrase', 'first long passphrase');
    expect(same.status).toBe(400);
    expect(same.body.error.field).toBe('body.newPassword');
    const short = await change('first long passphrase', 'short');
    expect(short.status).toBe(400);
    expect(short.body.error.field).toBe('body.newPassword');
    const changed = await change('first long passphrase', 'second long passphrase');
    expect(changed.status).toBe(200);
    expect(changed.body).toMatchObject({ username: 'erin', role: 'viewer', disabled: false });
    expect((await s.call('GET', '/v1/session', { headers: withCookie(session.cookie!) })).status).toBe(401);
    expect((await signIn({ username: 'erin', password: 'first long passphrase' })).status).toBe(401);
    expect((await signIn({ username: 'erin', password: 'second long passphrase' })).status).toBe(201);
  });

  it('a disabled user cannot change their password', async () => {
    await createUser('frank', 'viewer', 'frank long passphrase');
    await s.call('PATCH', '/v1/users/frank', { token: s.admin, json: { disabled: true } });
    const res = await s.call('POST', '/v1/users/password', {
      json: {
        username: 'frank',
        currentPassword: 'frank long passphrase',
        newPassword: 'frank new passphrase',
      },
    });
    expect(res.status).toBe(401);
    expect(res.body.error.code).toBe('CLP_E_UNAUTHORIZED');
  });

  it('a revoked admin token ends the sessions opened with it', async () => {
    const made = await s.call('POST', '/v1/admin-tokens', {
      token: s.admin,
      json: { name: 'ops', role: 'operator' },
    });
    const { cookie } = await signIn({ token: made.body.token });
    expect((await s.call('GET', '/v1/session', { headers: withCookie(cookie!) })).status).toBe(200);
    await s.call('POST', `/v1/admin-tokens/${made.body.id}/revoke`, { token: s.admin });
    expect((await s.call('GET', '/v1/session', { headers: withCookie(cookie!) })).status).toBe(401);
  });

  it('users are made and listed by admins only, with names and passwords checked', async () => {
    const short = await s.call('POST', '/v1/users', {
      token: s.admin,
      json: { username: 'sam', role: 'viewer', password: 'short' },
    });
    expect(short.status).toBe(400);
    expect(short.body.error.code).toBe('CLP_E_VALIDATION');
    expect(short.body.error.field).toBe('body.password');
    const twice = await s.call('POST', '/v1/users', {
      token: s.admin,
      json: { username: 'olivia', role: 'viewer', password: 'correct horse battery' },
    });
    expect(twice.status).toBe(409);
    expect(twice.body.error.code).toBe('CLP_E_CONFLICT');
    const list = await s.call('GET', '/v1/users?limit=2', { token: s.admin });
    expect(list.status).toBe(200);
    expect(list.body.users).toHaveLength(2);
    expect(list.body.total).toBeGreaterThanOrEqual(3);
    expect(JSON.stringify(list.body)).not.toMatch(/scrypt/);
  });

  it('the console is served with a strict Content-Security-Policy, and deep links get its page', async () => {
    for (const path of ['/console/', '/console/rollouts/some-id', '/console/machines/m-1']) {
      const res = await fetch(s.url + path);
      expect([200, 503]).toContain(res.status);
      const csp = res.headers.get('content-security-policy') ?? '';
      expect(csp).toContain("default-src 'none'");
      expect(csp).toContain("script-src 'self'");
      expect(csp).not.toContain('unsafe-inline');
      expect(csp).toContain("frame-ancestors 'none'");
      await res.arrayBuffer();
    }
    const root = await fetch(s.url, { redirect: 'manual' });
    expect(root.status).toBe(302);
    expect(root.headers.get('location')).toBe('/console/');
  });
});
