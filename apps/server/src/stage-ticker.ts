import type { Logger } from 'pino';
import { isDatabaseUnavailable } from './db-errors.ts';
import type { JudgedChange } from './rollout-judge.ts';

/**
 * Judges the offering rollouts every `intervalMs` (stages, completion, halts, silent machines), so
 * that a stage ends on time and a silent fleet is noticed even when no machine polls and no
 * operator looks. Every server process runs one: each step is a
 * conditional update (state and stage as read), so a step taken by one process makes the same
 * step of the others change nothing.
 */
export function startStageTicker(
  judge: () => Promise<JudgedChange[]>,
  log: Logger,
  intervalMs: number,
  onChange: () => void,
): { stop(): Promise<void> } {
  let running: Promise<void> | undefined;
  const tick = () => {
    if (running) return;
    running = judge()
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
