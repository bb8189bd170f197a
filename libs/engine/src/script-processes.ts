/**
 * Ending what a transaction's scripts started. Every script runs as the leader of its own process
 * group, with CLP_TX=<transaction> in its environment; its group is journaled. When the
 * transaction is rolled back (a failure, a timeout, or recovery after clpctl was killed) every
 * such process is killed before anything is undone: a script that outlives its transaction must
 * not write into the root after recovery said "as before". A child that left the group (setsid)
 * is found by the CLP_TX it inherited.
 */
import { readdir, readFile } from 'node:fs/promises';
import type { TrackedGroup } from './step.ts';

interface ProcessFacts {
  pid: number;
  pgid: number;
  start: string;
  zombie: boolean;
}

/** pid, process group, start time and state from /proc/PID/stat (after the parenthesised name). */
async function factsOf(pid: number): Promise<ProcessFacts | null> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => null);
  if (stat === null) return null;
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return {
    pid,
    pgid: Number(fields[2]),
    start: fields[19] ?? '',
    zombie: fields[0] === 'Z' || fields[0] === 'X',
  };
}

/** The start time of a process, as TrackedGroup.start records it; null once it is gone. */
export async function startTimeOf(pid: number): Promise<string | null> {
  return (await factsOf(pid))?.start ?? null;
}

async function carriesTx(pid: number, tx: string): Promise<boolean> {
  const env = await readFile(`/proc/${pid}/environ`, 'utf8').catch(() => '');
  return env.split('\0').includes(`CLP_TX=${tx}`);
}

/** The live processes that belong to the transaction's scripts. */
async function scriptProcesses(tx: string, groups: readonly TrackedGroup[]): Promise<ProcessFacts[]> {
  // A group is this transaction's only while its leader is the very process that was started.
  const leaders = new Set<number>();
  for (const g of groups) {
    const leader = await factsOf(g.pgid);
    if (leader !== null && !leader.zombie && (g.start === null || leader.start === g.start))
      leaders.add(g.pgid);
  }
  const found: ProcessFacts[] = [];
  for (const name of await readdir('/proc').catch(() => [] as string[])) {
    if (!/^\d+$/.test(name) || Number(name) === process.pid) continue;
    const facts = await factsOf(Number(name));
    if (facts === null || facts.zombie) continue;
    if (leaders.has(facts.pgid) || (await carriesTx(facts.pid, tx))) found.push(facts);
  }
  return found;
}

/**
 * Kills (SIGKILL) every live process of the transaction's scripts and waits until they are gone;
 * returns how many there were.
 */
export async function endScriptProcesses(
  tx: string,
  groups: readonly TrackedGroup[],
  log: (line: string) => void,
): Promise<number> {
  let ended = 0;
  for (let round = 0; round < 50; round++) {
    const alive = await scriptProcesses(tx, groups);
    if (alive.length === 0) break;
    if (round === 0) {
      ended = alive.length;
      log(
        `ending ${alive.length} process(es) the scripts of transaction ${tx} left running: ${alive.map((p) => p.pid).join(', ')}`,
      );
    }
    for (const p of alive) {
      try {
        process.kill(p.pid, 'SIGKILL');
      } catch {
        // gone already
      }
    }
    await new Promise((r) => setTimeout(r, 20 * (round + 1)));
  }
  return ended;
}
