import { type AdminRole, adminTokens, machines } from '@clp/db';
import { eq, inArray } from 'drizzle-orm';
import type { AgentMachine, AppContext, Principal } from './context.ts';
import { ServerError } from './errors.ts';
import { bearerToken, hashSecret } from './secrets.ts';
import { checkCsrf, type SessionCredential, sessionPrincipal } from './sessions.ts';

/** Who may call a route. `admin` roles always include the admin role itself. */
export type Access =
  | { kind: 'public' }
  | { kind: 'enroll' }
  | { kind: 'agent' }
  | { kind: 'admin'; roles: readonly AdminRole[] };

/** Most credentials looked up in one query. */
const MAX_BATCH = 256;

function unauthorized(message: string): ServerError {
  return new ServerError('CLP_E_UNAUTHORIZED', message);
}

/** Looks up an admin token; undefined when unknown, revoked or expired. */
async function adminFromToken(ctx: AppContext, token: string): Promise<Principal | undefined> {
  const [row] = await ctx.db
    .select()
    .from(adminTokens)
    .where(eq(adminTokens.tokenHash, hashSecret(token)));
  if (!row || row.revokedAt) return undefined;
  if (row.expiresAt && row.expiresAt.getTime() <= ctx.clock.now().getTime()) return undefined;
  return { kind: 'admin', id: row.id, name: row.name, role: row.role, account: 'token' };
}

/**
 * Machine credentials, cached for at most `ttlMs` (1 s by default): polls are the hot path
 * (bar P5). A revoked or replaced credential stops working on this process when the cache is
 * cleared (a change made here, or announced by the database on PostgreSQL), and in any case once
 * its entry is older than `ttlMs`. Lookups that arrive together (many agents polling at once)
 * share one query, which saves the database a round trip per poll.
 */
export class MachineAuthCache {
  readonly #ttlMs: number;
  readonly #entries = new Map<string, { row: AgentMachine; until: number }>();
  #waiting = new Map<
    string,
    Array<{ resolve(row: AgentMachine | undefined): void; reject(e: unknown): void }>
  >();
  #scheduled = false;
  /** Bumped by clear(): a lookup that started before a clear answers its callers but caches nothing. */
  #generation = 0;

  constructor(ttlMs = 1000) {
    this.#ttlMs = Math.min(ttlMs, 1000);
  }

