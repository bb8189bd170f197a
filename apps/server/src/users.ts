import { randomUUID } from 'node:crypto';
import { users } from '@clp/db';
import type { ChangePasswordBody, CreateUserBody, EditUserBody, User } from '@clp/protocol';
import { asc, eq, or, sql } from 'drizzle-orm';
import { type AppContext, actorName, type Principal } from './context.ts';
import { sqlState } from './db-errors.ts';
import { ServerError } from './errors.ts';
import { hashPassword } from './passwords.ts';
import { endSessionsOfUser, refuseSignIn, refuseWhileSlowed, userByPassword } from './sessions.ts';

type UserRow = typeof users.$inferSelect;

function userView(row: UserRow): User {
  return {
    id: row.id,
    username: row.username,
    role: row.role,
    createdBy: row.createdBy,
    createdAt: row.createdAt.toISOString(),
    passwordChangedAt: row.passwordChangedAt.toISOString(),
    disabled: row.disabledAt !== null,
  };
}

export async function listUsers(
  ctx: AppContext,
  query: { limit: number; offset: number },
): Promise<{ users: User[]; total: number }> {
  const rows = await ctx.db
    .select()
    .from(users)
    .orderBy(asc(users.username))
    .limit(query.limit)
    .offset(query.offset);
  const [count] = await ctx.db.select({ n: sql<number>`count(*)::int` }).from(users);
  return { users: rows.map(userView), total: Number(count?.n ?? 0) };
}

export async function createUser(ctx: AppContext, body: CreateUserBody, principal: Principal): Promise<User> {
  const now = ctx.clock.now();
  try {
    const [row] = await ctx.db
      .insert(users)
      .values({
        id: randomUUID(),
        username: body.username,
        passwordHash: await hashPassword(body.password),
        role: body.role,
        createdBy: actorName(principal),
        createdAt: now,
        passwordChangedAt: now,
      })
      .returning();
    ctx.log.info({ user: body.username, role: body.role, by: actorName(principal) }, 'user created');
    return userView(row!);
  } catch (error) {
    if (sqlState(error) === '23505') {
      throw new ServerError(
        'CLP_E_CONFLICT',
        `a user named ${body.username} exists already; pick another name`,
        {
          field: 'username',
        },
      );
    }
    throw error;
  }
}

/** Changes a user's (by id or name) role, password or disabled state; a new password or disabling ends their sessions. */
export async function editUser(
  ctx: AppContext,
  id: string,
  body: EditUserBody,
  principal: Principal,
): Promise<User> {
  const now = ctx.clock.now();
  const set: Partial<typeof users.$inferInsert> = {};
  if (body.role !== undefined) set.role = body.role;
  if (body.password !== undefined) {
    set.passwordHash = await hashPassword(body.password);
    set.passwordChangedAt = now;
  }
  if (body.disabled !== undefined) set.disabledAt = body.disabled ? now : null;
  const [row] = await ctx.db
    .update(users)
    .set(set)
    .where(or(eq(users.id, id), eq(users.username, id)))
    .returning();
  if (!row)
    throw new ServerError(
      'CLP_E_NOT_FOUND',
      `no user with id or name ${id}; list them with 'clpctl admin users'`,
    );
  if (body.password !== undefined || body.disabled) await endSessionsOfUser(ctx, row.id);
  ctx.log.info(
    {
      user: row.username,
      role: body.role,
      password: body.password !== undefined,
      disabled: body.disabled,
      by: actorName(principal),
    },
    'user changed',
  );
  return userView(row);
}

/**
 * A person changes their own password by proving the current one (no session needed, so that
 * `clpctl admin password` works as well as the console). Failures count as failed sign-ins of
 * that name; every session of the user ends, so a stolen session does not outlive the change.
 */
export async function changeOwnPassword(ctx: AppContext, body: ChangePasswordBody): Promise<User> {
  const credential = { username: body.username, password: body.currentPassword };
  refuseWhileSlowed(ctx, credential);
  const user = await userByPassword(ctx, body.username, body.currentPassword);
  if (!user) throw refuseSignIn(ctx, credential);
  if (body.newPassword === body.currentPassword) {
    throw new ServerError('CLP_E_VALIDATION', 'the new password is the current one; choose another', {
      field: 'body.newPassword',
    });
  }
  const [row] = await ctx.db
    .update(users)
    .set({ passwordHash: await hashPassword(body.newPassword), passwordChangedAt: ctx.clock.now() })
    .where(eq(users.id, user.id))
    .returning();
  await endSessionsOfUser(ctx, user.id);
  ctx.log.info({ user: user.username }, 'password changed by its user');
  return userView(row!);
}
