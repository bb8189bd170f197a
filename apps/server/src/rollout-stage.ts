import type { RolloutStage, RolloutState } from '@clp/db';
import { readableTime } from '@clp/protocol';

export interface RolloutProgress {
  state: RolloutState;
  stages: RolloutStage[];
  currentStage: number;
  stageStartedAt: Date;
  maxFailureRate: number;
  minReports: number;
  maxFailures?: number | null;
  silenceTimeoutSeconds?: number;
  completionWindowSeconds?: number;
  approvedStage?: number | null;
}

/** Each offered machine's latest outcome, summed; `silent` machines count as failed. */
export interface RolloutOutcomes {
  applied: number;
  failed: number;
  silent?: number;
}

/** Where the machines the current stage reaches stand (rollout-evidence.ts counts them). */
export interface StageEvidence {
  targeted: number;
  answered: number;
  applied: number;
}

export type GateKind = 'time' | 'applied' | 'approval' | 'answers';
export interface Gate {
  kind: GateKind;
  reason: string;
}

export type StageTransition =
  | { kind: 'none' }
  | { kind: 'wait'; gate: Gate }
  | { kind: 'advance'; toStage: number; at: Date }
  | { kind: 'complete'; reason: string; at: Date }
  | { kind: 'halt'; reason: string; at: Date };

/** The default completion window: a fleet that polls daily has answered within a few days. */
export const DEFAULT_COMPLETION_WINDOW_SECONDS = 3 * 86_400;

const failedOf = (o: RolloutOutcomes) => o.failed + (o.silent ?? 0);

/** (failed + silent) / (applied + failed + silent), or 0 before any outcome. */
export function failureRate(outcomes: RolloutOutcomes): number {
  const total = outcomes.applied + failedOf(outcomes);
  return total === 0 ? 0 : failedOf(outcomes) / total;
}

/** "2 of 3 machines", and which of the failures are silences (their own reason). */
function describeFailures(o: RolloutOutcomes, timeoutSeconds: number | undefined): string {
  const failed = failedOf(o);
  const count = `${failed} of ${o.applied + failed} machines`;
  if (!o.silent) return count;
  const timeout = timeoutSeconds === undefined ? '' : ` within ${formatSeconds(timeoutSeconds)} of the offer`;
  return `${count}: ${o.failed} reported failed, ${o.silent} silent, no outcome${timeout}`;
}

export function formatSeconds(seconds: number): string {
  if (seconds % 86_400 === 0) return `${seconds / 86_400} d`;
  if (seconds % 3600 === 0) return `${seconds / 3600} h`;
  if (seconds % 60 === 0) return `${seconds / 60} min`;
  return `${seconds} s`;
}

/** Why the rollout is unhealthy, or undefined while it is healthy. */
export function unhealthyReason(rollout: RolloutProgress, outcomes: RolloutOutcomes): string | undefined {
  const failed = failedOf(outcomes);
  const total = outcomes.applied + failed;
  const what = describeFailures(outcomes, rollout.silenceTimeoutSeconds);
  if (rollout.maxFailures != null && failed >= rollout.maxFailures) {
    return `${failed} failures (${what}) reached the limit of ${rollout.maxFailures} failures`;
  }
  if (total < rollout.minReports || total === 0) return undefined;
  const rate = failureRate(outcomes);
  if (rate >= rollout.maxFailureRate) {
    return `failure rate ${(rate * 100).toFixed(1)} % (${what}) reached the threshold of ${(rollout.maxFailureRate * 100).toFixed(1)} %`;
  }
  return undefined;
}

/** True once the failure rate reached half the threshold (with enough reports): operators are warned. */
export function warrantsWarning(rollout: RolloutProgress, outcomes: RolloutOutcomes): boolean {
  const total = outcomes.applied + failedOf(outcomes);
  if (total < rollout.minReports || total === 0) return false;
  return failureRate(outcomes) >= rollout.maxFailureRate / 2;
}

/** When the current stage may end (its start plus its minimum duration). */
export function stageEndsAt(rollout: RolloutProgress): Date {
  const stage = rollout.stages[rollout.currentStage];
  return new Date(rollout.stageStartedAt.getTime() + (stage?.minDurationSeconds ?? 0) * 1000);
}

export function isLastStage(rollout: Pick<RolloutProgress, 'stages' | 'currentStage'>): boolean {
  return rollout.currentStage >= rollout.stages.length - 1;
}

