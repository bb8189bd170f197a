import { type Database, type InstalledPatchRecord, machines } from '@clp/db';
import { sql } from 'drizzle-orm';
import type { Logger } from 'pino';

interface Seen {
  at: Date;
  installed: InstalledPatchRecord[];
  facts: Record<string, unknown>;
}

/**
 * What polls learn about machines (last seen, installed patches, facts: hostname, OS, architecture, agent version), written in batches:
 * one UPDATE per flush instead of one per poll, which is what lets polls scale (GOALS P5).
 * A crash loses at most one flush interval of "last seen" times, which the next poll restores.
 */
export class MachineSeen {
  readonly #db: Database;
  readonly #log: Logger;
  #pending = new Map<string, Seen>();
  #timer: NodeJS.Timeout | undefined;
  #flushing: Promise<void> = Promise.resolve();

  constructor(db: Database, log: Logger, intervalMs = 1000) {
    this.#db = db;
    this.#log = log;
    this.#timer = setInterval(() => void this.flush(), intervalMs);
    this.#timer.unref();
  }

  record(machineId: string, seen: Seen): void {
    this.#pending.set(machineId, seen);
  }

  /** Writes everything recorded so far. */
  async flush(): Promise<void> {
    const run = this.#flushing.then(() => this.#write());
    this.#flushing = run.catch(() => undefined);
    return run;
  }

  async #write(): Promise<void> {
    if (this.#pending.size === 0) return;
    const batch = [...this.#pending];
    this.#pending = new Map();
    for (let i = 0; i < batch.length; i += 500) {
      const part = batch.slice(i, i + 500);
      const values = sql.join(
        part.map(
          ([id, s]) =>
            sql`(${id}, ${s.at.toISOString()}::timestamptz, ${JSON.stringify(s.installed)}::jsonb, ${JSON.stringify(s.facts)}::jsonb)`,
        ),
        sql`, `,
      );
      try {
        await this.#db.execute(
          sql`update ${machines} as m set last_seen_at = v.seen, installed = v.installed, facts = v.facts,
                hostname = v.facts->>'hostname', arch = v.facts->>'arch',
                os_id = v.facts->'os'->>'id', os_version = coalesce(v.facts->'os'->>'version', '')
              from (values ${values}) as v(id, seen, installed, facts) where m.id = v.id`,
        );
      } catch (error) {
        // Put the batch back unless newer data arrived meanwhile; the next flush retries.
        for (const [id, s] of part) if (!this.#pending.has(id)) this.#pending.set(id, s);
        this.#log.warn({ err: error, machines: part.length }, 'could not record machine polls; will retry');
      }
    }
  }

  async close(): Promise<void> {
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = undefined;
    await this.flush();
  }
}
