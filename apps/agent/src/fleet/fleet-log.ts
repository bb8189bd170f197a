import { appendFile, mkdir } from 'node:fs/promises';
import { dirname } from 'node:path';
import { logFileOf } from '@clp/engine';

export interface FleetLog {
  /** Writes LINE to ROOT/var/log/CLP.log (prefixed "fleet:") and hands it to `also`. */
  log(line: string): void;
  /** Waits until every line is on disk. */
  flush(): Promise<void>;
}

/**
 * The fleet loop's lines in the machine's one log, beside the engine's: what was polled,
 * downloaded, held back, reported. The engine writes its own lines there itself.
 */
export function fleetLog(root: string, also: (line: string) => void = () => {}): FleetLog {
  const file = logFileOf(root);
  let chain: Promise<void> = Promise.resolve();
  return {
    log(line) {
      also(line);
      const at = new Date().toISOString();
      const text = line
        .split('\n')
        .map((l) => `${at} fleet: ${l}`)
        .join('\n');
      // A log that cannot be written must not stop an update.
      chain = chain
        .then(() => mkdir(dirname(file), { recursive: true }))
        .then(() => appendFile(file, `${text}\n`))
        .catch(() => {});
    },
    flush: () => chain,
  };
}
