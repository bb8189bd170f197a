import { dirname } from 'node:path';
import { checkOwnPath, lockFile } from '@clp/engine';
import { FleetError } from './errors.ts';
import { ensureStateDir } from './own-state.ts';

/**
 * One update at a time per root (the timer and the daemon could overlap, also in one process): an
 * exclusive kernel lock on the file, the same kind as the engine's own (see @clp/engine lockFile).
 * It dies with its process, so a crashed update never blocks the next one, and the pid written in
 * the file is only for the refusal's message.
 */
export async function acquireUpdateLock(root: string, file: string): Promise<() => Promise<void>> {
  await ensureStateDir(root, dirname(file), "clp's fleet folder");
  await checkOwnPath(root, file, "clp's update lock");
  const lock = await lockFile(
    file,
    (pid) =>
      new FleetError(
        'CLP_E_UPDATE_BUSY',
        `another clpctl update${pid === null ? '' : ` (pid ${pid})`} is running on this root; wait for it to finish`,
        { details: { file, ...(pid === null ? {} : { pid }) } },
      ),
    "clp's update lock",
  );
  return () => lock.release();
}
