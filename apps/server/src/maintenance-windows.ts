import { maintenanceWindows } from '@clp/db';
import { parseMaintenanceWindow } from '@clp/protocol';
import { and, asc, eq } from 'drizzle-orm';
import type { z } from 'zod';
import { type AppContext, actorName, type Principal } from './context.ts';
import { ServerError } from './errors.ts';
import type { MaintenanceWindowEntry, SetMaintenanceWindowBody } from './schemas.ts';
import { requireTier } from './tiers.ts';

type Entry = z.infer<typeof MaintenanceWindowEntry>;

function entry(row: typeof maintenanceWindows.$inferSelect): Entry {
  return {
    kind: row.kind,
    name: row.name,
    window: row.spec,
    updatedBy: row.updatedBy,
    updatedAt: row.updatedAt.toISOString(),
  };
}

export async function listWindows(ctx: AppContext): Promise<Entry[]> {
  const rows = await ctx.db
    .select()
    .from(maintenanceWindows)
    .orderBy(asc(maintenanceWindows.kind), asc(maintenanceWindows.name));
  return rows.map(entry);
}

/** Sets the window of a tier or tag (replacing any); polls deliver it to the machines at once. */
export async function setWindow(
  ctx: AppContext,
  body: z.infer<typeof SetMaintenanceWindowBody>,
  principal: Principal,
): Promise<Entry> {
  const parsed = parseMaintenanceWindow(body.window);
  if (typeof parsed === 'string')
    throw new ServerError('CLP_E_VALIDATION', `body.window: ${parsed}`, { field: 'body.window' });
  if (body.kind === 'tier') await requireTier(ctx, body.name);
  const values = {
    target: `${body.kind}:${body.name}`,
    kind: body.kind,
    name: body.name,
    spec: parsed.spec,
    updatedBy: actorName(principal),
    updatedAt: ctx.clock.now(),
  };
  const [row] = await ctx.db
    .insert(maintenanceWindows)
    .values(values)
    .onConflictDoUpdate({ target: maintenanceWindows.target, set: values })
    .returning();
  ctx.rollouts.invalidate();
  ctx.log.info(
    { target: values.target, window: values.spec, by: values.updatedBy },
    'maintenance window set',
  );
  return entry(row!);
}

export async function clearWindow(ctx: AppContext, kind: 'tier' | 'tag', name: string): Promise<Entry> {
  const [row] = await ctx.db
    .delete(maintenanceWindows)
    .where(and(eq(maintenanceWindows.kind, kind), eq(maintenanceWindows.name, name)))
    .returning();
  if (!row)
    throw new ServerError(
      'CLP_E_NOT_FOUND',
      `no maintenance window for ${kind} ${name}; list them with 'clpctl admin windows'`,
    );
  ctx.rollouts.invalidate();
  return entry(row);
}
