import { constants } from 'node:fs';
import { type FileHandle, mkdir } from 'node:fs/promises';
import { dirname } from 'node:path';
import { checkOwnPath, lstatOwn, openOwn } from './own-files.ts';
import { logFileOf } from './paths.ts';

const WHAT = "clp's log";

function stamp(line: string): string {
  const at = new Date().toISOString();
  return line
    .split('\n')
    .map((l) => `${at} ${l}`)
    .join('\n');
}

/** Opens ROOT/var/log/CLP.log for appending; a link or anything but a regular file there is refused. */
async function openLog(root: string): Promise<FileHandle> {
  const file = logFileOf(root);
  await checkOwnPath(root, file, WHAT);
  await mkdir(dirname(file), { recursive: true });
  return openOwn(file, constants.O_WRONLY | constants.O_APPEND | constants.O_CREAT, WHAT, 0o644);
}

/** Appends timestamped lines to ROOT/var/log/CLP.log. */
export async function appendLog(root: string, line: string): Promise<void> {
  const fh = await openLog(root);
  try {
    await fh.write(`${stamp(line)}\n`);
  } finally {
    await fh.close();
  }
}

export interface Logger {
  log: (line: string) => void;
  /** Waits until every line logged so far is written. */
  flush: () => Promise<void>;
  /** Flushes and closes the log. */
  close: () => Promise<void>;
}

/**
 * A logger that writes to CLP.log in order and also hands each line to `also`. A link or anything
 * but a regular file at the log's name is refused up front, before the command does anything; the
 * log is opened (without following a link) at the first line, so a command that logs nothing
 * creates nothing. Lines logged while a write is under way are written together by the next one
 * (a patch of a thousand files logs a thousand lines; one append each would be a thousand writes).
 */
export async function makeLogger(root: string, also?: (line: string) => void): Promise<Logger> {
  const file = logFileOf(root);
  await checkOwnPath(root, file, WHAT);
  const st = await lstatOwn(file, WHAT);
  if (st !== null && !st.isFile()) await openLog(root);
  let fh: FileHandle | null = null;
  let pending: string[] = [];
  let chain: Promise<void> = Promise.resolve();
  let scheduled = false;
  const write = async (): Promise<void> => {
    scheduled = false;
    const lines = pending;
    pending = [];
    if (lines.length === 0) return;
    fh ??= await openLog(root);
    await fh.write(`${lines.join('\n')}\n`);
  };
  const flush = (): Promise<void> => chain.then(write).catch(() => {});
  return {
    log(line: string) {
      also?.(line);
      pending.push(stamp(line));
      if (!scheduled) {
        scheduled = true;
        chain = chain.then(write).catch(() => {});
      }
    },
    flush,
    async close() {
      await flush();
      await fh?.close().catch(() => {});
    },
  };
}
