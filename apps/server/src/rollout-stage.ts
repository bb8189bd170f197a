import type { RolloutStage, RolloutState } from '@clp/db';

export interface RolloutProgress {
  state: RolloutState;
  stages: RolloutStage[];
  currentStage: number;
  stageStartedAt: Date;
  maxFailureRate: number;
  minReports: number;
}

export interface RolloutOutcomes {
  applied: number;
  failed: number;
}

export type StageTransition =
  | { kind: 'none' }
  | { kind: 'advance'; toStage: number; at: Date }
  | { kind: 'complete'; at: Date }
  | { kind: 'halt'; reason: string; at: Date };

/** failed / (applied + failed), or 0 before any outcome. */
export function failureRate(outcomes: RolloutOutcomes): number {
  const total = outcomes.applied + outcomes.failed;
  return total === 0 ? 0 : outcomes.failed / total;
}

/** Why the rollout is unhealthy, or undefined while it is healthy. */
export function unhealthyReason(rollout: RolloutProgress, outcomes: RolloutOutcomes): string | undefined {
  const total = outcomes.applied + outcomes.failed;
  if (total < rollout.minReports || total === 0) return undefined;
  const rate = failureRate(outcomes);
  if (rate >= rollout.maxFailureRate) {
    return `failure rate ${(rate * 100).toFixed(1)} % (${outcomes.failed} of ${total} reports) reached the threshold of ${(rollout.maxFailureRate * 100).toFixed(1)} %`;
  }
  return undefined;
}

/** When the current stage may end (its start plus its minimum duration). */
export function stageEndsAt(rollout: RolloutProgress): Date {
  const stage = rollout.stages[rollout.currentStage];
  return new Date(rollout.stageStartedAt.getTime() + (stage?.minDurationSeconds ?? 0) * 1000);
}

/**
 * The next step of an active rollout at time `now`: halt when unhealthy (checked first, so an
 * unhealthy rollout never grows), else advance one stage once the current one has lasted its
 * minimum time, else complete after the last stage. One stage per call: each stage gets its own
 * observation window even if nobody looked for a while.
 */
export function nextTransition(
  rollout: RolloutProgress,
  outcomes: RolloutOutcomes,
  now: Date,
): StageTransition {
  if (rollout.state !== 'active') return { kind: 'none' };
  const reason = unhealthyReason(rollout, outcomes);
  if (reason) return { kind: 'halt', reason, at: now };
  if (now.getTime() < stageEndsAt(rollout).getTime()) return { kind: 'none' };
  const next = rollout.currentStage + 1;
  if (next < rollout.stages.length) return { kind: 'advance', toStage: next, at: now };
  return { kind: 'complete', at: now };
}

/** The share of matching machines (percent) that a rollout offers its release to now. */
export function offeredPercent(rollout: Pick<RolloutProgress, 'state' | 'stages' | 'currentStage'>): number {
  if (rollout.state !== 'active' && rollout.state !== 'completed') return 0;
  return rollout.stages[rollout.currentStage]?.percent ?? 0;
}
