import { randomUUID } from 'node:crypto';
import { adminTokens, enrollmentTokens } from '@clp/db';
import { desc, eq, sql } from 'drizzle-orm';
import type { z } from 'zod';
import { type AppContext, actorName, type Principal } from './context.ts';
import { ServerError } from './errors.ts';
import type {
  AdminToken,
  CreateAdminTokenBody,
  CreatedAdminToken,
  CreatedEnrollmentToken,
  CreateEnrollmentTokenBody,
  EnrollmentToken,
} from './schemas.ts';
import { hashSecret, newSecret } from './secrets.ts';
import { requireTier } from './tiers.ts';

type EnrollmentRow = typeof enrollmentTokens.$inferSelect;
type AdminRow = typeof adminTokens.$inferSelect;

function enrollmentView(row: EnrollmentRow): z.infer<typeof EnrollmentToken> {
  return {
    id: row.id,
    tier: row.tier,
    tags: row.tags,
    expiresAt: row.expiresAt.toISOString(),
    usesLeft: row.usesLeft,
    createdBy: row.createdBy,
    createdAt: row.createdAt.toISOString(),
    revoked: row.revokedAt !== null,
  };
}

function adminView(row: AdminRow): z.infer<typeof AdminToken> {
  return {
    id: row.id,
    name: row.name,
    role: row.role,
    createdAt: row.createdAt.toISOString(),
    expiresAt: row.expiresAt?.toISOString() ?? null,
    revoked: row.revokedAt !== null,
  };
}

/** Makes an enrollment token; the secret is in this answer only (stored hashed). */
export async function createEnrollmentToken(
  ctx: AppContext,
  body: z.infer<typeof CreateEnrollmentTokenBody>,
  principal: Principal,
): Promise<z.infer<typeof CreatedEnrollmentToken>> {
  await requireTier(ctx, body.tier);
  const token = newSecret('clp_enr');
  const now = ctx.clock.now();
  const [row] = await ctx.db
    .insert(enrollmentTokens)
    .values({
      id: randomUUID(),
      tokenHash: hashSecret(token),
      tier: body.tier,
      tags: body.tags,
      expiresAt: new Date(now.getTime() + body.expiresInSeconds * 1000),
      usesLeft: body.uses,
      createdBy: actorName(principal),
      createdAt: now,
    })
    .returning();
  return { ...enrollmentView(row!), token };
}

export interface Page {
  limit: number;
  offset: number;
}

export async function listEnrollmentTokens(
  ctx: AppContext,
  page: Page,
): Promise<{ tokens: z.infer<typeof EnrollmentToken>[]; total: number }> {
  const rows = await ctx.db
    .select()
    .from(enrollmentTokens)
    .orderBy(desc(enrollmentTokens.createdAt), desc(enrollmentTokens.id))
    .limit(page.limit)
    .offset(page.offset);
  const [count] = await ctx.db.select({ n: sql<number>`count(*)::int` }).from(enrollmentTokens);
  return { tokens: rows.map(enrollmentView), total: Number(count?.n ?? 0) };
}

export async function revokeEnrollmentToken(
  ctx: AppContext,
  id: string,
): Promise<z.infer<typeof EnrollmentToken>> {
  const [row] = await ctx.db
    .update(enrollmentTokens)
    .set({ revokedAt: ctx.clock.now() })
    .where(eq(enrollmentTokens.id, id))
    .returning();
  if (!row) throw new ServerError('CLP_E_NOT_FOUND', `no enrollment token with id ${id}`);
  return enrollmentView(row);
}

/** Stores an admin token whose secret is already known (the bootstrap token). */
export async function insertAdminToken(
  ctx: Pick<AppContext, 'db' | 'clock'>,
  secret: string,
  name: string,
  role: AdminRow['role'],
  expiresAt: Date | null = null,
): Promise<AdminRow> {
  const [row] = await ctx.db
    .insert(adminTokens)
    .values({
      id: randomUUID(),
      name,
      tokenHash: hashSecret(secret),
      role,
      createdAt: ctx.clock.now(),
      expiresAt,
    })
    .onConflictDoNothing()
    .returning();
  if (row) return row;
  const [existing] = await ctx.db
    .select()
    .from(adminTokens)
    .where(eq(adminTokens.tokenHash, hashSecret(secret)));
  return existing!;
}

export async function createAdminToken(
  ctx: AppContext,
  body: z.infer<typeof CreateAdminTokenBody>,
): Promise<z.infer<typeof CreatedAdminToken>> {
  const token = newSecret('clp_adm');
  const expiresAt = body.expiresInSeconds
    ? new Date(ctx.clock.now().getTime() + body.expiresInSeconds * 1000)
    : null;
  const row = await insertAdminToken(ctx, token, body.name, body.role, expiresAt);
  return { ...adminView(row), token };
}

export async function listAdminTokens(
  ctx: AppContext,
  page: Page,
): Promise<{ tokens: z.infer<typeof AdminToken>[]; total: number }> {
  const rows = await ctx.db
    .select()
    .from(adminTokens)
    .orderBy(desc(adminTokens.createdAt), desc(adminTokens.id))
    .limit(page.limit)
    .offset(page.offset);
  const [count] = await ctx.db.select({ n: sql<number>`count(*)::int` }).from(adminTokens);
  return { tokens: rows.map(adminView), total: Number(count?.n ?? 0) };
}

export async function revokeAdminToken(ctx: AppContext, id: string): Promise<z.infer<typeof AdminToken>> {
  const [row] = await ctx.db
    .update(adminTokens)
    .set({ revokedAt: ctx.clock.now() })
    .where(eq(adminTokens.id, id))
    .returning();
  if (!row) throw new ServerError('CLP_E_NOT_FOUND', `no admin token with id ${id}`);
  return adminView(row);
}
