import { rm } from 'node:fs/promises';
import type { IncomingMessage } from 'node:http';
import { promotions, releases, tiers } from '@clp/db';
import { parsePatchName } from '@clp/format';
import { and, desc, eq, ilike, inArray, isNotNull, isNull, type SQL, sql } from 'drizzle-orm';
import type { z } from 'zod';
import { type AppContext, actorName, type Principal } from './context.ts';
import { sqlState } from './db-errors.ts';
import { ServerError } from './errors.ts';
import type { InspectedRelease } from './release-inspector.ts';
import type { Release, ReleaseDetail, ReleaseListQuery } from './schemas.ts';
import { requireTier } from './tiers.ts';
import { type ReceivedUpload, receiveUpload } from './upload.ts';

/** SQLSTATE unique_violation. */
const UNIQUE_VIOLATION = '23505';

type ReleaseRow = typeof releases.$inferSelect;

export function releaseView(row: ReleaseRow, tierNames: string[]): Release {
  return {
    id: row.id,
    sha256: row.sha256,
    name: row.name,
    series: row.series,
    version: row.version,
    arch: row.arch,
    size: row.size,
    signerKeyId: row.signerKeyId,
    uploadedBy: row.uploadedBy,
    uploadedAt: row.uploadedAt.toISOString(),
    yanked: row.yankedAt !== null,
    yankedAt: row.yankedAt?.toISOString() ?? null,
    tiers: tierNames,
    meta: row.meta,
  };
}

async function tiersOf(ctx: AppContext, releaseId: string): Promise<string[]> {
  const rows = await ctx.db
    .select({ tier: promotions.tier })
    .from(promotions)
    .innerJoin(tiers, eq(tiers.name, promotions.tier))
    .where(eq(promotions.releaseId, releaseId))
    .orderBy(tiers.position);
  return rows.map((r) => r.tier);
}

export async function findRelease(ctx: AppContext, id: string): Promise<ReleaseRow> {
  const [row] = await ctx.db.select().from(releases).where(eq(releases.id, id));
  if (!row) {
    throw new ServerError(
      'CLP_E_NOT_FOUND',
      `no release with id ${id}; list them with 'clpctl admin releases'`,
      {
        details: { id },
      },
    );
  }
  return row;
}

export async function showRelease(ctx: AppContext, id: string): Promise<ReleaseDetail> {
  const row = await findRelease(ctx, id);
  return { ...releaseView(row, await tiersOf(ctx, id)), entries: row.entries };
}

/**
 * Receives a .clp (streamed to a temporary file and hashed), verifies it, and stores it by
 * sha256. Uploading the same bytes again answers 200 with the release already stored.
 */
export async function uploadRelease(
  ctx: AppContext,
  req: IncomingMessage,
  principal: Principal,
): Promise<{ status: number; body: Release }> {
  const upload = await receiveUpload(req, ctx.blobs.tempDir, ctx.config.maxUploadBytes);
  try {
    const [existing] = await ctx.db.select().from(releases).where(eq(releases.id, upload.sha256));
    if (existing) {
      ctx.metrics.uploads.inc({ result: 'duplicate' });
      return { status: 200, body: releaseView(existing, await tiersOf(ctx, existing.id)) };
    }
    const inspected = await ctx.inspect(upload.file);
    const meta = inspected.meta;
    // The name carries the series order; checked here so that polls can rely on it.
    parsePatchName(meta.name);
    const [sameName] = await ctx.db.select().from(releases).where(eq(releases.name, meta.name));
    if (sameName) throw nameTaken(meta.name, sameName.sha256);
    await ctx.blobs.put(upload.sha256, upload.file);
    const row = await insertRelease(ctx, upload, inspected, principal);
    ctx.metrics.uploads.inc({ result: 'stored' });
    if (!row) {
      // The same bytes arrived concurrently through another request: answer with that one.
      const stored = await findRelease(ctx, upload.sha256);
      return { status: 200, body: releaseView(stored, await tiersOf(ctx, stored.id)) };
    }
    ctx.log.info({ release: row.id, name: row.name, by: row.uploadedBy }, 'release uploaded');
    return { status: 201, body: releaseView(row, []) };
  } catch (error) {
    ctx.metrics.uploads.inc({ result: 'rejected' });
    throw error;
  } finally {
    await rm(upload.file, { force: true });
  }
}

/**
 * Inserts the release row; undefined when the same bytes were stored meanwhile. Two different
 * files under one name may pass the handler's check at once: the database's unique name decides,
 * and the loser gets 409 and loses its blob (no release can ever refer to it).
 */
