import { appendFile, mkdir } from 'node:fs/promises';
import { dirname } from 'node:path';
import { logFileOf } from './paths.ts';

/** Appends one timestamped line to ROOT/var/log/CLP.log. */
export async function appendLog(root: string, line: string): Promise<void> {
  const file = logFileOf(root);
  await mkdir(dirname(file), { recursive: true });
  const stamped = line
    .split('\n')
    .map((l) => `${new Date().toISOString()} ${l}`)
    .join('\n');
  await appendFile(file, `${stamped}\n`);
}

/** A logger that writes to CLP.log in order and also hands each line to `also`. */
export function makeLogger(root: string, also?: (line: string) => void): { log: (line: string) => void; flush: () => Promise<void> } {
  let chain: Promise<void> = Promise.resolve();
  return {
    log(line: string) {
      also?.(line);
      chain = chain.then(() => appendLog(root, line)).catch(() => {});
    },
    flush: () => chain,
  };
}
