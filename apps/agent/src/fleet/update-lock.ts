import { mkdir, open, readFile, rm } from 'node:fs/promises';
import { dirname } from 'node:path';
import { FleetError } from './errors.ts';

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * One update at a time per root (the timer and the daemon could overlap): a file holding the
 * owner's pid, created exclusively. A lock left by a process that died is taken over.
 */
export async function acquireUpdateLock(file: string): Promise<() => Promise<void>> {
  await mkdir(dirname(file), { recursive: true, mode: 0o700 });
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const handle = await open(file, 'wx', 0o600);
      await handle.writeFile(`${process.pid}\n`);
      await handle.close();
      return async () => {
        await rm(file, { force: true });
      };
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
      const pid = Number.parseInt(await readFile(file, 'utf8').catch(() => ''), 10);
      if (Number.isInteger(pid) && pid > 0 && pid !== process.pid && alive(pid)) {
        throw new FleetError(
          'CLP_E_UPDATE_BUSY',
          `another clpctl update (pid ${pid}) is running on this root; wait for it to finish`,
          {
            details: { pid, file },
          },
        );
      }
      if (pid === process.pid) {
        throw new FleetError('CLP_E_UPDATE_BUSY', 'an update is already running in this process', {
          details: { file },
        });
      }
      await rm(file, { force: true });
    }
  }
  throw new FleetError('CLP_E_UPDATE_BUSY', `could not take the update lock ${file}`, { details: { file } });
}
