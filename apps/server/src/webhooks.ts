import { createHmac } from 'node:crypto';
import { type Database, webhookDeliveries } from '@clp/db';
import { and, eq, sql } from 'drizzle-orm';
import type { Logger } from 'pino';
import type { Clock } from './clock.ts';
import { isDatabaseUnavailable } from './db-errors.ts';
import type { ServerMetrics } from './metrics.ts';
import { rowsOf } from './sql-rows.ts';

type Executor = Pick<Database, 'insert'>;

/** The rollout events operators hear about. */
export const ROLLOUT_EVENTS = ['rollout.halted', 'rollout.completed', 'rollout.failure-warning'] as const;
export type RolloutEvent = (typeof ROLLOUT_EVENTS)[number];

/** The header carrying `sha256=<hex HMAC-SHA256 of the raw body>` keyed by CLP_WEBHOOK_SECRET. */
export const SIGNATURE_HEADER = 'x-clp-signature';

export interface WebhookConfig {
  urls: readonly string[];
  secret: string;
}

/** Attempts before a delivery is given up (back-off doubles from 10 s, capped at one hour: about a day). */
export const MAX_ATTEMPTS = 30;
const FIRST_DELAY_S = 10;
const MAX_DELAY_S = 3600;
/** A claimed delivery is held this long: a process that dies mid-send leaves it to another. */
const LEASE_S = 120;
const SEND_TIMEOUT_MS = 10_000;
const BATCH = 20;

export function retryDelaySeconds(attempt: number): number {
  return Math.min(FIRST_DELAY_S * 2 ** Math.max(0, attempt - 1), MAX_DELAY_S);
}

export function signature(secret: string, body: string): string {
  return `sha256=${createHmac('sha256', secret).update(body, 'utf8').digest('hex')}`;
}

/**
 * How a webhook URL appears in the log and in a delivery's error: its origin only. Receivers of
 * chat services keep their key in the path or the query, so the whole URL is a credential.
 */
export function webhookOrigin(url: string): string {
  try {
    return new URL(url).origin;
  } catch {
    return '(not a URL)';
  }
}

/** A delivery's error text without its URL (fetch names the URL it could not reach). */
function withoutUrl(problem: string, url: string): string {
  return problem.split(url).join(webhookOrigin(url));
}

/**
 * Queues one delivery per configured URL, inside the transaction of the change it announces: a
 * change that commits is announced, one that rolls back is not, and the queue survives restarts.
 */
export async function enqueueEvent(
  tx: Executor,
  config: WebhookConfig | undefined,
  event: RolloutEvent,
  rolloutId: string,
  payload: Record<string, unknown>,
  now: Date,
): Promise<void> {
  if (!config || config.urls.length === 0) return;
  await tx.insert(webhookDeliveries).values(
    config.urls.map((url) => ({
      event,
      rolloutId,
      url,
      payload: { event, rolloutId, at: now.toISOString(), ...payload },
      nextAt: now,
      createdAt: now,
    })),
  );
}

/**
 * Sends queued deliveries in the background, never on a poll's or a report's path. Each process
 * runs one; a delivery is claimed with a lease (`FOR UPDATE SKIP LOCKED`), so that several
 * processes never send one twice at once, and a process that dies mid-send leaves it to be sent
 * again after the lease. Receivers may see a delivery more than once: the `X-CLP-Delivery` id
 * tells duplicates apart. A failed send is retried with back-off; after MAX_ATTEMPTS it is
 * abandoned and logged.
 */
export class WebhookSender {
  readonly #db: Database;
  readonly #clock: Clock;
  readonly #config: WebhookConfig;
  readonly #log: Logger;
  readonly #metrics: ServerMetrics;
  #timer: NodeJS.Timeout | undefined;
  #running: Promise<number> | undefined;

