import type { AdminRole } from '@clp/db';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ManualClock, ROUTES, type Route } from '../src/index.ts';
import { drivers, FACTS, jsonInspector, type Running, start } from './harness.ts';

/**
 * Bar R6: every route of the route table × every kind of caller. Generated from ROUTES, so a
 * new route is covered (and its access rule checked) without anyone writing a test for it.
 */

type Caller =
  | { kind: 'role'; role: AdminRole }
  | { kind: 'session'; role: AdminRole }
  | { kind: 'session-without-csrf' | 'ended-session' }
  | { kind: 'machine' }
  | { kind: 'none' | 'wrong' | 'expired' | 'revoked-admin' | 'revoked-machine' | 'malformed' };

const CALLERS: Caller[] = [
  { kind: 'role', role: 'admin' },
  { kind: 'role', role: 'release' },
  { kind: 'role', role: 'operator' },
  { kind: 'role', role: 'viewer' },
  { kind: 'machine' },
  { kind: 'none' },
  { kind: 'wrong' },
  { kind: 'malformed' },
  { kind: 'expired' },
  { kind: 'revoked-admin' },
  { kind: 'revoked-machine' },
  // The console's session cookie is one more credential: by role, without its CSRF token, ended.
  { kind: 'session', role: 'admin' },
  { kind: 'session', role: 'viewer' },
  { kind: 'session-without-csrf' },
  { kind: 'ended-session' },
];

function callerName(c: Caller): string {
  if (c.kind === 'session') return `${c.role} session cookie`;
  return c.kind === 'role' ? `${c.role} token` : `${c.kind} credential`;
}

type Expected = 'allowed' | 401 | 403 | 'csrf';

/** What the access rule of a route says a caller gets. */
function expected(route: Route, caller: Caller): Expected {
  const access = route.access;
  if (access.kind === 'public' || access.kind === 'enroll') return 'allowed';
  if (access.kind === 'agent') return caller.kind === 'machine' ? 'allowed' : 401;
  if (caller.kind === 'session-without-csrf')
    return ['GET', 'HEAD'].includes(route.method) ? 'allowed' : 'csrf';
  if (caller.kind !== 'role' && caller.kind !== 'session') return 401;
  return caller.role === 'admin' || access.roles.includes(caller.role) ? 'allowed' : 403;
}

/** A concrete URL for a route: ids that exist nowhere, so allowed calls change nothing. */
function urlOf(route: Route): string {
  return route.path.replace(':sha256', '0'.repeat(64)).replace(/:([A-Za-z0-9_]+)/g, 'no-such-$1');
}