async function insertRelease(
  ctx: AppContext,
  upload: ReceivedUpload,
  inspected: InspectedRelease,
  principal: Principal,
): Promise<ReleaseRow | undefined> {
  const meta = inspected.meta;
  try {
    const [row] = await ctx.db
      .insert(releases)
      .values({
        id: upload.sha256,
        sha256: upload.sha256,
        name: meta.name,
        series: meta.series,
        version: meta.version,
        arch: meta.architecture,
        meta: meta as unknown as Record<string, unknown>,
        signerKeyId: inspected.signerKeyId,
        entries: inspected.entries ?? [],
        size: upload.size,
        uploadedBy: actorName(principal),
        uploadedAt: ctx.clock.now(),
      })
      .onConflictDoNothing({ target: releases.id })
      .returning();
    return row;
  } catch (error) {
    if (sqlState(error) !== UNIQUE_VIOLATION) throw error;
    const [sameName] = await ctx.db.select().from(releases).where(eq(releases.name, meta.name));
    const [sameBytes] = await ctx.db.select().from(releases).where(eq(releases.id, upload.sha256));
    if (!sameBytes) await ctx.blobs.remove(upload.sha256);
    throw nameTaken(meta.name, sameName?.sha256 ?? 'unknown');
  }
}

function nameTaken(name: string, existing: string): ServerError {
  return new ServerError(
    'CLP_E_CONFLICT',
    `a different release named ${name} exists already (sha256 ${existing}); give the new patch a new revision`,
    { details: { name, existing } },
  );
}

/** Releases, newest first, filtered and paged in the database. */
export async function listReleases(
  ctx: AppContext,
  query: z.infer<typeof ReleaseListQuery>,
): Promise<{ releases: Release[]; total: number }> {
  if (query.tier) await requireTier(ctx, query.tier, 'query.tier');
  const where: SQL[] = [];
  if (query.name) where.push(eq(releases.name, query.name));
  if (query.series) where.push(eq(releases.series, query.series));
  if (query.q) where.push(ilike(releases.name, `%${query.q.replace(/[\\%_]/g, (c) => `\\${c}`)}%`));
  if (query.yanked === 'true') where.push(isNotNull(releases.yankedAt));
  if (query.yanked === 'false') where.push(isNull(releases.yankedAt));
  if (query.tier) {
    where.push(
      sql`exists (select 1 from ${promotions} where ${promotions.releaseId} = ${releases.id} and ${promotions.tier} = ${query.tier})`,
    );
  }
  const filter = where.length ? and(...where) : undefined;
  const rows = await ctx.db
    .select()
    .from(releases)
    .where(filter)
    .orderBy(desc(releases.uploadedAt), desc(releases.id))
    .limit(query.limit)
    .offset(query.offset);
  const [count] = await ctx.db.select({ n: sql<number>`count(*)::int` }).from(releases).where(filter);
  const promos = rows.length
    ? await ctx.db
        .select()
        .from(promotions)
        .where(
          inArray(
            promotions.releaseId,
            rows.map((r) => r.id),
          ),
        )
    : [];
  const byRelease = new Map<string, string[]>();
  for (const p of promos) byRelease.set(p.releaseId, [...(byRelease.get(p.releaseId) ?? []), p.tier]);
  return {
    releases: rows.map((r) => releaseView(r, byRelease.get(r.id) ?? [])),
    total: Number(count?.n ?? 0),
  };
}

export async function yankRelease(ctx: AppContext, id: string, principal: Principal): Promise<Release> {
  await findRelease(ctx, id);
  await ctx.db
    .update(releases)
    .set({ yankedAt: ctx.clock.now(), yankedBy: actorName(principal) })
    .where(and(eq(releases.id, id), isNull(releases.yankedAt)));
  ctx.rollouts.invalidate();
  return showRelease(ctx, id);
}

export async function promoteRelease(
  ctx: AppContext,
  id: string,
  tier: string,
  principal: Principal,
): Promise<Release> {
  const release = await findRelease(ctx, id);
  if (release.yankedAt) {
    throw new ServerError(
      'CLP_E_RELEASE_YANKED',
      `release ${release.name} (${id}) was yanked; it cannot be promoted`,
    );
  }
  const [t] = await ctx.db.select().from(tiers).where(eq(tiers.name, tier));
  if (!t)
    throw new ServerError('CLP_E_NOT_FOUND', `no tier named ${tier}; list them with 'clpctl admin tiers'`, {
      field: 'tier',
    });
  await ctx.db
    .insert(promotions)
    .values({ releaseId: id, tier, promotedBy: actorName(principal), promotedAt: ctx.clock.now() })
    .onConflictDoNothing();
  return showRelease(ctx, id);
}