  constructor(
    db: Database,
    clock: Clock,
    config: WebhookConfig,
    log: Logger,
    metrics: ServerMetrics,
    intervalMs: number,
  ) {
    this.#db = db;
    this.#clock = clock;
    this.#config = config;
    this.#log = log;
    this.#metrics = metrics;
    if (config.urls.length > 0) {
      this.#timer = setInterval(() => void this.deliverDue().catch(() => undefined), intervalMs);
      this.#timer.unref();
    }
  }

  /** Sends what is due now; answers how many were sent successfully. */
  deliverDue(): Promise<number> {
    this.#running ??= this.#round().finally(() => {
      this.#running = undefined;
    });
    return this.#running;
  }

  async #round(): Promise<number> {
    const now = this.#clock.now();
    let claimed: Array<{ id: number; url: string; event: string; payload: unknown; attempts: number }>;
    try {
      claimed = rowsOf<{
        id: number | string;
        url: string;
        event: string;
        payload: unknown;
        attempts: number;
      }>(
        await this.#db.execute(sql`
          update ${webhookDeliveries} set attempts = attempts + 1,
            next_at = ${new Date(now.getTime() + LEASE_S * 1000).toISOString()}::timestamptz
          where id in (
            select id from ${webhookDeliveries}
            where delivered_at is null and abandoned_at is null and next_at <= ${now.toISOString()}::timestamptz
            order by id limit ${BATCH} for update skip locked)
          returning id, url, event, payload, attempts`),
      ).map((r) => ({ ...r, id: Number(r.id), attempts: Number(r.attempts) }));
    } catch (error) {
      if (!isDatabaseUnavailable(error))
        this.#log.error({ err: error }, 'could not claim webhook deliveries');
      return 0;
    }
    let sent = 0;
    for (const d of claimed) {
      const payload = typeof d.payload === 'string' ? d.payload : JSON.stringify(d.payload);
      const problem = await this.#send(d.id, d.url, d.event, payload);
      const at = this.#clock.now();
      if (problem === undefined) {
        sent++;
        this.#metrics.webhooks.inc({ event: d.event, result: 'delivered' });
        await this.#db
          .update(webhookDeliveries)
          .set({ deliveredAt: at, lastError: null })
          .where(eq(webhookDeliveries.id, d.id));
        continue;
      }
      const abandon = d.attempts >= MAX_ATTEMPTS;
      this.#metrics.webhooks.inc({ event: d.event, result: abandon ? 'abandoned' : 'retry' });
      this.#log.warn(
        { delivery: d.id, receiver: webhookOrigin(d.url), event: d.event, attempt: d.attempts, problem },
        abandon ? 'webhook delivery abandoned after its last attempt' : 'webhook delivery failed; will retry',
      );
      await this.#db
        .update(webhookDeliveries)
        .set(
          abandon
            ? { abandonedAt: at, lastError: problem }
            : { nextAt: new Date(at.getTime() + retryDelaySeconds(d.attempts) * 1000), lastError: problem },
        )
        .where(and(eq(webhookDeliveries.id, d.id)));
    }
    return sent;
  }

  /** One POST; answers what went wrong, or undefined on a 2xx. */
  async #send(id: number, url: string, event: string, body: string): Promise<string | undefined> {
    try {
      const res = await fetch(url, {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          'user-agent': 'clp-server',
          'x-clp-event': event,
          'x-clp-delivery': String(id),
          [SIGNATURE_HEADER]: signature(this.#config.secret, body),
        },
        body,
        redirect: 'manual',
        signal: AbortSignal.timeout(SEND_TIMEOUT_MS),
      });
      await res.body?.cancel().catch(() => undefined);
      return res.ok ? undefined : `HTTP ${res.status}`;
    } catch (error) {
      const cause = (error as { cause?: { message?: string } }).cause?.message;
      const message = error instanceof Error ? error.message : String(error);
      return withoutUrl(cause ? `${message}: ${cause}` : message, url);
    }
  }

  async close(): Promise<void> {
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = undefined;
    await this.#running;
  }
}