/** When the last stage completes at the latest, whoever has answered. */
export function completesBy(rollout: RolloutProgress): Date {
  const window = (rollout.completionWindowSeconds ?? DEFAULT_COMPLETION_WINDOW_SECONDS) * 1000;
  return new Date(Math.max(stageEndsAt(rollout).getTime(), rollout.stageStartedAt.getTime() + window));
}

/** True when leaving the current stage depends on who has reported (so evidence must be counted). */
export function needsEvidence(rollout: RolloutProgress): boolean {
  const stage = rollout.stages[rollout.currentStage];
  if (isLastStage(rollout)) return true;
  return stage?.minAppliedPercent !== undefined || stage?.minAppliedCount !== undefined;
}

/**
 * What the current stage of an active rollout waits on at `now`, or undefined when it may end.
 * Time first, then evidence of `applied` reports, then an operator's approval; the last stage
 * waits instead for every targeted machine to answer, or for its completion window to pass.
 */
export function stageGate(
  rollout: RolloutProgress,
  evidence: StageEvidence | undefined,
  now: Date,
): Gate | undefined {
  const ends = stageEndsAt(rollout);
  if (now.getTime() < ends.getTime())
    return { kind: 'time', reason: `the stage lasts at least until ${readableTime(ends)}` };
  const stage = rollout.stages[rollout.currentStage];
  if (isLastStage(rollout)) {
    const by = completesBy(rollout);
    if (now.getTime() >= by.getTime()) return undefined;
    if (evidence && evidence.answered >= evidence.targeted) return undefined;
    const missing = evidence ? evidence.targeted - evidence.answered : undefined;
    return {
      kind: 'answers',
      reason: `${missing ?? 'some'} of ${evidence?.targeted ?? 'the'} targeted machines have not answered yet; the rollout completes when all have, or at ${readableTime(by)}`,
    };
  }
  if (stage?.minAppliedCount !== undefined || stage?.minAppliedPercent !== undefined) {
    if (!evidence) return { kind: 'applied', reason: 'the applied reports of the stage are being counted' };
    const needed = Math.max(
      stage.minAppliedCount ?? 0,
      stage.minAppliedPercent === undefined
        ? 0
        : Math.ceil((evidence.targeted * stage.minAppliedPercent) / 100),
    );
    if (evidence.applied < needed) {
      return {
        kind: 'applied',
        reason: `${evidence.applied} of the stage's ${evidence.targeted} machines reported applied; the stage needs ${needed}${stage.minAppliedPercent !== undefined ? ` (${stage.minAppliedPercent} %)` : ''}`,
      };
    }
  }
  if (stage?.requireApproval && rollout.approvedStage !== rollout.currentStage) {
    return {
      kind: 'approval',
      reason: `stage ${rollout.currentStage + 1} waits for an operator's approval (clpctl admin rollout approve)`,
    };
  }
  return undefined;
}

/**
 * The next step of a rollout at time `now`. Active and completed rollouts (both offer the release)
 * halt when unhealthy, checked first so that an unhealthy rollout never grows and a completed one
 * keeps its protection. An active one then advances one stage once the stage's gates are passed,
 * or completes after the last stage once every targeted machine answered (or its completion window
 * passed). One stage per call: each stage gets its own observation window even if nobody looked.
 */
export function nextTransition(
  rollout: RolloutProgress,
  outcomes: RolloutOutcomes,
  now: Date,
  evidence?: StageEvidence,
): StageTransition {
  if (rollout.state !== 'active' && rollout.state !== 'completed') return { kind: 'none' };
  const reason = unhealthyReason(rollout, outcomes);
  if (reason) return { kind: 'halt', reason, at: now };
  if (rollout.state !== 'active') return { kind: 'none' };
  const gate = stageGate(rollout, evidence, now);
  if (gate) return gate.kind === 'time' ? { kind: 'none' } : { kind: 'wait', gate };
  const next = rollout.currentStage + 1;
  if (next < rollout.stages.length) return { kind: 'advance', toStage: next, at: now };
  const all = evidence && evidence.answered >= evidence.targeted;
  return {
    kind: 'complete',
    reason: all
      ? `all ${evidence.targeted} targeted machines answered`
      : `the completion window passed with ${evidence ? evidence.targeted - evidence.answered : 'some'} machines not answered`,
    at: now,
  };
}

/** The share of matching machines (percent) that a rollout offers its release to now. */
export function offeredPercent(rollout: Pick<RolloutProgress, 'state' | 'stages' | 'currentStage'>): number {
  if (rollout.state !== 'active' && rollout.state !== 'completed') return 0;
  return rollout.stages[rollout.currentStage]?.percent ?? 0;
}
