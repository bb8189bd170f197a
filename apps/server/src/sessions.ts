import { createHmac, randomUUID, timingSafeEqual } from 'node:crypto';
import { adminTokens, sessions, users } from '@clp/db';
import { CSRF_HEADER, SESSION_COOKIE, type SessionView, type SignInBody } from '@clp/protocol';
import { and, desc, eq, gt, inArray, isNull } from 'drizzle-orm';
import type { Request, Response } from 'express';
import type { AppContext, Principal } from './context.ts';
import { ServerError } from './errors.ts';
import { NO_USER_HASH, verifyPassword } from './passwords.ts';
import { hashSecret, newSecret } from './secrets.ts';

/** How long a console session lasts from sign-in; then the person signs in again. */
export const SESSION_SECONDS = 12 * 3600;

/** What a request carries when it is authenticated by the session cookie. */
export interface SessionCredential {
  secret: string;
  /** POST, PUT, PATCH, DELETE: these must prove they come from the console (CSRF). */
  unsafe: boolean;
  csrf: string | undefined;
  origin: string | undefined;
  host: string | undefined;
}

function cookieValue(header: string | undefined, name: string): string | undefined {
  if (!header) return undefined;
  for (const part of header.split(';')) {
    const eq = part.indexOf('=');
    if (eq > 0 && part.slice(0, eq).trim() === name) {
      const value = part.slice(eq + 1).trim();
      return /^[A-Za-z0-9_-]{1,200}$/.test(value) ? value : undefined;
    }
  }
  return undefined;
}

/** The session cookie of a request, with what the CSRF check needs; undefined without one. */
export function sessionCredential(req: Request): SessionCredential | undefined {
  const secret = cookieValue(req.headers.cookie, SESSION_COOKIE);
  if (!secret) return undefined;
  const csrf = req.headers[CSRF_HEADER];
  return {
    secret,
    unsafe: !['GET', 'HEAD', 'OPTIONS'].includes(req.method),
    csrf: typeof csrf === 'string' ? csrf : undefined,
    origin: req.headers.origin,
    host: req.headers.host,
  };
}

/**
 * The CSRF token of a session, derived from its secret: a page of another site cannot read the
 * HttpOnly cookie nor, without CORS, GET /v1/session, so it cannot make the token; and the server
 * keeps nothing more than the session row.
 */
export function csrfTokenFor(secret: string): string {
  return createHmac('sha256', secret).update('clp-csrf-v1').digest('base64url');
}

