import { describe, expect, it } from 'vitest';
import { nextTransition, offeredPercent, type RolloutProgress } from '../src/index.ts';

const t0 = new Date('2026-01-01T00:00:00Z');
const at = (s: number) => new Date(t0.getTime() + s * 1000);
const rollout = (over: Partial<RolloutProgress> = {}): RolloutProgress => ({
  state: 'active',
  stages: [
    { percent: 10, minDurationSeconds: 3600 },
    { percent: 50, minDurationSeconds: 3600 },
    { percent: 100, minDurationSeconds: 0 },
  ],
  currentStage: 0,
  stageStartedAt: t0,
  maxFailureRate: 0.1,
  minReports: 10,
  ...over,
});

describe('rollout stages', () => {
  it('stays in a stage until its minimum time has passed', () => {
    expect(nextTransition(rollout(), { applied: 5, failed: 0 }, at(3599)).kind).toBe('none');
    expect(nextTransition(rollout(), { applied: 5, failed: 0 }, at(3600))).toEqual({
      kind: 'advance',
      toStage: 1,
      at: at(3600),
    });
  });

  it('completes after the last stage', () => {
    expect(nextTransition(rollout({ currentStage: 2 }), { applied: 5, failed: 0 }, at(1)).kind).toBe(
      'complete',
    );
  });

  it('halts when failures reach the threshold with enough reports', () => {
    const t = nextTransition(rollout(), { applied: 9, failed: 1 }, at(10));
    expect(t.kind).toBe('halt');
  });

  it('does not halt before the minimum number of reports', () => {
    expect(nextTransition(rollout(), { applied: 0, failed: 9 }, at(10)).kind).toBe('none');
  });

  it('halts instead of advancing when the time is up but the rollout is unhealthy', () => {
    expect(nextTransition(rollout(), { applied: 5, failed: 5 }, at(7200)).kind).toBe('halt');
  });

  it('leaves paused, halted and finished rollouts alone', () => {
    for (const state of ['paused', 'halted', 'aborted', 'completed', 'reverted'] as const) {
      expect(nextTransition(rollout({ state }), { applied: 0, failed: 100 }, at(99_999)).kind).toBe('none');
    }
  });

  it('offers nothing while paused or halted and the stage percent while active', () => {
    expect(offeredPercent(rollout())).toBe(10);
    expect(offeredPercent(rollout({ state: 'paused' }))).toBe(0);
    expect(offeredPercent(rollout({ state: 'halted' }))).toBe(0);
    expect(offeredPercent(rollout({ state: 'completed', currentStage: 2 }))).toBe(100);
  });
});
