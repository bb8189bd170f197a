import { type Database, rolloutMachines } from '@clp/db';
import { sql } from 'drizzle-orm';
import type { Logger } from 'pino';
import { isTransient } from './db-errors.ts';

interface Offer {
  rolloutId: string;
  machineId: string;
  at: Date;
}

/** Offers remembered as written; past this the memory starts afresh (costing one insert each, ignored). */
const MAX_REMEMBERED = 500_000;
const PART = 500;

const keyOf = (rolloutId: string, machineId: string) => `${rolloutId} ${machineId}`;

/**
 * Which machines each rollout offered its release to, as polls offer it: kept in memory and
 * written in batches (one INSERT per flush, existing rows left as they are), like MachineSeen,
 * so that a poll costs no write of its own (bar P5). An offer is written once per rollout and
 * machine, however often the machine polls. The report writer asks for offers not yet written,
 * so that a report arriving right after its poll still counts.
 */
export class OfferLog {
  readonly #db: Database;
  readonly #log: Logger;
  #pending = new Map<string, Offer>();
  readonly #written = new Set<string>();
  #timer: NodeJS.Timeout | undefined;
  #flushing: Promise<void> = Promise.resolve();

  constructor(db: Database, log: Logger, intervalMs = 1000) {
    this.#db = db;
    this.#log = log;
    this.#timer = setInterval(() => void this.flush(), intervalMs);
    this.#timer.unref();
  }

  /** Notes that a poll offered the rollout's release to the machine. */
  record(rolloutId: string, machineId: string, at: Date): void {
    const key = keyOf(rolloutId, machineId);
    if (this.#written.has(key) || this.#pending.has(key)) return;
    this.#pending.set(key, { rolloutId, machineId, at });
  }

  /** When a poll of this process offered it, if that offer is not written yet. */
  pendingSince(rolloutId: string, machineId: string): Date | undefined {
    return this.#pending.get(keyOf(rolloutId, machineId))?.at;
  }

  async flush(): Promise<void> {
    const run = this.#flushing.then(() => this.#write());
    this.#flushing = run.catch(() => undefined);
    return run;
  }

  async #write(): Promise<void> {
    if (this.#pending.size === 0) return;
    // In key order, like the report writer's rows: writers on several replicas wait, not deadlock.
    const batch = [...this.#pending.entries()]
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
      .map(([, o]) => o);
    this.#pending = new Map();
    for (let i = 0; i < batch.length; i += PART) await this.#writePart(batch.slice(i, i + PART));
  }

  /** One INSERT for the part; a part the database refuses for its content is split down to the offer at fault. */
  async #writePart(part: Offer[]): Promise<void> {
    try {
      await this.#db
        .insert(rolloutMachines)
        .values(part.map((o) => ({ rolloutId: o.rolloutId, machineId: o.machineId, offeredAt: o.at })))
        .onConflictDoNothing();
      if (this.#written.size > MAX_REMEMBERED) this.#written.clear();
      for (const o of part) this.#written.add(keyOf(o.rolloutId, o.machineId));
    } catch (error) {
      if (isTransient(error)) {
        for (const o of part) {
          const key = keyOf(o.rolloutId, o.machineId);
          if (!this.#pending.has(key)) this.#pending.set(key, o);
        }
        this.#log.warn({ err: error, offers: part.length }, 'could not record rollout offers; will retry');
        return;
      }
      if (part.length === 1) {
        this.#log.warn(
          { err: error, rollout: part[0]!.rolloutId, machine: part[0]!.machineId },
          'could not record a rollout offer: the database refused it',
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
