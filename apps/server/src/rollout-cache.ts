import { type Database, maintenanceWindows, releases, rolloutMachines, rollouts } from '@clp/db';
import { type MaintenanceWindow, parseMaintenanceWindow } from '@clp/protocol';
import { and, eq, inArray, isNotNull, isNull } from 'drizzle-orm';
import type { Clock } from './clock.ts';
import type { RolloutView } from './poll.ts';
import { advanceRollouts } from './rollout-judge.ts';

export { advanceRollouts };

/** Maintenance windows by `tier:NAME` / `tag:NAME`. */
export type WindowMap = ReadonlyMap<string, MaintenanceWindow>;

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
  readonly #advance: () => Promise<unknown>;
  #byTier = new Map<string, RolloutView[]>();
  #all: RolloutView[] = [];
  #windows: WindowMap = new Map();
  #loadedAt = Number.NEGATIVE_INFINITY;
  #refreshing: Promise<void> | undefined;
  #generation = 0;

  constructor(db: Database, clock: Clock, ttlMs: number, advance?: () => Promise<unknown>) {
    this.#db = db;
    this.#clock = clock;
    this.#ttlMs = Math.min(ttlMs, 1000);
    this.#advance = advance ?? (() => advanceRollouts(this.#db, this.#clock));
  }

  /** The maintenance windows, from the same load (and bound) as the rollouts. */
  windows(): WindowMap {
    return this.#windows;
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
    await this.#advance();
    const rows = await this.#db
      .select({ rollout: rollouts, release: releases })
      .from(rollouts)
      .innerJoin(releases, eq(releases.id, rollouts.releaseId))
      .where(inArray(rollouts.state, [...LIVE_STATES]));
    // Machines an operator's retry-failed offers the release again, until they answer.
    const retries = await this.#db
      .select({ rolloutId: rolloutMachines.rolloutId, machineId: rolloutMachines.machineId })
      .from(rolloutMachines)
      .innerJoin(rollouts, eq(rollouts.id, rolloutMachines.rolloutId))
      .where(
        and(
          inArray(rollouts.state, ['active', 'completed']),
          isNotNull(rolloutMachines.retryAt),
          isNull(rolloutMachines.applyOutcome),
        ),
      );
    const retryBy = new Map<string, Set<string>>();
    for (const r of retries) {
      const set = retryBy.get(r.rolloutId) ?? new Set<string>();
      set.add(r.machineId);
      retryBy.set(r.rolloutId, set);
    }
    const windows = new Map<string, MaintenanceWindow>();
    for (const w of await this.#db.select().from(maintenanceWindows)) {
      const parsed = parseMaintenanceWindow(w.spec);
      if (typeof parsed !== 'string') windows.set(w.target, parsed);
    }
    const byTier = new Map<string, RolloutView[]>();
    const all: RolloutView[] = [];
    for (const { rollout, release } of rows) {
      const view = rolloutView(rollout, release, retryBy.get(rollout.id));
      all.push(view);
      const list = byTier.get(view.tier) ?? [];
      list.push(view);
      byTier.set(view.tier, list);
    }
    this.#byTier = byTier;
    this.#all = all;
    this.#windows = windows;
    // An invalidation during the load may have missed a change: leave the cache stale.
    this.#loadedAt = generation === this.#generation ? started : Number.NEGATIVE_INFINITY;
  }
}

/** What polls and explanations need of a rollout and its release. */
export function rolloutView(
  rollout: typeof rollouts.$inferSelect,
  release: typeof releases.$inferSelect,
  retryMachines: ReadonlySet<string> = new Set(),
): RolloutView {
  return {
    retryMachines,
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
