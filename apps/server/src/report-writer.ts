import { type Database, reports } from '@clp/db';
import { isTransient, sqlState } from './db-errors.ts';
import { ServerError } from './errors.ts';
import { recordInstalled } from './installed-from-reports.ts';
import type { OfferLog } from './offer-log.ts';
import { recordOutcomes } from './rollout-outcomes.ts';

export type ReportRow = typeof reports.$inferInsert & { id: string; status: string };

/** PostgreSQL's deadlock and serialization failures: the transaction may simply run again. */
const RETRYABLE = new Set(['40P01', '40001']);

async function retryOnConflict<T>(run: () => Promise<T>, attempts = 5): Promise<T> {
  for (let i = 1; ; i++) {
    try {
      return await run();
    } catch (error) {
      const state = sqlState(error);
      if (i >= attempts || !state || !RETRYABLE.has(state)) throw error;
      await new Promise((r) => setTimeout(r, Math.random() * 20 * i));
    }
  }
}

const byId = (a: { id: string }, b: { id: string }) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0);

interface Pending {
  rows: ReportRow[];
  resolve(accepted: Set<string>): void;
  reject(error: unknown): void;
}

/**
 * Stores reports with group commit: the batches of all requests that arrive while a write is
 * running go to the database together in the next transaction, so that a busy fleet costs one
 * transaction per round instead of one per request (bar P6). A report id already stored is a
 * duplicate and changes nothing. Every new report is stored (the machine's history); in the same
 * transaction the per-machine outcomes of the rollouts that offered them, the rollout counters
 * that sum those, and the reporting machines' installed lists move (see rollout-outcomes.ts).
 * Rows and counters are written in a fixed order (sorted ids), so that several server instances
 * writing at once wait for each other instead of deadlocking.
 */
export class ReportWriter {
  readonly #db: Database;
  readonly #maxRows: number;
  readonly #offers: OfferLog | undefined;
  #queue: Pending[] = [];
  #running = false;

  constructor(db: Database, offers?: OfferLog, maxRows = 2000) {
    this.#db = db;
    this.#offers = offers;
    this.#maxRows = maxRows;
  }

  /** Stores the rows (ids already lowercase and unique); answers the ids this call stored. */
  write(rows: ReportRow[]): Promise<Set<string>> {
    return new Promise((resolve, reject) => {
      this.#queue.push({ rows, resolve, reject });
      if (!this.#running) {
        this.#running = true;
        setImmediate(() => void this.#drain());
      }
    });
  }

  async #drain(): Promise<void> {
    while (this.#queue.length > 0) {
      const round: Pending[] = [];
      let size = 0;
      while (
        this.#queue.length > 0 &&
        (round.length === 0 || size + this.#queue[0]!.rows.length <= this.#maxRows)
      ) {
        const next = this.#queue.shift()!;
        round.push(next);
        size += next.rows.length;
      }
      await this.#commit(round);
    }
    this.#running = false;
  }

  /**
   * Stores a round and answers its requests. A round the database refuses for its content (not its
   * state) is split into halves, down to the one request at fault, which alone gets the refusal:
   * one machine's bad report never fails or holds back another machine's.
   */
  async #commit(round: Pending[]): Promise<void> {
    try {
      const stored = await retryOnConflict(() => this.#store(round));
      for (const p of round) {
        const mine = new Set<string>();
        for (const r of p.rows) if (stored.get(r.id) === p) mine.add(r.id);
        p.resolve(mine);
      }
    } catch (error) {
      if (isTransient(error)) {
        for (const p of round) p.reject(error);
      } else if (round.length > 1) {
        const half = Math.ceil(round.length / 2);
        await this.#commit(round.slice(0, half));
        await this.#commit(round.slice(half));
      } else {
        round[0]!.reject(
          new ServerError(
            'CLP_E_VALIDATION',
            'reports: the database refused to store one of these reports; send them one at a time to find which',
            { field: 'body.reports', cause: error },
          ),
        );
      }
    }
  }

  /** One transaction for a round; answers which request stored each new id. */
  async #store(round: Pending[]): Promise<Map<string, Pending>> {
    // The first request naming an id owns it; a later one in the same round gets "duplicate".
    const owner = new Map<string, Pending>();
    const rows: ReportRow[] = [];
    for (const p of round) {
      for (const r of p.rows) {
        if (owner.has(r.id)) continue;
        owner.set(r.id, p);
        rows.push(r);
      }
    }
    // The order the agents sent them in, for the installed lists; the inserts go by id.
    const sent = [...rows];
    rows.sort(byId);
    return this.#db.transaction(async (tx) => {
      const inserted = new Set<string>();
      for (let i = 0; i < rows.length; i += 500) {
        const part = await tx
          .insert(reports)
          .values(rows.slice(i, i + 500))
          .onConflictDoNothing()
          .returning({ id: reports.id });
        for (const r of part) inserted.add(r.id);
      }
      const fresh = sent.filter((r) => inserted.has(r.id));
      await recordOutcomes(
        tx,
        fresh.map((r) => ({
          id: r.id,
          machineId: r.machineId,
          rolloutId: r.rolloutId ?? null,
          releaseId: r.releaseId ?? null,
          status: r.status,
          at: r.at,
          receivedAt: r.receivedAt,
          scheduledFor: r.scheduledFor ?? null,
        })),
        this.#offers,
      );
      await recordInstalled(
        tx,
        fresh.map((r) => ({
          machineId: r.machineId,
          releaseId: r.releaseId ?? null,
          name: r.name,
          sha256: r.sha256 ?? null,
          status: r.status,
          at: r.at,
          receivedAt: r.receivedAt,
        })),
      );
      const stored = new Map<string, Pending>();
      for (const id of inserted) stored.set(id, owner.get(id)!);
      return stored;
    });
  }
}
