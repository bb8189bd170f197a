import type { RolloutSelector, RolloutStage, RolloutState } from '@clp/db';
import { comparePatchNames } from '@clp/format';
import type { InstalledPatch, MaintenanceWindow, ReleaseToApply, ReleaseToRevert } from '@clp/protocol';
import { cohortBucket, inStage } from './cohort.ts';
import { offeredPercent } from './rollout-stage.ts';

/** What the poll needs of a machine. */
export interface PollMachine {
  id: string;
  tier: string;
  tags: readonly string[];
  arch: string;
  osId: string;
}

/** A rollout joined with its release, as cached in memory for polls. */
export interface RolloutView {
  id: string;
  tier: string;
  state: RolloutState;
  selector: RolloutSelector;
  stages: RolloutStage[];
  currentStage: number;
  /** Machines that an operator's retry-failed offers the release again, although it failed there. */
  retryMachines: ReadonlySet<string>;
  release: {
    id: string;
    name: string;
    series: string;
    sha256: string;
    size: number;
    arch: string;
    uploadedAt: Date;
    yanked: boolean;
  };
}

export type DecisionOutcome = 'apply' | 'revert' | 'none';

export interface Decision {
  rolloutId: string;
  releaseId: string;
  outcome: DecisionOutcome;
  /** A stable word for the rule that decided (tier, selector-tags, cohort, …). */
  rule: string;
  /** A sentence for people. */
  reason: string;
  bucket?: number;
  percent?: number;
}

function selectorMiss(selector: RolloutSelector, machine: PollMachine): string | undefined {
  if (selector.tags && selector.tags.length > 0) {
    const missing = selector.tags.filter((t) => !machine.tags.includes(t));
    if (missing.length > 0) return `machine lacks the tag(s) ${missing.join(', ')} that the rollout selects`;
  }
  if (selector.arch && selector.arch.length > 0 && !selector.arch.includes(machine.arch)) {
    return `machine architecture ${machine.arch} is not in the selector (${selector.arch.join(', ')})`;
  }
  if (selector.os && selector.os.length > 0 && !selector.os.includes(machine.osId)) {
    return `machine OS ${machine.osId} is not in the selector (${selector.os.join(', ')})`;
  }
  return undefined;
}

/**
 * True when the rollout's current stage has reached the machine: its tier, selector, architecture
 * and cohort, whatever the rollout's state now. A machine reached was offered the release, or is
 * being offered it (its poll's offer may still be on its way to the database), so its reports
 * count for the rollout.
 */
export function reaches(
  rollout: Pick<RolloutView, 'id' | 'tier' | 'selector' | 'stages' | 'currentStage'> & {
    release: Pick<RolloutView['release'], 'arch'>;
  },
  machine: PollMachine,
): boolean {
  if (rollout.tier !== machine.tier || selectorMiss(rollout.selector, machine) !== undefined) return false;
  if (rollout.release.arch !== 'any' && rollout.release.arch !== machine.arch) return false;
  return inStage(cohortBucket(machine.id, rollout.id), rollout.stages[rollout.currentStage]?.percent ?? 0);
}

