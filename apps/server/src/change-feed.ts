import type { DatabaseHandle } from '@clp/db';
import type { Logger } from 'pino';
import type { MachineAuthCache } from './auth.ts';
import type { ActiveRollouts } from './rollout-cache.ts';

/**
 * Empties this process's caches when the database announces a change made by any server
 * process (PostgreSQL LISTEN; see the change triggers in db/migrations). While the listening
 * connection is down the caches still obey their time bounds; when it comes back everything is
 * dropped once, since announcements may have been missed meanwhile.
 */
export async function followDatabaseChanges(
  database: DatabaseHandle,
  caches: { rollouts: ActiveRollouts; machineAuth: MachineAuthCache },
  log: Logger,
): Promise<{ close(): Promise<void> }> {
  let connected = true;
  return database.listen({
    changed(table) {
      if (table === 'machines') caches.machineAuth.clear();
      else caches.rollouts.invalidate();
    },
    reset(nowConnected) {
      caches.rollouts.invalidate();
      caches.machineAuth.clear();
      if (nowConnected && !connected) log.info('listening for changes from other server processes again');
      if (!nowConnected && connected)
        log.warn(
          'lost the change announcements of other server processes; caches fall back to their time bounds',
        );
      connected = nowConnected;
    },
  });
}
