import schedule, { type Job } from 'node-schedule';
import { loadConfig, requireEnrolled, underRoot } from './config.ts';
import type { PatchEngine } from './engine-port.ts';
import { AgentHttpClient } from './http-client.ts';
import { transportFor } from './server-transport.ts';
import { ReportSpool } from './spool.ts';
import { runUpdate, type UpdateResult } from './update.ts';

export interface DaemonOptions {
  root: string;
  engine: PatchEngine;
  log: (line: string) => void;
  /** Source of the random delay; tests pass a fixed one. */
  random?: () => number;
  /** Called after each scheduled update (tests wait on it). */
  onUpdate?: (result: UpdateResult | Error) => void;
}

/**
 * `clpctl daemon`: runs an update at each time the cron schedule names (default daily at 12:00
 * local time), each after a random delay within the configured window so that a fleet does not
 * call the server in the same second. When a release waits for the machine's maintenance window,
 * it also runs once when that window opens. Sends left-over reports when it starts. stop() lets a
 * running update finish the release it is applying (a transaction is never cut) and cancels
 * everything else.
 */
export class UpdateDaemon {
  readonly #options: DaemonOptions;
  #job: Job | null = null;
  /** A one-off run when a release waits for the machine's maintenance window. */
  #windowJob: Job | null = null;
  #delay: { timer: NodeJS.Timeout; resolve: () => void } | null = null;
  #running: Promise<void> | null = null;
  #stopped = false;
  readonly #abort = new AbortController();

  constructor(options: DaemonOptions) {
    this.#options = options;
  }

  /** Flushes the spool, then schedules; returns the first planned run (before its random delay). */
  async start(): Promise<Date | null> {
    const { root, log } = this.#options;
    const config = requireEnrolled(root, await loadConfig(root));
    const client = new AgentHttpClient({
      servers: config.servers,
      credential: config.credential,
      http: config.http,
      log,
      transport: transportFor(root, config),
    });
    const flushed = await new ReportSpool(root, underRoot(root, config.spoolDir)).flush(client);
    if (flushed.accepted + flushed.duplicates > 0)
      log(`sent ${flushed.accepted + flushed.duplicates} spooled report(s)`);
    if (flushed.error) log(`${flushed.left} report(s) stay spooled: ${flushed.error.message}`);
    if (this.#stopped) return null;
    this.#job = schedule.scheduleJob(config.schedule.cron, () => this.#slot(false));
    if (!this.#job) throw new Error(`node-schedule refused the schedule "${config.schedule.cron}"`);
    const next = this.nextRun();
    log(
      `daemon started: schedule "${config.schedule.cron}" (local time) + up to ${config.schedule.randomDelayMinutes} min; next ${next?.toISOString() ?? 'never'}`,
    );
    return next;
  }

  #slot(window: boolean): void {
    if (this.#running) {
      this.#options.log('the previous update is still running; this slot is skipped');
      return;
    }
    this.#running = this.#runOnce(window).finally(() => {
      this.#running = null;
    });
  }

  /** When a release waits for the window, wakes at its opening (the schedule may not fall inside it). */
  #wakeForWindow(result: UpdateResult): void {
    const opens = result.actions
      .map((a) => (a.outcome === 'scheduled' && a.opensAt ? Date.parse(a.opensAt) : Number.NaN))
      .filter((t) => Number.isFinite(t))
      .sort((a, b) => a - b)[0];
    if (opens === undefined || this.#stopped) return;
    const planned = this.#windowJob?.nextInvocation()?.getTime();
    if (planned !== undefined && planned <= opens) return;
    this.#windowJob?.cancel();
    this.#windowJob = schedule.scheduleJob(new Date(Math.max(opens, Date.now() + 1000)), () => {
      this.#windowJob = null;
      this.#slot(true);
    });
    this.#options.log(
      `a release waits for the maintenance window: next check at ${new Date(opens).toISOString()}`,
    );
  }

  /** The planned wake-up for a maintenance window, if any. */
  windowRun(): Date | null {
    const next = this.#windowJob?.nextInvocation();
    return next ? new Date(next.getTime()) : null;
  }

  nextRun(): Date | null {
    const next = this.#job?.nextInvocation();
    return next ? new Date(next.getTime()) : null;
  }

  async #runOnce(inWindow: boolean): Promise<void> {
    const { root, engine, log } = this.#options;
    try {
      // Read again each time, so 'clpctl config set' takes effect without a restart.
      const config = await loadConfig(root);
      // A maintenance window may be short: its run spreads the fleet over ten minutes at most.
      const windowMs =
        Math.min(config.schedule.randomDelayMinutes, inWindow ? 10 : Number.POSITIVE_INFINITY) * 60_000;
      const delayMs = Math.floor((this.#options.random ?? Math.random)() * windowMs);
      if (delayMs > 0) {
        log(`update in ${Math.round(delayMs / 1000)} s (random delay)`);
        await new Promise<void>((resolve) => {
          this.#delay = { timer: setTimeout(resolve, delayMs), resolve };
        });
        this.#delay = null;
      }
      if (this.#stopped) return;
      const result = await runUpdate({ root, engine, log, signal: this.#abort.signal });
      const counts = result.actions.map((a) => `${a.name} ${a.outcome}`).join(', ') || 'nothing to do';
      log(
        `update done (exit ${result.exitCode}): ${counts}${result.error ? `; ${result.error.message}` : ''}`,
      );
      this.#wakeForWindow(result);
      this.#options.onUpdate?.(result);
    } catch (error) {
      log(`update failed: ${error instanceof Error ? error.message : String(error)}`);
      this.#options.onUpdate?.(error instanceof Error ? error : new Error(String(error)));
    }
  }

  /** Cancels the schedule and a pending random delay; waits for a running update to finish. */
  async stop(): Promise<void> {
    this.#stopped = true;
    this.#abort.abort();
    this.#job?.cancel();
    this.#job = null;
    this.#windowJob?.cancel();
    this.#windowJob = null;
    if (this.#delay) {
      clearTimeout(this.#delay.timer);
      this.#delay.resolve();
    }
    await this.#running;
  }
}