describe.each(drivers())('auth matrix on $name', (driver) => {
  let s: Running;
  const clock = new ManualClock('2026-04-01T00:00:00Z');
  const secrets = new Map<string, string>();
  const sessions = new Map<string, { cookie: string; csrf: string }>();
  const VIEWER_LOGIN = { username: 'matrix-viewer', password: 'matrix viewer password' };

  async function openSession(json: unknown): Promise<{ cookie: string; csrf: string }> {
    const res = await s.call('POST', '/v1/session', { json });
    expect(res.status).toBe(201);
    const cookie = /clp_session=([^;]*)/.exec(res.headers.get('set-cookie') ?? '')![1]!;
    return { cookie, csrf: res.body.csrfToken as string };
  }

  async function adminToken(role: AdminRole, expiresInSeconds?: number) {
    const res = await s.call('POST', '/v1/admin-tokens', {
      token: s.admin,
      json: { name: `matrix-${role}-${expiresInSeconds ?? 'forever'}`, role, expiresInSeconds },
    });
    expect(res.status).toBe(201);
    return res.body as { id: string; token: string };
  }

  async function machine(id: string): Promise<string> {
    const token = await s.call('POST', '/v1/enrollment-tokens', {
      token: s.admin,
      json: { tier: 'edge', uses: 1 },
    });
    const res = await s.call('POST', '/v1/agent/enroll', {
      json: { token: token.body.token, facts: FACTS, machineId: id },
    });
    expect(res.status).toBe(201);
    return res.body.credential as string;
  }

  beforeAll(async () => {
    s = await start({ driver, clock, inspect: jsonInspector });
    for (const role of ['release', 'operator', 'viewer'] as const) {
      secrets.set(`${role} token`, (await adminToken(role)).token);
    }
    secrets.set('admin token', s.admin);
    secrets.set('machine credential', await machine('matrix-machine-ok'));
    const revokedMachine = await machine('matrix-machine-revoked');
    expect(
      (await s.call('POST', '/v1/agent/poll', { token: revokedMachine, json: { facts: FACTS } })).status,
    ).toBe(200);
    const revoke = await s.call('POST', '/v1/machines/matrix-machine-revoked/revoke', { token: s.admin });
    expect(revoke.status).toBe(200);
    expect(revoke.body.revoked).toBe(true);
    secrets.set('revoked-machine credential', revokedMachine);
    const revokedAdmin = await adminToken('admin');
    expect(
      (await s.call('POST', `/v1/admin-tokens/${revokedAdmin.id}/revoke`, { token: s.admin })).status,
    ).toBe(200);
    secrets.set('revoked-admin credential', revokedAdmin.token);
    const expiring = await adminToken('admin', 60);
    expect((await s.call('GET', '/v1/tiers', { token: expiring.token })).status).toBe(200);
    clock.advance(61);
    secrets.set('expired credential', expiring.token);
    secrets.set('wrong credential', 'clp_adm_0000000000000000000000000000000000000000000');
    const viewerUser = await s.call('POST', '/v1/users', {
      token: s.admin,
      json: { username: 'matrix-viewer', role: 'viewer', password: 'matrix viewer password' },
    });
    expect(viewerUser.status).toBe(201);
    const open = openSession;
    sessions.set('admin session cookie', await open({ token: s.admin }));
    sessions.set('viewer session cookie', await open(VIEWER_LOGIN));
    sessions.set('session-without-csrf credential', { ...(await open({ token: s.admin })), csrf: '' });
    const ended = await open({ token: s.admin });
    const out = await s.call('DELETE', '/v1/session', {
      headers: { cookie: `clp_session=${ended.cookie}`, 'x-clp-csrf': ended.csrf },
    });
    expect(out.body.ended).toBe(true);
    sessions.set('ended-session credential', ended);
  });
  afterAll(async () => {
    await s?.close();
  });

  it('covers every route of the table', () => {
    expect(ROUTES.length).toBeGreaterThan(30);
    expect(new Set(ROUTES.map((r) => r.id)).size).toBe(ROUTES.length);
  });

  const cases = ROUTES.flatMap((route) =>
    CALLERS.map((caller) => ({
      route,
      caller,
      label: `${route.method} ${route.path} as ${callerName(caller)}`,
    })),
  );

  it.each(cases)('$label', async ({ route, caller }) => {
    const name = callerName(caller);
    const headers: Record<string, string> = {};
    if (caller.kind === 'malformed') headers.authorization = 'Basic YWRtaW46YWRtaW4=';
    else if (sessions.has(name)) {
      // Signing out would end the session the other routes use: sign out of a copy instead.
      const shared = sessions.get(name)!;
      const session =
        route.id === 'signOut' && caller.kind === 'session'
          ? await openSession(caller.role === 'admin' ? { token: s.admin } : VIEWER_LOGIN)
          : shared;
      headers.cookie = `clp_session=${session.cookie}`;
      if (session.csrf) headers['x-clp-csrf'] = session.csrf;
    } else if (caller.kind !== 'none') headers.authorization = `Bearer ${secrets.get(name)}`;
    const res = await fetch(s.url + urlOf(route), { method: route.method, headers });
    const text = await res.text();
    const want = expected(route, caller);
    if (want === 'allowed') {
      expect([401, 403], `${route.method} ${route.path} as ${name}: ${text}`).not.toContain(res.status);
      expect(res.status, text).toBeLessThan(500);
      return;
    }
    expect(res.status, text).toBe(want === 'csrf' ? 403 : want);
    const body = JSON.parse(text) as { error: { code: string; message: string } };
    expect(body.error.code).toBe(
      want === 401 ? 'CLP_E_UNAUTHORIZED' : want === 'csrf' ? 'CLP_E_CSRF' : 'CLP_E_FORBIDDEN',
    );
    expect(body.error.message.length).toBeGreaterThan(20);
    if (want === 401) expect(res.headers.get('www-authenticate')).toMatch(/^Bearer/);
  });
});