/** How one rollout treats one machine, with the rule that decided. Pure: no I/O, no clock. */
export function decide(
  machine: PollMachine,
  installed: readonly InstalledPatch[],
  rollout: RolloutView,
): Decision {
  const base = { rolloutId: rollout.id, releaseId: rollout.release.id };
  const has = installed.find((p) => p.sha256 === rollout.release.sha256);
  if (rollout.tier !== machine.tier) {
    return {
      ...base,
      outcome: 'none',
      rule: 'tier',
      reason: `rollout targets tier ${rollout.tier}; machine is in ${machine.tier}`,
    };
  }
  const miss = selectorMiss(rollout.selector, machine);
  if (miss) return { ...base, outcome: 'none', rule: 'selector', reason: miss };
  if (rollout.release.arch !== 'any' && rollout.release.arch !== machine.arch) {
    return {
      ...base,
      outcome: 'none',
      rule: 'architecture',
      reason: `release is for ${rollout.release.arch}; machine is ${machine.arch}`,
    };
  }
  if (rollout.state === 'reverted') {
    if (has?.state === 'installed') {
      return {
        ...base,
        outcome: 'revert',
        rule: 'reverted',
        reason: 'rollout was reverted and the machine reports the release installed',
      };
    }
    return {
      ...base,
      outcome: 'none',
      rule: 'reverted',
      reason: 'rollout was reverted; the release is not installed here',
    };
  }
  if (rollout.release.yanked)
    return { ...base, outcome: 'none', rule: 'yanked', reason: 'release was yanked' };
  if (rollout.state !== 'active' && rollout.state !== 'completed') {
    return {
      ...base,
      outcome: 'none',
      rule: rollout.state,
      reason: `rollout is ${rollout.state}: it offers nothing`,
    };
  }
  const bucket = cohortBucket(machine.id, rollout.id);
  const percent = offeredPercent(rollout);
  if (!inStage(bucket, percent)) {
    return {
      ...base,
      outcome: 'none',
      rule: 'cohort',
      reason: `machine is in bucket ${bucket} of 10000; stage ${rollout.currentStage + 1} of ${rollout.stages.length} covers ${percent} % (buckets below ${Math.round(percent * 100)})`,
      bucket,
      percent,
    };
  }
  if (has?.state === 'installed') {
    return {
      ...base,
      outcome: 'none',
      rule: 'installed',
      reason: 'release is already installed',
      bucket,
      percent,
    };
  }
  if (has?.state === 'failed' && rollout.retryMachines.has(machine.id)) {
    return {
      ...base,
      outcome: 'apply',
      rule: 'retry',
      reason: `release failed here before; an operator asked to retry it (stage ${rollout.currentStage + 1}, ${percent} %)`,
      bucket,
      percent,
    };
  }
  if (has?.state === 'failed') {
    return {
      ...base,
      outcome: 'none',
      rule: 'failed-here',
      reason: 'release failed its health check on this machine; it is not offered again',
      bucket,
      percent,
    };
  }
  return {
    ...base,
    outcome: 'apply',
    rule: 'cohort',
    reason: `machine is in bucket ${bucket}, inside stage ${rollout.currentStage + 1} (${percent} %)`,
    bucket,
    percent,
  };
}

/** Newer-than for two release names of one series; names were checked at upload, but stay safe. */
function isNewer(a: string, b: string): boolean {
  try {
    return comparePatchNames(a, b) > 0;
  } catch {
    return a > b;
  }
}

/** The desired state of one machine: releases to apply (newest per series) and to revert. */
export function desiredState(
  machine: PollMachine,
  installed: readonly InstalledPatch[],
  rollouts: readonly RolloutView[],
): { apply: ReleaseToApply[]; revert: ReleaseToRevert[] } {
  const bySeries = new Map<string, ReleaseToApply>();
  const revert: ReleaseToRevert[] = [];
  for (const rollout of rollouts) {
    const decision = decide(machine, installed, rollout);
    const r = rollout.release;
    if (decision.outcome === 'revert') {
      revert.push({ releaseId: r.id, rolloutId: rollout.id, name: r.name, sha256: r.sha256 });
    } else if (decision.outcome === 'apply') {
      const offer: ReleaseToApply = {
        releaseId: r.id,
        rolloutId: rollout.id,
        name: r.name,
        series: r.series,
        sha256: r.sha256,
        size: r.size,
        releasedAt: r.uploadedAt.toISOString(),
        url: `/v1/blobs/${r.sha256}`,
        ...(rollout.retryMachines.has(machine.id) ? { retry: true } : {}),
      };
      const current = bySeries.get(r.series);
      if (!current || isNewer(r.name, current.name)) bySeries.set(r.series, offer);
    }
  }
  return { apply: [...bySeries.values()], revert };
}

/**
 * The maintenance window a machine applies in: a window set for one of its tags wins over its
 * tier's (the first such tag by name), so that a tag can carve machines out of a tier's window.
 */
export function windowFor(
  machine: Pick<PollMachine, 'tier' | 'tags'>,
  windows: ReadonlyMap<string, MaintenanceWindow>,
): MaintenanceWindow | undefined {
  for (const tag of [...machine.tags].sort()) {
    const w = windows.get(`tag:${tag}`);
    if (w) return w;
  }
  return windows.get(`tier:${machine.tier}`);
}
