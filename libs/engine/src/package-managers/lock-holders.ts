/**
 * Who holds a package manager's lock, read from /proc: the engine decides what a lock means from
 * the processes that hold it, never from process names (pamac, PackageKit and other frontends
 * write the same database as pacman and apt).
 */
import { readdir, readFile, readlink, realpath, stat } from 'node:fs/promises';

export interface LockHolder {
  pid: number;
  /** The holder's command line, for messages. */
  command: string;
}

async function commandOf(pid: number): Promise<string> {
  const argv = await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '');
  return argv.split('\0').filter(Boolean).join(' ') || `pid ${pid}`;
}

/**
 * The processes that have `file` open. libalpm (pacman and every frontend built on it) keeps its
 * db.lck open for as long as it holds the database, so a lock file nobody has open was left by a
 * process that died.
 */
export async function processesWithOpen(file: string): Promise<LockHolder[]> {
  const target = await realpath(file).catch(() => null);
  if (target === null) return [];
  const holders: LockHolder[] = [];
  const pids = (await readdir('/proc').catch(() => [] as string[])).filter((p) => /^\d+$/.test(p));
  for (const pid of pids) {
    const fds = await readdir(`/proc/${pid}/fd`).catch(() => [] as string[]);
    for (const fd of fds) {
      if ((await readlink(`/proc/${pid}/fd/${fd}`).catch(() => '')) !== target) continue;
      holders.push({ pid: Number(pid), command: await commandOf(Number(pid)) });
      break;
    }
  }
  return holders;
}

/** The major and minor numbers of a Linux dev_t. */
function major(dev: number): number {
  return Number((BigInt(dev) >> 8n) & 0xfffn) | Number((BigInt(dev) >> 32n) & ~0xfffn);
}
function minor(dev: number): number {
  return Number(BigInt(dev) & 0xffn) | Number((BigInt(dev) >> 12n) & ~0xffn);
}

/**
 * The processes holding an fcntl or flock lock on any of these files, from /proc/locks (dpkg and
 * apt lock that way; such a lock dies with its process). Files that do not exist are not held.
 */
export async function processesLocking(files: string[]): Promise<LockHolder[]> {
  const inodes = new Set<string>();
  for (const f of files) {
    const st = await stat(f).catch(() => null);
    if (st) inodes.add(`${major(st.dev)}:${minor(st.dev)}:${st.ino}`);
  }
  if (inodes.size === 0) return [];
  const table = await readFile('/proc/locks', 'utf8').catch(() => '');
  const pids = new Set<number>();
  for (const line of table.split('\n')) {
    // "1: POSIX  ADVISORY  WRITE 1234 fd:01:5678 0 EOF": the device is in hex; "-> " marks a waiter.
    const m = /^\d+:\s+(?!->)\S+\s+\S+\s+\S+\s+(\d+)\s+([0-9a-f]+):([0-9a-f]+):(\d+)\s/.exec(line);
    if (!m?.[1] || !m[2] || !m[3] || !m[4]) continue;
    if (inodes.has(`${Number.parseInt(m[2], 16)}:${Number.parseInt(m[3], 16)}:${m[4]}`))
      pids.add(Number(m[1]));
  }
  return Promise.all([...pids].map(async (pid) => ({ pid, command: await commandOf(pid) })));
}

export function describeHolders(holders: readonly LockHolder[]): string {
  return holders.map((h) => `pid ${h.pid}: ${h.command}`).join('; ');
}