  async lookup(ctx: AppContext, token: string): Promise<AgentMachine | undefined> {
    const hash = hashSecret(token);
    const hit = this.#entries.get(hash);
    if (hit && hit.until > performance.now()) return hit.row;
    return new Promise((resolve, reject) => {
      const list = this.#waiting.get(hash);
      if (list) list.push({ resolve, reject });
      else this.#waiting.set(hash, [{ resolve, reject }]);
      if (!this.#scheduled) {
        this.#scheduled = true;
        // After the requests already read from the sockets have asked too.
        setImmediate(() => void this.#run(ctx));
      }
    });
  }

  async #run(ctx: AppContext): Promise<void> {
    this.#scheduled = false;
    const batch = this.#waiting;
    this.#waiting = new Map();
    const hashes = [...batch.keys()];
    const generation = this.#generation;
    for (let i = 0; i < hashes.length; i += MAX_BATCH) {
      const part = hashes.slice(i, i + MAX_BATCH);
      const started = performance.now();
      try {
        const rows = await ctx.db
          .select({
            id: machines.id,
            tier: machines.tier,
            tags: machines.tags,
            credentialHash: machines.credentialHash,
            revokedAt: machines.revokedAt,
          })
          .from(machines)
          .where(
            part.length === 1
              ? eq(machines.credentialHash, part[0]!)
              : inArray(machines.credentialHash, part),
          );
        const found = new Map(rows.map((r) => [r.credentialHash, r]));
        // The bound counts from before the query: the row may be that old when it arrives.
        const until = started + this.#ttlMs;
        const cache = generation === this.#generation;
        if (this.#entries.size > 200_000) this.#entries.clear();
        for (const hash of part) {
          const r = found.get(hash);
          const row = r && !r.revokedAt ? { id: r.id, tier: r.tier, tags: r.tags } : undefined;
          if (row && cache) this.#entries.set(hash, { row, until });
          else this.#entries.delete(hash);
          for (const w of batch.get(hash) ?? []) w.resolve(row);
        }
      } catch (error) {
        for (const hash of part) for (const w of batch.get(hash) ?? []) w.reject(error);
      }
    }
  }

  /** Forgets every cached credential (a machine was revoked, re-enrolled or moved, here or elsewhere). */
  clear(): void {
    this.#entries.clear();
    this.#generation++;
  }
}

/** 403 unless the admin principal's role may use the route. */
function requireRole(
  access: Extract<Access, { kind: 'admin' }>,
  admin: Extract<Principal, { kind: 'admin' }>,
) {
  if (admin.role !== 'admin' && !access.roles.includes(admin.role)) {
    throw new ServerError(
      'CLP_E_FORBIDDEN',
      `a ${admin.role} ${admin.account === 'user' ? 'user' : 'token'} may not do this; it needs one of the roles: admin, ${access.roles.filter((r) => r !== 'admin').join(', ')}`,
      { details: { role: admin.role, allowed: access.roles } },
    );
  }
  return admin;
}

/**
 * Checks the caller against a route's access rule: 401 without a valid credential of the kind
 * the route takes, 403 with a valid admin token of a role the route does not allow. Admin routes
 * also take the console's session cookie when no Authorization header is sent; its unsafe requests
 * must carry the session's CSRF token.
 *
 * Failures are counted per presented credential (its hash, and the kind of route or the session
 * it was tried as), and a call without any credential per address: once one has failed too often
 * it gets 429 without a lookup, so a misconfigured agent retrying a revoked credential costs no
 * query. A valid credential never fails, so it is never refused by that count, whoever shares its
 * address (a whole fleet behind one proxy).
 */
export async function authenticate(
  ctx: AppContext,
  access: Access,
  authorization: string | undefined,
  ip: string,
  session?: SessionCredential,
): Promise<Principal> {
  if (access.kind === 'public' || access.kind === 'enroll') return { kind: 'anonymous' };
  const token = bearerToken(authorization);
  const cookie = !authorization && access.kind === 'admin' ? session : undefined;
  const limiter = ctx.limits.authFailures;
  const key = token
    ? `${access.kind}:${hashSecret(token)}`
    : cookie
      ? `session:${hashSecret(cookie.secret)}`
      : `none:${ip}`;
  if (limiter.blocked(key)) {
    const wait = limiter.retryAfter(key);
    throw new ServerError(
      'CLP_E_RATE_LIMITED',
      token || cookie
        ? `this credential was refused ${limiter.limit} times within a minute; wait ${wait} s before trying it again`
        : `too many calls without a credential from ${ip}; wait ${wait} s`,
      { details: { retryAfter: wait } },
    );
  }
  const fail = (message: string): never => {
    limiter.hit(key);
    throw unauthorized(message);
  };
  if (cookie && access.kind === 'admin') {
    const principal = await sessionPrincipal(ctx, cookie.secret);
    if (principal?.kind !== 'admin') return fail('the console session has ended or expired; sign in again');
    checkCsrf(cookie);
    return requireRole(access, principal);
  }
  if (!token) {
    return fail(
      access.kind === 'agent'
        ? 'this route needs the machine credential (Authorization: Bearer …); enroll the machine first'
        : 'this route needs an admin API token (Authorization: Bearer …)',
    );
  }
  if (access.kind === 'agent') {
    const machine = await ctx.machineAuth.lookup(ctx, token);
    if (!machine) return fail('the machine credential is unknown or revoked; enroll the machine again');
    return { kind: 'machine', machine };
  }
  const admin = await adminFromToken(ctx, token);
  if (admin?.kind !== 'admin') return fail('the API token is unknown, expired or revoked');
  return requireRole(access, admin);
}
