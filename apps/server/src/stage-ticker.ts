import type { Database } from '@clp/db';
import type { Logger } from 'pino';
import type { Clock } from './clock.ts';
import { isDatabaseUnavailable } from './db-errors.ts';
import { advanceRollouts } from './rollout-cache.ts';

/**
 * Moves due rollout stages along every `intervalMs`, so that a stage ends on time even when no
 * machine polls and no operator looks. Every server process runs one: each step is a
 * conditional update (state and stage as read), so a step taken by one process makes the same
 * step of the others change nothing.
 */
export function startStageTicker(
  db: Database,
  clock: Clock,
  log: Logger,
  intervalMs: number,
  onChange: () => void,
): { stop(): Promise<void> } {
  let running: Promise<void> | undefined;
  const tick = () => {
    if (running) return;
    running = advanceRollouts(db, clock)
      .then((changed) => {
        if (changed.length > 0) {
          onChange();
          for (const c of changed)
            log.info({ rollout: c.rolloutId, step: c.transition.kind }, 'rollout moved on');
        }
      })
      .catch((error: unknown) => {
        if (isDatabaseUnavailable(error))
          log.debug({ err: error }, 'stage tick skipped: database unavailable');
        else log.error({ err: error }, 'stage tick failed');
      })
      .finally(() => {
        running = undefined;
      });
  };
  const timer = setInterval(tick, intervalMs);
  timer.unref();
  return {
    async stop() {
      clearInterval(timer);
      await running;
    },
  };
}
