import { appendFile, mkdir } from 'node:fs/promises';
import { dirname } from 'node:path';
import { logFileOf } from './paths.ts';

function stamp(line: string): string {
  const at = new Date().toISOString();
  return line
    .split('\n')
    .map((l) => `${at} ${l}`)
    .join('\n');
}

/** Appends one timestamped line to ROOT/var/log/CLP.log. */
export async function appendLog(root: string, line: string): Promise<void> {
  const file = logFileOf(root);
  await mkdir(dirname(file), { recursive: true });
  await appendFile(file, `${stamp(line)}\n`);
}

/**
 * A logger that writes to CLP.log in order and also hands each line to `also`. Lines logged while
 * a write is under way are written together by the next one (a patch of a thousand files logs a
 * thousand lines; one append each would be a thousand writes).
 */
export function makeLogger(
  root: string,
  also?: (line: string) => void,
): { log: (line: string) => void; flush: () => Promise<void> } {
  const file = logFileOf(root);
  let pending: string[] = [];
  let chain: Promise<void> = Promise.resolve();
  let scheduled = false;
  let madeDir = false;
  const write = async (): Promise<void> => {
    scheduled = false;
    const lines = pending;
    pending = [];
    if (lines.length === 0) return;
    if (!madeDir) {
      await mkdir(dirname(file), { recursive: true });
      madeDir = true;
    }
    await appendFile(file, `${lines.join('\n')}\n`);
  };
  return {
    log(line: string) {
      also?.(line);
      pending.push(stamp(line));
      if (!scheduled) {
        scheduled = true;
        chain = chain.then(write).catch(() => {});
      }
    },
    flush: () => chain.then(write).catch(() => {}),
  };
}
