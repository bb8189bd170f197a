import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { isClpError } from '@clp/format';
import {
  AGENT_PATHS,
  cleanBlockText,
  type InstalledPatch,
  type MaintenanceWindow,
  PollResponse,
  type ReleaseToApply,
  type ReleaseToRevert,
  windowIsOpen,
  windowOpening,
} from '@clp/protocol';
import { EXIT, type ExitCode } from '../exit-codes.ts';
import { type AgentConfig, type EnrolledConfig, loadConfig, requireEnrolled, underRoot } from './config.ts';
import { cutoffReason } from './cutoff.ts';
import { type DownloadProgress, downloadRelease, pruneDownloads } from './download.ts';
import type { PatchEngine } from './engine-port.ts';
import { FleetError } from './errors.ts';
import { fleetLog } from './fleet-log.ts';
import { AgentHttpClient } from './http-client.ts';
import { readMachineFacts } from './machine-facts.ts';
import { FLEET_STATE_DIR, ReleaseLedger } from './release-ledger.ts';
import { transportFor } from './server-transport.ts';
import { type FlushResult, ReportSpool } from './spool.ts';
import { acquireUpdateLock } from './update-lock.ts';

/** What happened to one release in one update. */
export type ActionOutcome =
  | 'applied'
  | 'failed'
  | 'reverted'
  | 'revert-failed'
  /** Held back by minAgeDays / releasedBefore. */
  | 'held-back'
  /** check-only mode: downloaded and verified, not applied. */
  | 'verified'
  | 'download-failed'
  /** Another clpctl or the package manager was busy: nothing changed, tried again at the next check. */
  | 'busy'
  /** Downloaded and verified; applies inside the machine's maintenance window (`opensAt`). */
  | 'scheduled'
  /** Failed here before: not tried again unless the server's offer is a retry. */
  | 'failed-before';

export interface UpdateAction {
  name: string;
  releaseId: string;
  sha256: string;
  outcome: ActionOutcome;
  code?: string;
  message?: string;
  /** Id of the report spooled for this action. */
  reportId?: string;
  /** Bytes kept from an earlier, cut download. */
  resumedFrom?: number;
  /** With `scheduled`: when the maintenance window opens next (the daemon wakes then). */
  opensAt?: string;
}

export interface UpdateResult {
  mode: AgentConfig['mode'];
  /** The server that answered the poll, or null when none did. */
  server: string | null;
  actions: UpdateAction[];
  reports: Pick<FlushResult, 'accepted' | 'duplicates' | 'left'>;
  /** Set when the poll itself failed. */
  error?: { code: string; message: string };
  exitCode: ExitCode;
}

export interface UpdateOptions {
  root: string;
  engine: PatchEngine;
  log?: (line: string) => void;
  now?: () => Date;
  /** Called as download bytes arrive (the command draws a bar on a terminal). */
  onProgress?: (name: string, progress: DownloadProgress) => void;
  /** Offer again the releases that failed here before. */
  retryFailed?: boolean;
  /** Apply now even outside the machine's maintenance window (an operator at the machine). */
  ignoreWindow?: boolean;
  /** Stops between releases (a running apply is never cut); what is done is still reported. */
  signal?: AbortSignal;
}

/** Longest log excerpt sent with a report (the protocol allows 16 KiB). */
const LOG_EXCERPT_CHARS = 8_000;
const LOG_EXCERPT_LINES = 60;

function excerpt(lines: readonly string[]): string {
  const tail = lines.slice(-LOG_EXCERPT_LINES).join('\n');
  // The server refuses control characters (a colour escape from a package manager) and the half
  // of a character pair that the cut may leave: both become U+FFFD rather than lose the report.
  return cleanBlockText(tail.length > LOG_EXCERPT_CHARS ? tail.slice(-LOG_EXCERPT_CHARS) : tail);
}

function codeOf(error: unknown): string {
  return isClpError(error) ? error.code : 'CLP_E_INTERNAL';
}

