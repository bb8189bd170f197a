import { z } from 'zod';
import { RolloutProgressView } from './admin-api.ts';

/** The fleet at a glance: counted by the database, never by loading the fleet. */
export const Overview = z.object({
  serverTime: z.string(),
  machines: z.object({
    /** Enrolled and not revoked. */
    enrolled: z.number(),
    seenLastDay: z.number(),
    /** Enrolled, not revoked, last seen more than 7 days ago or never. */
    notSeenForWeek: z.number(),
    revoked: z.number(),
  }),
  /** Machines per installed patch, most installed first (at most 20). */
  installed: z.array(
    z.object({ name: z.string(), sha256: z.string(), installed: z.number(), failed: z.number() }),
  ),
  /** Rollouts that are active, paused or halted, newest first (at most 20). */
  rollouts: z.array(RolloutProgressView),
  /** The latest failed reports, newest first (at most 10). */
  recentFailures: z.array(
    z.object({
      reportId: z.string(),
      machineId: z.string(),
      hostname: z.string().nullable(),
      name: z.string(),
      rolloutId: z.string().nullable(),
      errorCode: z.string().nullable(),
      status: z.string(),
      at: z.string(),
      receivedAt: z.string(),
    }),
  ),
});
export type Overview = z.infer<typeof Overview>;
