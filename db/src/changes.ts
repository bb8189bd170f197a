import pg from 'pg';

/** The channel on which the change triggers (migration 0003) announce a changed table. */
export const CHANGE_CHANNEL = 'clp_changes';

export interface ChangeListener {
  /** A row of `table` changed in a way other server processes must see (payload: the table). */
  changed(table: string): void;
  /**
   * The listening connection is down or came back: changes may have been missed meanwhile, so
   * everything cached must be treated as stale. `connected` says which.
   */
  reset(connected: boolean): void;
}

const RETRY_MIN_MS = 100;
const RETRY_MAX_MS = 2000;

/**
 * Listens on CHANGE_CHANNEL over one dedicated connection, reconnecting with backoff when the
 * database restarts. While it is down, callers fall back to the time bounds of their caches.
 */
export async function listenForChanges(
  url: string,
  listener: ChangeListener,
): Promise<{ close(): Promise<void> }> {
  let closed = false;
  let client: pg.Client | undefined;
  let retryMs = RETRY_MIN_MS;
  let timer: NodeJS.Timeout | undefined;

  const connect = async (): Promise<void> => {
    const c = new pg.Client({ connectionString: url, connectionTimeoutMillis: 2000, keepAlive: true });
    let lost = false;
    const onLost = () => {
      if (lost) return;
      lost = true;
      client = undefined;
      c.end().catch(() => undefined);
      if (closed) return;
      listener.reset(false);
      timer = setTimeout(() => void connect(), retryMs);
      retryMs = Math.min(retryMs * 2, RETRY_MAX_MS);
    };
    c.on('error', onLost);
    c.on('end', onLost);
    c.on('notification', (n) => {
      if (n.channel === CHANGE_CHANNEL) listener.changed(n.payload ?? '');
    });
    try {
      await c.connect();
      await c.query(`listen ${CHANGE_CHANNEL}`);
    } catch {
      onLost();
      return;
    }
    if (closed) {
      await c.end().catch(() => undefined);
      return;
    }
    client = c;
    retryMs = RETRY_MIN_MS;
    listener.reset(true);
  };

  await connect();
  return {
    async close() {
      closed = true;
      clearTimeout(timer);
      await client?.end().catch(() => undefined);
    },
  };
}