/** Whether the engine refused only because the system was busy (nothing changed; try again later). */
function isBusy(error: unknown): boolean {
  return codeOf(error) === 'CLP_E_BUSY';
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** Worst outcome wins: a failed apply or revert over a busy system over a network problem over success. */
export function exitCodeOf(actions: readonly UpdateAction[], pollFailed: boolean): ExitCode {
  const failures = actions.filter((a) => a.outcome === 'failed' || a.outcome === 'revert-failed');
  if (failures.some((a) => a.code === 'CLP_E_ROLLBACK_FAILED' || a.code === 'CLP_E_RECOVERY_FAILED')) {
    return EXIT.recoveryFailed;
  }
  if (failures.length > 0) return EXIT.applyFailed;
  if (actions.some((a) => a.outcome === 'busy')) return EXIT.busy;
  if (pollFailed || actions.some((a) => a.outcome === 'download-failed')) return EXIT.network;
  return EXIT.ok;
}

/** The servers with the one that answered first, so later calls go where the poll went. */
function preferring(servers: readonly string[], first: string): string[] {
  return [first, ...servers.filter((s) => s !== first)];
}

/**
 * The installed list sent with the poll: patches the engine lists that came from a server (the
 * ledger knows their file hash), plus releases that failed here, so the server does not offer
 * them again. Ledger entries for patches removed by hand are dropped.
 */
async function installedForPoll(
  root: string,
  engine: PatchEngine,
  ledger: ReleaseLedger,
): Promise<InstalledPatch[]> {
  const patches = await engine.listPatches(root);
  const byName = new Map(patches.map((p) => [p.name, p.state]));
  const out: InstalledPatch[] = [];
  for (const entry of [...ledger.entries()]) {
    const engineState = byName.get(entry.name);
    if (entry.state === 'applied' && engineState === undefined) {
      await ledger.remove(entry.name);
      continue;
    }
    const state = entry.state === 'failed' || engineState === 'failed' ? 'failed' : 'installed';
    out.push({ name: entry.name, sha256: entry.sha256, series: entry.series, state });
  }
  return out;
}

/**
 * One check against the server: poll, take back what the server orders reverted, download and
 * verify each offered release, apply it through the engine, and report every result. Reports go
 * to the spool on disk first and are sent until the server has them.
 */
export async function runUpdate(options: UpdateOptions): Promise<UpdateResult> {
  const { root } = options;
  const now = options.now ?? (() => new Date());
  const echo = options.log ?? (() => {});
  const file = fleetLog(root, echo);
  try {
    return await updateWithLog(options, now, file.log, echo);
  } finally {
    await file.flush();
  }
}

async function updateWithLog(
  options: UpdateOptions,
  now: () => Date,
  log: (line: string) => void,
  echo: (line: string) => void,
): Promise<UpdateResult> {
  const { root } = options;
  const config = await loadConfig(root);
  if (config.mode === 'off') {
    log("mode is 'off': no check made (clpctl config set mode normal)");
    return {
      mode: 'off',
      server: null,
      actions: [],
      reports: { accepted: 0, duplicates: 0, left: 0 },
      exitCode: EXIT.ok,
    };
  }
  const enrolled = requireEnrolled(root, config);
  const release = await acquireUpdateLock(root, underRoot(root, join(FLEET_STATE_DIR, 'update.lock')));
  try {
    return await updateLocked(options, enrolled, now, log, echo);
  } finally {
    await release();
  }
}

async function updateLocked(
  options: UpdateOptions,
  config: EnrolledConfig,
  now: () => Date,
  log: (line: string) => void,
  echo: (line: string) => void,
): Promise<UpdateResult> {
  const { root, engine } = options;
  const client = new AgentHttpClient({
    servers: config.servers,
    credential: config.credential,
    http: config.http,
    log,
    transport: transportFor(root, config),
  });
  const spool = new ReportSpool(root, underRoot(root, config.spoolDir));
  const downloads = join(spool.dir, 'downloads');
  const ledger = await ReleaseLedger.load(root);
  if (options.retryFailed) {
    const cleared = await ledger.clearFailed();
    if (cleared > 0) log(`forgot ${cleared} failed release(s); the server may offer them again`);
  }

  // Reports left by an earlier run go first: the rollout's health depends on them.
  const early = await spool.flush(client);
  const totals = { accepted: early.accepted, duplicates: early.duplicates, left: early.left };

  const actions: UpdateAction[] = [];
  let poll: PollResponse;
  let server: string;
  try {
    const facts = await readMachineFacts(root);
    const installed = await installedForPoll(root, engine, ledger);
    const answer = await client.postJson(AGENT_PATHS.poll, { facts, installed }, PollResponse);
    poll = answer.value;
    server = answer.server;
  } catch (error) {
    if (!(error instanceof FleetError)) throw error;
    log(`poll failed: ${error.message}`);
    return {
      mode: config.mode,
      server: null,
      actions,
      reports: totals,
      error: { code: error.code, message: error.message },
      exitCode: exitCodeOf(actions, true),
    };
  }
  const servers = preferring(config.servers, server);
  log(`poll ${server}: ${poll.apply.length} to apply, ${poll.revert.length} to revert`);

  const stopping = () => {
    if (!options.signal?.aborted) return false;
    log('stopping: the remaining releases wait for the next check');
    return true;
  };
  for (const order of poll.revert) {
    if (stopping()) break;
    actions.push(await revertOne(order, options, ledger, spool, log, echo));
  }
  const window = poll.maintenanceWindow ?? undefined;
  if (window && poll.apply.length > 0) {
    const open = windowIsOpen(window, now());
    log(
      `maintenance window ${window.spec}: ${open ? 'open now' : `closed; applies from ${windowOpening(window, now()).opensAt.toISOString()}`}${!open && options.ignoreWindow ? ' (ignored: --outside-window)' : ''}`,
    );
  }
  for (const offer of poll.apply) {
    if (stopping()) break;
    actions.push(
      await applyOne(offer, {
        ...options,
        config,
        client,
        servers,
        downloads,
        ledger,
        spool,
        now,
        log,
        echo,
        window,
      }),
    );
  }

  await pruneDownloads(root, downloads, new Set(poll.apply.map((a) => a.sha256)), log);
  const late = await spool.flush(client, servers);
  totals.accepted += late.accepted;
  totals.duplicates += late.duplicates;
  totals.left = late.left;
  if (late.error) log(`${late.left} report(s) stay spooled for the next run: ${late.error.message}`);
  return { mode: config.mode, server, actions, reports: totals, exitCode: exitCodeOf(actions, false) };
}

/**
 * The lines about one release, kept for its report's log excerpt: fleet lines (`say`) go to
 * CLP.log too; engine lines (`heard`) are already there, so they are only shown.
 */
function transcript(log: (line: string) => void, echo: (line: string) => void) {
  const lines: string[] = [];
  const say = (line: string) => {
    lines.push(line);
    log(line);
  };
  const heard = (line: string) => {
    lines.push(line);
    echo(line);
  };
  return { lines, say, heard };
}

/** How a release is named in the update's result (`base`) and in its reports (`report`). */
function releaseIdentity(o: { name: string; releaseId: string; rolloutId: string | null; sha256: string }) {
  return {
    base: { name: o.name, releaseId: o.releaseId, sha256: o.sha256 },
    report: { releaseId: o.releaseId, rolloutId: o.rolloutId, name: o.name, sha256: o.sha256 },
  };
}

async function revertOne(
  order: ReleaseToRevert,
  options: UpdateOptions,
  ledger: ReleaseLedger,
  spool: ReportSpool,
  log: (line: string) => void,
  echo: (line: string) => void,
): Promise<UpdateAction> {
  const { lines, say, heard } = transcript(log, echo);
  const { base, report } = releaseIdentity(order);
  const entry = ledger.byName(order.name);
  if (!entry || entry.sha256 !== order.sha256) {
    // The server's view is stale: this exact release is not what is installed under that name.
    say(`revert ${order.name}: the installed patch is not release ${order.sha256}; nothing to take back`);
    const spooled = await spool.add({ ...report, status: 'reverted', log: excerpt(lines) });
    return { ...base, outcome: 'reverted', message: 'not installed here', reportId: spooled.id };
  }
  say(`revert ${order.name}: the server ordered it taken back`);
  try {
    await options.engine.uninstall(order.name, { root: options.root, log: heard });
  } catch (error) {
    if (isBusy(error)) {
      // Nothing was taken back: the order stands and the next check carries it out.
      say(`revert ${order.name} waits for the next check: ${codeOf(error)}: ${messageOf(error)}`);
      return { ...base, outcome: 'busy', code: codeOf(error), message: messageOf(error) };
    }
    if (codeOf(error) !== 'CLP_E_NOT_INSTALLED') {
      say(`revert ${order.name} failed: ${codeOf(error)}: ${messageOf(error)}`);
      const spooled = await spool.add({
        ...report,
        status: 'revert-failed',
        errorCode: codeOf(error),
        log: excerpt(lines),
      });
      return {
        ...base,
        outcome: 'revert-failed',
        code: codeOf(error),
        message: messageOf(error),
        reportId: spooled.id,
      };
    }
    say(`revert ${order.name}: it was no longer installed`);
  }
  await ledger.remove(order.name);
  const spooled = await spool.add({ ...report, status: 'reverted', log: excerpt(lines) });
  say(`reverted ${order.name}`);
  return { ...base, outcome: 'reverted', reportId: spooled.id };
}

interface ApplyContext extends UpdateOptions {
  config: EnrolledConfig;
  client: AgentHttpClient;
  servers: readonly string[];
  downloads: string;
  ledger: ReleaseLedger;
  spool: ReportSpool;
  now: () => Date;
  /** Fleet lines: to CLP.log and the caller. */
  log: (line: string) => void;
  /** Engine lines (already in CLP.log): to the caller only. */
  echo: (line: string) => void;
  /** The machine's maintenance window, when the server sets one. */
  window: MaintenanceWindow | undefined;
}

async function applyOne(offer: ReleaseToApply, ctx: ApplyContext): Promise<UpdateAction> {
  const { lines, say, heard } = transcript(ctx.log, ctx.echo);
  const { base, report } = releaseIdentity(offer);

  const held = cutoffReason(offer, ctx.config, ctx.now());
  if (held) {
    say(`hold back ${held}`);
    return { ...base, outcome: 'held-back', message: held };
  }
  const before = ctx.ledger.bySha(offer.sha256);
  if (before?.state === 'failed' && !offer.retry) {
    // The server offered it anyway (its view of this machine is stale): a failure is not retried
    // unless an operator asks, through the server (a retry offer) or here (--retry-failed).
    const message = `failed here at ${before.at}${before.errorCode ? ` (${before.errorCode})` : ''}; not tried again unless the offer is a retry (clpctl admin rollout retry-failed) or clpctl update --retry-failed`;
    say(`skip ${offer.name}: ${message}`);
    return { ...base, outcome: 'failed-before', message };
  }
  if (offer.retry && before?.state === 'failed')
    say(`${offer.name} failed here before; the server offers it again as a retry`);

  let file: string;
  let resumedFrom = 0;
  try {
    const result = await downloadRelease({
      client: ctx.client,
      release: offer,
      root: ctx.root,
      dir: ctx.downloads,
      servers: ctx.servers,
      onProgress: ctx.onProgress ? (p) => ctx.onProgress?.(offer.name, p) : undefined,
      onStart: async () => {
        await ctx.spool.add({ ...report, status: 'downloading' });
      },
    });
    file = result.file;
    resumedFrom = result.resumedFrom;
    say(
      `downloaded ${offer.name} (${offer.size} bytes, sha256 ${offer.sha256} checked${result.cached ? ', already on disk' : ''}${resumedFrom > 0 ? `, resumed at byte ${resumedFrom}` : ''})`,
    );
  } catch (error) {
    if (!(error instanceof FleetError)) throw error;
    // A network problem is not the patch's failure: nothing is reported against the rollout,
    // and the next check resumes the download.
    say(`download ${offer.name} failed: ${error.code}: ${error.message}`);
    return { ...base, outcome: 'download-failed', code: error.code, message: error.message };
  }

  if (ctx.config.mode === 'check-only') {
    try {
      const checked = await ctx.engine.check(file, { root: ctx.root, log: heard });
      const message =
        checked.problems.length === 0
          ? 'verified; would apply'
          : `verified; would not apply: ${checked.problems.join('; ')}`;
      say(`check-only ${offer.name}: ${message}`);
      return { ...base, outcome: 'verified', message };
    } catch (error) {
      say(`check-only ${offer.name}: ${codeOf(error)}: ${messageOf(error)}`);
      return { ...base, outcome: 'verified', code: codeOf(error), message: messageOf(error) };
    }
  }

  if (ctx.window && !ctx.ignoreWindow && !windowIsOpen(ctx.window, ctx.now())) {
    // Downloaded and verified now, so that the window is spent applying, not fetching.
    let problems: string[] = [];
    try {
      problems = (await ctx.engine.check(file, { root: ctx.root, log: heard })).problems;
    } catch (error) {
      problems = [`${codeOf(error)}: ${messageOf(error)}`];
    }
    const { opensAt, closesAt } = windowOpening(ctx.window, ctx.now());
    const message = `waits for the maintenance window ${ctx.window.spec}: opens ${opensAt.toISOString()}, closes ${closesAt.toISOString()}${problems.length > 0 ? `; the check found: ${problems.join('; ')}` : ''}`;
    say(`${offer.name} ${message}`);
    const spooled = await ctx.spool.add({
      ...report,
      status: 'scheduled',
      scheduledFor: closesAt.toISOString(),
    });
    return { ...base, outcome: 'scheduled', message, reportId: spooled.id, opensAt: opensAt.toISOString() };
  }

  const entry = {
    name: offer.name,
    series: offer.series,
    sha256: offer.sha256,
    releaseId: offer.releaseId,
    rolloutId: offer.rolloutId,
  };
  try {
    await ctx.engine.install(file, { root: ctx.root, log: heard });
  } catch (error) {
    const code = codeOf(error);
    if (isBusy(error)) {
      // Not the patch's failure: nothing is reported against the rollout, the download is kept,
      // and the next check applies it.
      say(`apply ${offer.name} waits for the next check: ${code}: ${messageOf(error)}`);
      return { ...base, outcome: 'busy', code, message: messageOf(error) };
    }
    if (code === 'CLP_E_ALREADY_INSTALLED') {
      // Installed by hand from the same release: adopt it, so the server can count and revert it.
      say(`${offer.name} is already installed here; recorded as this release`);
    } else {
      say(`apply ${offer.name} failed: ${code}: ${messageOf(error)}`);
      await ctx.ledger.put({ ...entry, state: 'failed', at: ctx.now().toISOString(), errorCode: code });
      const spooled = await ctx.spool.add({
        ...report,
        status: 'failed',
        errorCode: code.slice(0, 64),
        log: excerpt(lines),
      });
      await rm(file, { force: true });
      return { ...base, outcome: 'failed', code, message: messageOf(error), reportId: spooled.id };
    }
  }
  await ctx.ledger.put({ ...entry, state: 'applied', at: ctx.now().toISOString() });
  say(`applied ${offer.name}`);
  const spooled = await ctx.spool.add({ ...report, status: 'applied', log: excerpt(lines) });
  // The engine keeps what uninstall needs; the download is no longer useful.
  await rm(file, { force: true });
  return { ...base, outcome: 'applied', reportId: spooled.id, ...(resumedFrom > 0 ? { resumedFrom } : {}) };
}
