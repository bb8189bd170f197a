import { randomUUID } from 'node:crypto';
import { rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { AGENT_PATHS, AgentReport, ReportBatchResponse } from '@clp/protocol';
import { FleetError } from './errors.ts';
import type { AgentHttpClient } from './http-client.ts';
import { ensureStateDir, listStateDir, readStateFile, writeStateFile } from './own-state.ts';

/** The server takes at most this many reports per request (ReportBatch). */
export const REPORT_BATCH_SIZE = 500;
/** Spooled files the server refused as malformed are moved here, so they do not block the rest. */
export const REJECTED_DIR = 'rejected';
const SPOOL_WHAT = "clp's report spool folder";
const REPORT_WHAT = 'the spooled report';

export type NewReport = Omit<AgentReport, 'id' | 'at'> & { at?: string };

export interface FlushResult {
  /** Reports the server stored now. */
  accepted: number;
  /** Reports the server already had (an earlier send whose answer was lost). */
  duplicates: number;
  /** Reports still on disk, to be sent by a later run. */
  left: number;
  /** Why the flush stopped early, when it did. */
  error?: FleetError;
}

/**
 * Reports waiting for the server, one JSON file per report, written atomically before anything
 * is sent. A file is deleted only after the server has answered that it stored (or already had)
 * that report id, so none is lost when the server is down and the server's dedup by id makes a
 * resend harmless. The folder and its files are under `root` and reached through no link (see
 * own-state.ts): a link there would send files from outside the root to the server.
 */
export class ReportSpool {
  readonly root: string;
  readonly dir: string;

  constructor(root: string, dir: string) {
    this.root = root;
    this.dir = dir;
  }

  /** Writes the report to disk and returns it with its id; nothing is sent yet. */
  async add(report: NewReport): Promise<AgentReport> {
    const full = AgentReport.parse({
      ...report,
      id: randomUUID(),
      at: report.at ?? new Date().toISOString(),
    });
    await ensureStateDir(this.root, this.dir, SPOOL_WHAT);
    // The time prefix keeps reports in the order they happened when the folder is read back.
    const stamp = String(Date.now()).padStart(15, '0');
    await writeStateFile(
      this.root,
      join(this.dir, `${stamp}-${full.id}.json`),
      `${JSON.stringify(full)}\n`,
      REPORT_WHAT,
      0o600,
    );
    return full;
  }

  async #files(): Promise<string[]> {
    const names = await listStateDir(this.root, this.dir, SPOOL_WHAT);
    return names.filter((name) => name.endsWith('.json') && !name.startsWith('.')).sort();
  }

  /** Reports on disk, oldest first; a file that is not a valid report is set aside with a note. */
  async pending(
    log: (line: string) => void = () => {},
  ): Promise<Array<{ file: string; report: AgentReport }>> {
    const out: Array<{ file: string; report: AgentReport }> = [];
    for (const name of await this.#files()) {
      const file = join(this.dir, name);
      let raw: unknown;
      try {
        raw = JSON.parse(await readStateFile(this.root, file, REPORT_WHAT));
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code === 'ENOENT') continue;
        if ((error as { code?: unknown }).code === 'CLP_E_LINK_REFUSED') throw error;
        raw = undefined;
      }
      const parsed = AgentReport.safeParse(raw);
      if (parsed.success) {
        out.push({ file, report: parsed.data });
      } else {
        await this.#setAside(file, log, 'not a valid report');
      }
    }
    return out;
  }

  async count(): Promise<number> {
    return (await this.#files()).length;
  }

  async #setAside(file: string, log: (line: string) => void, why: string): Promise<void> {
    const dest = join(this.dir, REJECTED_DIR);
    await ensureStateDir(this.root, dest, "clp's folder of refused reports");
    await rename(file, join(dest, file.slice(this.dir.length + 1)));
    log(`spool: ${file} ${why}; moved to ${dest}`);
  }

  /**
   * Sends every spooled report, in batches, to the servers in order; deletes each one the server
   * acknowledged. Stops at the first batch no server took: the rest stays for the next run.
   */
  async flush(client: AgentHttpClient, servers?: readonly string[]): Promise<FlushResult> {
    const log = (line: string) => client.log(line);
    const pending = await this.pending(log);
    const result: FlushResult = { accepted: 0, duplicates: 0, left: pending.length };
    for (let start = 0; start < pending.length; start += REPORT_BATCH_SIZE) {
      const batch = pending.slice(start, start + REPORT_BATCH_SIZE);
      let answer: ReportBatchResponse;
      try {
        answer = (
          await client.postJson(
            AGENT_PATHS.reports,
            { reports: batch.map((p) => p.report) },
            ReportBatchResponse,
            servers,
          )
        ).value;
      } catch (error) {
        if (
          error instanceof FleetError &&
          error.code === 'CLP_E_SERVER_REJECTED' &&
          error.details?.status === 400
        ) {
          // One bad report must not hold the others back forever: send them one by one.
          const single = await this.#sendOneByOne(client, batch, servers);
          result.accepted += single.accepted;
          result.duplicates += single.duplicates;
          result.left -= single.done;
          if (single.error) {
            result.error = single.error;
            return result;
          }
          continue;
        }
        result.error =
          error instanceof FleetError
            ? error
            : new FleetError('CLP_E_SERVER_UNREACHABLE', `reports could not be sent: ${String(error)}`, {
                cause: error,
              });
        return result;
      }
      const done = new Set([...answer.accepted, ...answer.duplicates].map((id) => id.toLowerCase()));
      for (const item of batch) {
        if (!done.has(item.report.id.toLowerCase())) continue;
        await rm(item.file, { force: true });
        result.left--;
      }
      result.accepted += answer.accepted.length;
      result.duplicates += answer.duplicates.length;
    }
    return result;
  }

  async #sendOneByOne(
    client: AgentHttpClient,
    batch: Array<{ file: string; report: AgentReport }>,
    servers?: readonly string[],
  ): Promise<{ accepted: number; duplicates: number; done: number; error?: FleetError }> {
    const out = { accepted: 0, duplicates: 0, done: 0 };
    for (const item of batch) {
      try {
        const { value } = await client.postJson(
          AGENT_PATHS.reports,
          { reports: [item.report] },
          ReportBatchResponse,
          servers,
        );
        out.accepted += value.accepted.length;
        out.duplicates += value.duplicates.length;
        await rm(item.file, { force: true });
      } catch (error) {
        if (
          error instanceof FleetError &&
          error.code === 'CLP_E_SERVER_REJECTED' &&
          error.details?.status === 400
        ) {
          await this.#setAside(
            item.file,
            (line) => client.log(line),
            `was refused by the server (${error.message})`,
          );
        } else {
          return {
            ...out,
            error:
              error instanceof FleetError ? error : new FleetError('CLP_E_SERVER_UNREACHABLE', String(error)),
          };
        }
      }
      out.done++;
    }
    return out;
  }
}
