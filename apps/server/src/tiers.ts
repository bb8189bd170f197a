import { tiers } from '@clp/db';
import { asc, eq, sql } from 'drizzle-orm';
import type { z } from 'zod';
import type { AppContext } from './context.ts';
import { ServerError } from './errors.ts';
import type { CreateTierBody, EditTierBody, ReorderTiersBody, Tier } from './schemas.ts';

type TierView = z.infer<typeof Tier>;

export async function listTiers(ctx: AppContext): Promise<TierView[]> {
  const rows = await ctx.db.select().from(tiers).orderBy(asc(tiers.position), asc(tiers.name));
  return rows.map((r) => ({ name: r.name, position: r.position, description: r.description }));
}

export async function requireTier(ctx: AppContext, name: string, field = 'tier'): Promise<void> {
  const [row] = await ctx.db.select({ name: tiers.name }).from(tiers).where(eq(tiers.name, name));
  if (!row)
    throw new ServerError('CLP_E_NOT_FOUND', `no tier named ${name}; list them with 'clpctl admin tiers'`, {
      field,
    });
}

export async function createTier(ctx: AppContext, body: z.infer<typeof CreateTierBody>): Promise<TierView> {
  const [max] = await ctx.db.select({ max: sql<number | null>`max(${tiers.position})` }).from(tiers);
  const position = body.position ?? Number(max?.max ?? -1) + 1;
  const [row] = await ctx.db
    .insert(tiers)
    .values({ name: body.name, position, description: body.description, createdAt: ctx.clock.now() })
    .onConflictDoNothing()
    .returning();
  if (!row)
    throw new ServerError('CLP_E_CONFLICT', `a tier named ${body.name} exists already`, { field: 'name' });
  return { name: row.name, position: row.position, description: row.description };
}

export async function editTier(
  ctx: AppContext,
  name: string,
  body: z.infer<typeof EditTierBody>,
): Promise<TierView> {
  await requireTier(ctx, name, 'name');
  const set: Partial<typeof tiers.$inferInsert> = {};
  if (body.position !== undefined) set.position = body.position;
  if (body.description !== undefined) set.description = body.description;
  if (Object.keys(set).length > 0) await ctx.db.update(tiers).set(set).where(eq(tiers.name, name));
  const [row] = await ctx.db.select().from(tiers).where(eq(tiers.name, name));
  return { name: row!.name, position: row!.position, description: row!.description };
}

/** Sets the order of tiers: the listed names get positions 0, 1, …; every tier must be listed once. */
export async function reorderTiers(
  ctx: AppContext,
  body: z.infer<typeof ReorderTiersBody>,
): Promise<TierView[]> {
  const current = await listTiers(ctx);
  const names = new Set(current.map((t) => t.name));
  const given = new Set(body.order);
  if (
    given.size !== body.order.length ||
    given.size !== names.size ||
    ![...given].every((n) => names.has(n))
  ) {
    throw new ServerError(
      'CLP_E_VALIDATION',
      `order must list every tier exactly once (${[...names].join(', ')})`,
      { field: 'order' },
    );
  }
  await ctx.db.transaction(async (tx) => {
    for (const [i, name] of body.order.entries())
      await tx.update(tiers).set({ position: i }).where(eq(tiers.name, name));
  });
  return listTiers(ctx);
}
