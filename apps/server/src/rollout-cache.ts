import { type Database, releases, rolloutAudit, rolloutCounters, rollouts } from '@clp/db';
import { and, eq, inArray } from 'drizzle-orm';
import type { Clock } from './clock.ts';
import type { RolloutView } from './poll.ts';
import { nextTransition, type StageTransition } from './rollout-stage.ts';

/** States whose rollouts matter to polls: they offer (active, completed) or take back (reverted). */
const LIVE_STATES = ['active', 'completed', 'reverted'] as const;

/**
 * The live rollouts, held in memory so that a poll costs no query for them. An answer never
 * comes from a cache older than `ttlMs` (real time): past half of it a reload starts in the
 * background, so that steady traffic never waits; past all of it callers wait for the reload.
 * `invalidate()` (a change made here, or announced by the database from another process) makes
 * the next caller wait for a reload. Each reload also moves active rollouts along their stages
 * (or halts them), with a conditional update so that several server instances never apply one
 * step twice.
 */
export class ActiveRollouts {
  readonly #db: Database;
  readonly #clock: Clock;
  readonly #ttlMs: number;
  #byTier = new Map<string, RolloutView[]>();
  #all: RolloutView[] = [];
  #loadedAt = Number.NEGATIVE_INFINITY;
  #refreshing: Promise<void> | undefined;
  #generation = 0;

  constructor(db: Database, clock: Clock, ttlMs: number) {
    this.#db = db;
    this.#clock = clock;
    this.#ttlMs = Math.min(ttlMs, 1000);
  }

  /** The live rollouts of one tier, from a cache at most `ttlMs` old. */
  async forTier(tier: string): Promise<RolloutView[]> {
    const age = performance.now() - this.#loadedAt;
    if (age > this.#ttlMs) await this.refresh();
    else if (age > this.#ttlMs / 2 && !this.#refreshing) void this.refresh().catch(() => undefined);
    return this.#byTier.get(tier) ?? [];
  }

  async all(): Promise<RolloutView[]> {
    if (performance.now() - this.#loadedAt > this.#ttlMs) await this.refresh();
    return this.#all;
  }

  /** Drops the cache: the next poll reloads (after a change made through this instance). */
  invalidate(): void {
    this.#loadedAt = Number.NEGATIVE_INFINITY;
    this.#generation++;
  }

  /**
   * Reloads unless the cache is younger than half its bound (one reload at a time; callers
   * arriving meanwhile share it).
   */
  async refresh(): Promise<void> {
    while (this.#refreshing) await this.#refreshing;
    if (performance.now() - this.#loadedAt <= this.#ttlMs / 2) return;
    const generation = this.#generation;
    this.#refreshing = this.#load(generation).finally(() => {
      this.#refreshing = undefined;
    });
    await this.#refreshing;
  }

  async #load(generation: number): Promise<void> {
    // The age counts from before the queries: what they read may be that old when they answer.
    const started = performance.now();
    await advanceRollouts(this.#db, this.#clock);
    const rows = await this.#db
      .select({ rollout: rollouts, release: releases })
      .from(rollouts)
      .innerJoin(releases, eq(releases.id, rollouts.releaseId))
      .where(inArray(rollouts.state, [...LIVE_STATES]));
    const byTier = new Map<string, RolloutView[]>();
    const all: RolloutView[] = [];
    for (const { rollout, release } of rows) {
      const view = rolloutView(rollout, release);
      all.push(view);
      const list = byTier.get(view.tier) ?? [];
      list.push(view);
      byTier.set(view.tier, list);
    }
    this.#byTier = byTier;
    this.#all = all;
    // An invalidation during the load may have missed a change: leave the cache stale.
    this.#loadedAt = generation === this.#generation ? started : Number.NEGATIVE_INFINITY;
  }
}

/** Applies the due stage transitions of every active rollout; returns what changed. */
export async function advanceRollouts(
  db: Database,
  clock: Clock,
): Promise<Array<{ rolloutId: string; transition: StageTransition }>> {
  const rows = await db
    .select({ rollout: rollouts, counters: rolloutCounters })
    .from(rollouts)
    .leftJoin(rolloutCounters, eq(rolloutCounters.rolloutId, rollouts.id))
    .where(eq(rollouts.state, 'active'));
  const now = clock.now();
  const changed: Array<{ rolloutId: string; transition: StageTransition }> = [];
  for (const { rollout, counters } of rows) {
    const transition = nextTransition(rollout, counters ?? { applied: 0, failed: 0 }, now);
    if (transition.kind === 'none') continue;
    const set =
      transition.kind === 'advance'
        ? { currentStage: transition.toStage, stageStartedAt: now, updatedAt: now }
        : transition.kind === 'complete'
          ? { state: 'completed' as const, updatedAt: now }
          : { state: 'halted' as const, haltReason: transition.reason, updatedAt: now };
    const done = await db.transaction(async (tx) => {
      const updated = await tx
        .update(rollouts)
        .set(set)
        .where(
          and(
            eq(rollouts.id, rollout.id),
            eq(rollouts.state, 'active'),
            eq(rollouts.currentStage, rollout.currentStage),
          ),
        )
        .returning({ id: rollouts.id });
      if (updated.length === 0) return false;
      await tx.insert(rolloutAudit).values({
        rolloutId: rollout.id,
        actor: 'system',
        action: transition.kind,
        at: now,
        details:
          transition.kind === 'advance'
            ? {
                fromStage: rollout.currentStage,
                toStage: transition.toStage,
                percent: rollout.stages[transition.toStage]?.percent,
              }
            : transition.kind === 'halt'
              ? { reason: transition.reason, counters: counters ?? {} }
              : {},
      });
      return true;
    });
    if (done) changed.push({ rolloutId: rollout.id, transition });
  }
  return changed;
}

/** What polls and explanations need of a rollout and its release. */
export function rolloutView(
  rollout: typeof rollouts.$inferSelect,
  release: typeof releases.$inferSelect,
): RolloutView {
  return {
    id: rollout.id,
    tier: rollout.tier,
    state: rollout.state,
    selector: rollout.selector,
    stages: rollout.stages,
    currentStage: rollout.currentStage,
    release: {
      id: release.id,
      name: release.name,
      series: release.series,
      sha256: release.sha256,
      size: release.size,
      arch: release.arch,
      uploadedAt: release.uploadedAt,
      yanked: release.yankedAt !== null,
    },
  };
}
