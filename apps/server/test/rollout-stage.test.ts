import { describe, expect, it } from 'vitest';
import { nextTransition, offeredPercent, type RolloutProgress, warrantsWarning } from '../src/index.ts';

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

  it('completes after the last stage once every targeted machine answered', () => {
    const last = rollout({ currentStage: 2 });
    expect(
      nextTransition(last, { applied: 5, failed: 0 }, at(1), { targeted: 5, answered: 5, applied: 5 }).kind,
    ).toBe('complete');
  });

  it('stays active in the last stage while targeted machines have not answered, until its completion window', () => {
    const last = rollout({ currentStage: 2, completionWindowSeconds: 86_400 });
    const evidence = { targeted: 10, answered: 4, applied: 4 };
    const waiting = nextTransition(last, { applied: 4, failed: 0 }, at(3600), evidence);
    expect(waiting).toMatchObject({ kind: 'wait', gate: { kind: 'answers' } });
    // A time in a sentence reads as the console writes it, not as raw ISO.
    expect(waiting.kind === 'wait' && waiting.gate?.reason).toMatch(
      /6 of 10 targeted machines have not answered yet; the rollout completes when all have, or at \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC$/,
    );
    expect(nextTransition(last, { applied: 4, failed: 0 }, at(86_400), evidence)).toMatchObject({
      kind: 'complete',
      reason: expect.stringMatching(/completion window passed with 6 machines not answered/),
    });
  });

  it('keeps judging the threshold of a completed rollout, which still offers its release', () => {
    const done = rollout({ state: 'completed', currentStage: 2 });
    expect(nextTransition(done, { applied: 9, failed: 0 }, at(99_999)).kind).toBe('none');
    expect(nextTransition(done, { applied: 9, failed: 2 }, at(99_999)).kind).toBe('halt');
  });

  it('counts silent machines as failed, naming them in the reason', () => {
    const t = nextTransition(
      rollout({ silenceTimeoutSeconds: 172_800 }),
      { applied: 8, failed: 0, silent: 2 },
      at(10),
    );
    expect(t).toMatchObject({
      kind: 'halt',
      reason: expect.stringMatching(/0 reported failed, 2 silent, no outcome within 2 d/),
    });
  });

  it('halts on a count of failures whatever the rate and the minimum of reports', () => {
    const small = rollout({ maxFailures: 2, minReports: 100 });
    expect(nextTransition(small, { applied: 50, failed: 1 }, at(10)).kind).toBe('none');
    expect(nextTransition(small, { applied: 50, failed: 2 }, at(10))).toMatchObject({
      kind: 'halt',
      reason: expect.stringMatching(/limit of 2 failures/),
    });
  });

  it('leaves a stage only once enough of its cohort reported applied', () => {
    const gated = rollout({
      stages: [
        { percent: 10, minDurationSeconds: 60, minAppliedPercent: 50, minAppliedCount: 3 },
        { percent: 100, minDurationSeconds: 0 },
      ],
    });
    const few = nextTransition(gated, { applied: 2, failed: 0 }, at(60), {
      targeted: 4,
      answered: 2,
      applied: 2,
    });
    expect(few).toMatchObject({
      kind: 'wait',
      gate: { kind: 'applied', reason: expect.stringMatching(/needs 3/) },
    });
    const half = nextTransition(gated, { applied: 3, failed: 0 }, at(60), {
      targeted: 8,
      answered: 3,
      applied: 3,
    });
    expect(half).toMatchObject({
      kind: 'wait',
      gate: { kind: 'applied', reason: expect.stringMatching(/needs 4 \(50 %\)/) },
    });
    expect(
      nextTransition(gated, { applied: 4, failed: 0 }, at(60), { targeted: 8, answered: 4, applied: 4 }).kind,
    ).toBe('advance');
  });

  it('waits for an approval where the stage asks for one, and advances once approved', () => {
    const stages = [
      { percent: 10, minDurationSeconds: 60, requireApproval: true },
      { percent: 100, minDurationSeconds: 0 },
    ];
    expect(nextTransition(rollout({ stages }), { applied: 1, failed: 0 }, at(30)).kind).toBe('none');
    expect(nextTransition(rollout({ stages }), { applied: 1, failed: 0 }, at(60))).toMatchObject({
      kind: 'wait',
      gate: { kind: 'approval' },
    });
    expect(
      nextTransition(rollout({ stages, approvedStage: 0 }), { applied: 1, failed: 0 }, at(60)).kind,
    ).toBe('advance');
  });

  it('warns at half the failure threshold, once enough machines reported', () => {
    expect(warrantsWarning(rollout(), { applied: 19, failed: 1 })).toBe(true);
    expect(warrantsWarning(rollout(), { applied: 38, failed: 1 })).toBe(false);
    expect(warrantsWarning(rollout(), { applied: 0, failed: 5 })).toBe(false);
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

  it('leaves paused, halted, aborted and reverted rollouts alone', () => {
    for (const state of ['paused', 'halted', 'aborted', 'reverted'] as const) {
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