function sameText(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

/** Refuses a request that a page of another origin could have made. */
export function checkOrigin(origin: string | undefined, host: string | undefined): void {
  if (origin === undefined) return;
  let from: string | undefined;
  try {
    from = new URL(origin).host;
  } catch {
    from = undefined;
  }
  if (!host || from !== host) {
    throw new ServerError(
      'CLP_E_CSRF',
      `a request from ${origin} may not use this server's session; open the console on the server itself`,
    );
  }
}

/** Refuses an unsafe cookie request without the session's CSRF token (or from another origin). */
export function checkCsrf(credential: SessionCredential): void {
  if (!credential.unsafe) return;
  checkOrigin(credential.origin, credential.host);
  if (!credential.csrf || !sameText(credential.csrf, csrfTokenFor(credential.secret))) {
    throw new ServerError(
      'CLP_E_CSRF',
      `a request authenticated by the session cookie must carry the ${CSRF_HEADER} header from GET /v1/session; reload the console`,
    );
  }
}

/** The principal a live session speaks for: its user or admin token, as they are now. */
export async function sessionPrincipal(ctx: AppContext, secret: string): Promise<Principal | undefined> {
  const now = ctx.clock.now();
  const [row] = await ctx.db
    .select({ session: sessions, user: users, token: adminTokens })
    .from(sessions)
    .leftJoin(users, eq(users.id, sessions.userId))
    .leftJoin(adminTokens, eq(adminTokens.id, sessions.adminTokenId))
    .where(
      and(eq(sessions.tokenHash, hashSecret(secret)), isNull(sessions.endedAt), gt(sessions.expiresAt, now)),
    );
  if (!row) return undefined;
  if (row.user) {
    if (row.user.disabledAt) return undefined;
    return { kind: 'admin', id: row.user.id, name: row.user.username, role: row.user.role, account: 'user' };
  }
  const token = row.token;
  if (!token || token.revokedAt || (token.expiresAt && token.expiresAt.getTime() <= now.getTime()))
    return undefined;
  return { kind: 'admin', id: token.id, name: token.name, role: token.role, account: 'token' };
}

function cookie(req: Request, value: string, maxAgeSeconds: number): string {
  // Secure whenever the console is reached over HTTPS (directly or through a trusted proxy).
  const secure = req.secure ? '; Secure' : '';
  return `${SESSION_COOKIE}=${value}; Path=/v1; HttpOnly; SameSite=Strict; Max-Age=${maxAgeSeconds}${secure}`;
}

function view(
  ctx: AppContext,
  principal: Extract<Principal, { kind: 'admin' }>,
  secret: string | undefined,
  expiresAt: Date | null,
): SessionView {
  return {
    name: principal.name,
    role: principal.role,
    account: principal.account ?? 'token',
    csrfToken: secret ? csrfTokenFor(secret) : null,
    expiresAt: expiresAt?.toISOString() ?? null,
    serverTime: ctx.clock.now().toISOString(),
  };
}

async function whoSignsIn(
  ctx: AppContext,
  body: SignInBody,
): Promise<{ userId?: string; tokenId?: string } | undefined> {
  if ('token' in body) {
    const [row] = await ctx.db
      .select()
      .from(adminTokens)
      .where(eq(adminTokens.tokenHash, hashSecret(body.token)));
    const now = ctx.clock.now().getTime();
    if (!row || row.revokedAt || (row.expiresAt && row.expiresAt.getTime() <= now)) return undefined;
    return { tokenId: row.id };
  }
  const user = await userByPassword(ctx, body.username, body.password);
  return user ? { userId: user.id } : undefined;
}

/**
 * What failed sign-ins are counted by: a token by its hash, as on every other route; a password
 * sign-in by the user name, so that guessing one account's password is slowed from any address,
 * while other people signing in through the same proxy are not.
 */
function signInKey(body: SignInBody): string {
  return 'token' in body ? `admin:${hashSecret(body.token)}` : `user:${body.username.toLowerCase()}`;
}

/**
 * 429 while the credential (a token, or a user name's password) is slowed after failures; the
 * sign-in and the change of one's own password share the count, so neither is a way around it.
 */
export function refuseWhileSlowed(ctx: AppContext, body: SignInBody): void {
  const limiter = ctx.limits.authFailures;
  const key = signInKey(body);
  if (!limiter.blocked(key)) return;
  const wait = limiter.retryAfter(key);
  throw new ServerError(
    'CLP_E_RATE_LIMITED',
    'token' in body
      ? `this credential was refused ${limiter.limit} times within a minute; wait ${wait} s before trying it again`
      : `sign-in as ${body.username} failed ${limiter.limit} times within a minute; wait ${wait} s, or sign in with an admin token`,
    { details: { retryAfter: wait } },
  );
}

/** Counts a failed sign-in and answers the 401 to throw. */
export function refuseSignIn(ctx: AppContext, body: SignInBody): ServerError {
  ctx.limits.authFailures.hit(signInKey(body));
  return new ServerError(
    'CLP_E_UNAUTHORIZED',
    'token' in body
      ? 'the API token is unknown, expired or revoked; ask an admin for a new one'
      : 'unknown user name or wrong password (or the account is disabled); try again or ask an admin',
  );
}

/**
 * Password checks running at once, and waiting. Each is an scrypt of 32 MiB on the thread pool
 * that file reads share, and failures are counted per user name: a stranger varying the name
 * would otherwise queue checks without end and stall blob downloads. Past the queue: 429.
 */
const PASSWORD_CHECKS = { running: 2, waiting: 32 };
let checksRunning = 0;
const checksWaiting: Array<() => void> = [];

async function oneCheckAtATime<T>(check: () => Promise<T>): Promise<T> {
  if (checksRunning >= PASSWORD_CHECKS.running) {
    if (checksWaiting.length >= PASSWORD_CHECKS.waiting) {
      throw new ServerError(
        'CLP_E_RATE_LIMITED',
        'too many password sign-ins at once; wait 1 s and try again, or sign in with an admin token',
        { details: { retryAfter: 1 } },
      );
    }
    await new Promise<void>((resolve) => checksWaiting.push(resolve));
  } else {
    checksRunning++;
  }
  try {
    return await check();
  } finally {
    // The slot passes to the next waiting check, or is given back.
    const next = checksWaiting.shift();
    if (next) next();
    else checksRunning--;
  }
}

/** The user whose name and password these are (not disabled); undefined otherwise, in the same time. */
export async function userByPassword(
  ctx: AppContext,
  username: string,
  password: string,
): Promise<typeof users.$inferSelect | undefined> {
  const [user] = await ctx.db.select().from(users).where(eq(users.username, username.toLowerCase()));
  // Unknown names cost as much as wrong passwords, so that timing does not tell which names exist.
  const ok = await oneCheckAtATime(() => verifyPassword(password, user?.passwordHash ?? NO_USER_HASH));
  return user && ok && !user.disabledAt ? user : undefined;
}

/** POST /v1/session: checks the password or token, opens a session and sets its cookie. */
export async function signIn(
  ctx: AppContext,
  body: SignInBody,
  req: Request,
  res: Response,
): Promise<SessionView> {
  checkOrigin(req.headers.origin, req.headers.host);
  refuseWhileSlowed(ctx, body);
  const who = await whoSignsIn(ctx, body);
  if (!who) throw refuseSignIn(ctx, body);
  const secret = newSecret('clp_ses');
  const now = ctx.clock.now();
  const expiresAt = new Date(now.getTime() + SESSION_SECONDS * 1000);
  await ctx.db.insert(sessions).values({
    id: randomUUID(),
    tokenHash: hashSecret(secret),
    userId: who.userId ?? null,
    adminTokenId: who.tokenId ?? null,
    createdAt: now,
    expiresAt,
  });
  await endSessionsBeyondLimit(ctx, who);
  const principal = await sessionPrincipal(ctx, secret);
  if (principal?.kind !== 'admin') throw new Error('a session just opened cannot be read back');
  res.setHeader('Set-Cookie', cookie(req, secret, SESSION_SECONDS));
  res.setHeader('Cache-Control', 'no-store');
  ctx.log.info({ name: principal.name, role: principal.role, account: principal.account }, 'signed in');
  return view(ctx, principal, secret, expiresAt);
}

/** Live sessions one account keeps; signing in once more ends its oldest. */
export const MAX_SESSIONS_PER_ACCOUNT = 20;

/**
 * Ends an account's live sessions beyond the newest MAX_SESSIONS_PER_ACCOUNT: a script signing
 * in without end (or a person on many browsers) does not grow the session table without bound.
 */
async function endSessionsBeyondLimit(ctx: AppContext, who: { userId?: string; tokenId?: string }) {
  const now = ctx.clock.now();
  const account = who.userId ? eq(sessions.userId, who.userId) : eq(sessions.adminTokenId, who.tokenId!);
  const older = await ctx.db
    .select({ id: sessions.id })
    .from(sessions)
    .where(and(account, isNull(sessions.endedAt), gt(sessions.expiresAt, now)))
    .orderBy(desc(sessions.createdAt), desc(sessions.id))
    .offset(MAX_SESSIONS_PER_ACCOUNT);
  if (older.length === 0) return;
  await ctx.db
    .update(sessions)
    .set({ endedAt: now })
    .where(
      inArray(
        sessions.id,
        older.map((o) => o.id),
      ),
    );
}

/** GET /v1/session: who is calling; for a cookie session, with its CSRF token. */
export async function currentSession(
  ctx: AppContext,
  principal: Principal,
  req: Request,
  res: Response,
): Promise<SessionView> {
  if (principal.kind !== 'admin') throw new Error('session route reached without an admin principal');
  res.setHeader('Cache-Control', 'no-store');
  const credential = req.headers.authorization ? undefined : sessionCredential(req);
  if (!credential) return view(ctx, principal, undefined, null);
  const [row] = await ctx.db
    .select({ expiresAt: sessions.expiresAt })
    .from(sessions)
    .where(eq(sessions.tokenHash, hashSecret(credential.secret)));
  return view(ctx, principal, credential.secret, row?.expiresAt ?? null);
}

/** DELETE /v1/session: ends the cookie's session on the server and clears the cookie. */
export async function signOut(ctx: AppContext, req: Request, res: Response): Promise<{ ended: boolean }> {
  const credential = req.headers.authorization ? undefined : sessionCredential(req);
  res.setHeader('Set-Cookie', cookie(req, '', 0));
  if (!credential) return { ended: false };
  const ended = await ctx.db
    .update(sessions)
    .set({ endedAt: ctx.clock.now() })
    .where(and(eq(sessions.tokenHash, hashSecret(credential.secret)), isNull(sessions.endedAt)))
    .returning({ id: sessions.id });
  return { ended: ended.length > 0 };
}

/** Ends every session of a user (new password, disabled account). */
export async function endSessionsOfUser(ctx: AppContext, userId: string): Promise<void> {
  await ctx.db
    .update(sessions)
    .set({ endedAt: ctx.clock.now() })
    .where(and(eq(sessions.userId, userId), isNull(sessions.endedAt)));
}
