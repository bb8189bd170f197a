import { createHash } from 'node:crypto';

/** Buckets per rollout: a stage of p % holds buckets below p × 100. */
export const BUCKETS = 10_000;

/**
 * A machine's stable place in one rollout: a bucket 0..9999 from the hash of (machine, rollout).
 * Different rollouts shuffle the fleet differently, so the same machines are not always first.
 */
export function cohortBucket(machineId: string, rolloutId: string): number {
  const digest = createHash('sha256').update(`${rolloutId}\u0000${machineId}`, 'utf8').digest();
  return digest.readUInt32BE(0) % BUCKETS;
}

/** True when the bucket falls inside a stage of `percent` %; growing the percent never removes a bucket. */
export function inStage(bucket: number, percent: number): boolean {
  return bucket < Math.round(percent * 100);
}
