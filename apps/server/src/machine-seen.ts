import { type Database, type InstalledPatchRecord, machines } from '@clp/db';
import { sql } from 'drizzle-orm';
import type { Logger } from 'pino';
import { isTransient } from './db-errors.ts';
import { rowsOf } from './sql-rows.ts';

interface Seen {
  at: Date;
  installed: InstalledPatchRecord[];
  facts: Record<string, unknown>;
}

const LAST_SEEN_PRECISION_MS = 60_000;

/** Machines remembered as written; past this the memory starts afresh (costing one write each). */
const MAX_REMEMBERED = 500_000;

/**
 * What polls learn about machines (last seen, installed patches, facts: hostname, OS, architecture, agent version), written in batches:
 * one UPDATE per flush instead of one per poll, which is what lets polls scale (bar P5).
 * A crash loses at most one flush interval of "last seen" times, which the next poll restores.
 */
export class MachineSeen {
  readonly #db: Database;
  readonly #log: Logger;
  #pending = new Map<string, Seen & { state: string }>();
  readonly #written = new Map<string, { at: number; state: string }>();
  #timer: NodeJS.Timeout | undefined;
  #flushing: Promise<void> = Promise.resolve();

  constructor(db: Database, log: Logger, intervalMs = 1000) {
    this.#db = db;
    this.#log = log;
    this.#timer = setInterval(() => void this.flush(), intervalMs);
    this.#timer.unref();
  }

  /**
   * Notes a poll. A machine that says nothing new within LAST_SEEN_PRECISION_MS of the last write
   * costs no write at all: "last seen" is kept to the minute, not to the poll.
   */
  record(machineId: string, seen: Seen): void {
    const state = JSON.stringify([seen.installed, seen.facts]);
    const last = this.#written.get(machineId);
    if (last && last.state === state && seen.at.getTime() - last.at < LAST_SEEN_PRECISION_MS) return;
    this.#pending.set(machineId, { ...seen, state });
  }

  /** Forgets what was written for a machine (its record changed elsewhere: it enrolled again). */
  forget(machineId: string): void {
    this.#written.delete(machineId);
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
    for (let i = 0; i < batch.length; i += 500) await this.#writePart(batch.slice(i, i + 500));
  }

  /**
   * One UPDATE for the part. When the database refuses it for its content, not its state, the
   * part is split in two and each half tried alone, down to the one machine at fault, which is
   * dropped: one machine's bad data never holds back the others' (its next clean poll is written).
   */
  async #writePart(part: Array<[string, Seen & { state: string }]>): Promise<void> {
    const values = sql.join(
      part.map(
        ([id, s]) =>
          sql`(${id}, ${s.at.toISOString()}::timestamptz, ${JSON.stringify(s.installed)}::jsonb, ${JSON.stringify(s.facts)}::jsonb)`,
      ),
      sql`, `,
    );
    try {
      // A machine whose record is newer than this poll (a report arrived since) keeps it.
      const written = await this.#db.execute<{ id: string }>(
        sql`update ${machines} as m set last_seen_at = v.seen, installed = v.installed, facts = v.facts,
              hostname = v.facts->>'hostname', arch = v.facts->>'arch',
              os_id = v.facts->'os'->>'id', os_version = coalesce(v.facts->'os'->>'version', '')
            from (values ${values}) as v(id, seen, installed, facts)
            where m.id = v.id and (m.last_seen_at is null or m.last_seen_at <= v.seen)
            returning m.id`,
      );
      const ids = new Set(rowsOf<{ id: string }>(written).map((r) => r.id));
      if (this.#written.size > MAX_REMEMBERED) this.#written.clear();
      for (const [id, s] of part)
        if (ids.has(id)) this.#written.set(id, { at: s.at.getTime(), state: s.state });
    } catch (error) {
      if (isTransient(error)) {
        // Put the part back unless newer data arrived meanwhile; the next flush retries.
        for (const [id, s] of part) if (!this.#pending.has(id)) this.#pending.set(id, s);
        this.#log.warn({ err: error, machines: part.length }, 'could not record machine polls; will retry');
        return;
      }
      if (part.length === 1) {
        this.#log.warn(
          { err: error, machine: part[0]![0] },
          "could not record a machine's poll: the database refused its data; the next poll is tried afresh",
        );
        return;
      }
      const half = Math.ceil(part.length / 2);
      await this.#writePart(part.slice(0, half));
      await this.#writePart(part.slice(half));
    }
  }

  async close(): Promise<void> {
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = undefined;
    await this.flush();
  }
}
