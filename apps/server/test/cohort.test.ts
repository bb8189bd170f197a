import { describe, expect, it } from 'vitest';
import { BUCKETS, cohortBucket, inStage } from '../src/index.ts';

describe('cohort', () => {
  it('gives a machine the same bucket every time for one rollout', () => {
    expect(cohortBucket('machine-1', 'rollout-1')).toBe(cohortBucket('machine-1', 'rollout-1'));
  });

  it('places machines in buckets 0..9999 spread evenly', () => {
    const counts = new Array(10).fill(0);
    for (let i = 0; i < 20_000; i++) {
      const b = cohortBucket(`m-${i}`, 'r');
      expect(b).toBeGreaterThanOrEqual(0);
      expect(b).toBeLessThan(BUCKETS);
      counts[Math.floor(b / 1000)]++;
    }
    for (const c of counts) expect(c).toBeGreaterThan(1700);
  });

  it('never moves a machine out when a stage grows', () => {
    const percents = [1, 5, 10, 25, 50, 100];
    for (let i = 0; i < 5000; i++) {
      const b = cohortBucket(`m-${i}`, 'rollout-x');
      let wasIn = false;
      for (const p of percents) {
        const now = inStage(b, p);
        if (wasIn) expect(now).toBe(true);
        wasIn = now;
      }
      expect(inStage(b, 100)).toBe(true);
    }
  });

  it('shuffles the fleet differently for different rollouts', () => {
    let same = 0;
    for (let i = 0; i < 1000; i++)
      if (inStage(cohortBucket(`m-${i}`, 'a'), 10) === inStage(cohortBucket(`m-${i}`, 'b'), 10)) same++;
    // Independent 10 % samples agree on about 82 % of machines; identical ones on 100 %.
    expect(same).toBeLessThan(900);
  });

  it('puts about p % of machines in a p % stage', () => {
    let inside = 0;
    for (let i = 0; i < 20_000; i++) if (inStage(cohortBucket(`m-${i}`, 'r2'), 10)) inside++;
    expect(inside / 20_000).toBeGreaterThan(0.09);
    expect(inside / 20_000).toBeLessThan(0.11);
  });
});
