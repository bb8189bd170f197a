import { z } from 'zod';
import { CreateRolloutBody } from './admin-api.ts';

/**
 * Each offered machine's latest outcome for a rollout over time, in equal buckets from its
 * creation: applied or failed when the agent reported it, silent when the rollout counted it so.
 */
export const RolloutTimeline = z.object({
  rolloutId: z.string(),
  from: z.string(),
  to: z.string(),
  bucketSeconds: z.number(),
  maxFailureRate: z.number(),
  minReports: z.number(),
  points: z.array(
    z.object({
      /** Start of the bucket. */
      at: z.string(),
      applied: z.number(),
      failed: z.number(),
      /** Machines counted silent (no outcome within the rollout's silence timeout): failures to the halt rule. */
      silent: z.number(),
      /** Totals up to the end of this bucket; the last point's are the rollout's counters. */
      appliedTotal: z.number(),
      failedTotal: z.number(),
      silentTotal: z.number(),
      /** (failedTotal + silentTotal) / all three, as the halt rule judges it; 0 before any outcome. */
      failureRate: z.number(),
    }),
  ),
});
export type RolloutTimeline = z.infer<typeof RolloutTimeline>;

export const RolloutTimelineQuery = z.object({
  /** How many buckets at most (default 120). */
  buckets: z.coerce.number().int().min(1).max(1000).default(120),
});

/** A rollout as it would be created: the body of POST /v1/rollouts. */
export const RolloutPreviewBody = CreateRolloutBody;

/** How many machines each stage of a rollout would reach now, for the id the preview proposes. */
export const RolloutPreview = z.object({
  /** Create the rollout with this id to reach exactly these machines (a machine's cohort depends on it). */
  rolloutId: z.string(),
  /** Machines of the tier, not revoked. */
  inTier: z.number(),
  /** Of those, the ones the selector and the release's architecture allow. */
  matching: z.number(),
  stages: z.array(z.object({ percent: z.number(), machines: z.number() })),
});
export type RolloutPreview = z.infer<typeof RolloutPreview>;
