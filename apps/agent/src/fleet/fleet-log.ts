import { appendLog } from '@clp/engine';

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
  let chain: Promise<void> = Promise.resolve();
  return {
    log(line) {
      also(line);
      const text = line
        .split('\n')
        .map((l) => `fleet: ${l}`)
        .join('\n');
      // A log that cannot be written (or is a link, which is never followed) must not stop an update.
      chain = chain.then(() => appendLog(root, text)).catch(() => {});
    },
    flush: () => chain,
  };
}
