import { ROLLOUT_STATES } from '@clp/protocol';
import type { Command } from 'commander';
import { printResult } from '../output.ts';
import type { ContextOf } from './admin-context.ts';
import type {
  AuditEntry,
  Explanation,
  Release,
  RetryFailedResult,
  Rollout,
  RolloutPreview,
  RolloutTimeline,
} from './api-types.ts';
import { oneOf, parseDuration, parseInteger, parseList, parseNumber } from './duration.ts';
import { AdminError } from './errors.ts';
import { resolveRelease } from './resolve-release.ts';
import { resolveRollout } from './resolve-rollout.ts';
import { fields, table, when, whenExact } from './table.ts';

/** The server's defaults, sent when only one half of the failure threshold is given. */
const DEFAULT_THRESHOLD = { maxFailureRate: 0.05, minReports: 10 };

interface CreateOptions {
  tier: string;
  stages: string;
  stageMinMinutes: string;
  failureThreshold?: string;
  minReports?: string;
  maxFailures?: string;
  minApplied?: string;
  approval?: string;
  silenceTimeout?: string;
  completionWindow?: string;
  tag: string[];
  arch: string[];
  os: string[];
}

/** Builds the POST /v1/rollouts body from the command line (checked here so mistakes say which option). */
export function rolloutBody(releaseId: string, o: CreateOptions): Record<string, unknown> {
  const percents = parseList(o.stages).map((p) => parseNumber(p, '--stages', 0.001, 100));
  if (percents.length === 0)
    throw new AdminError(
      'CLP_E_ADMIN_BAD_OPTION',
      '--stages: give at least one percentage, e.g. 1,10,50,100',
    );
  if (percents.some((p, i) => i > 0 && p < percents[i - 1]!)) {
    throw new AdminError('CLP_E_ADMIN_BAD_OPTION', `--stages ${o.stages}: percentages must not decrease`);
  }
  const minutes = parseInteger(o.stageMinMinutes, '--stage-min-minutes', 0, 365 * 24 * 60);
  const gates = stageGates(o, percents.length);
  const body: Record<string, unknown> = {
    releaseId,
    tier: o.tier,
    stages: percents.map((percent, i) => ({ percent, minDurationSeconds: minutes * 60, ...gates[i] })),
  };
  if (o.silenceTimeout !== undefined)
    body.silenceTimeoutSeconds = parseDuration(o.silenceTimeout, '--silence-timeout');
  if (o.completionWindow !== undefined)
    body.completionWindowSeconds = parseDuration(o.completionWindow, '--completion-window');
  const selector: Record<string, string[]> = {};
  const tags = parseList(o.tag);
  const arch = parseList(o.arch);
  const os = parseList(o.os);
  if (tags.length) selector.tags = tags;
  if (arch.length) selector.arch = arch;
  if (os.length) selector.os = os;
  body.selector = selector;
  if (o.failureThreshold !== undefined || o.minReports !== undefined || o.maxFailures !== undefined) {
    body.failureThreshold = {
      ...(o.maxFailures === undefined
        ? {}
        : { maxFailures: parseInteger(o.maxFailures, '--max-failures', 1, 1_000_000) }),
      maxFailureRate:
        o.failureThreshold === undefined
          ? DEFAULT_THRESHOLD.maxFailureRate
          : parseNumber(o.failureThreshold, '--failure-threshold', 0.0001, 1),
      minReports:
        o.minReports === undefined
          ? DEFAULT_THRESHOLD.minReports
          : parseInteger(o.minReports, '--min-reports', 1, 1_000_000),
    };
  }
  return body;
}

/**
 * The evidence and approval gates of each stage: `--min-applied` (N machines or N %, one value for
 * every stage but the last, or a comma list per stage with - for none) and `--approval` (stage
 * numbers, or all). The last stage has no gate: it waits for every machine to answer instead.
 */
function stageGates(o: CreateOptions, count: number): Array<Record<string, unknown>> {
  const gates: Array<Record<string, unknown>> = Array.from({ length: count }, () => ({}));
  if (o.minApplied !== undefined) {
    const values = parseList(o.minApplied);
    if (values.length !== 1 && values.length !== count)
      throw new AdminError(
        'CLP_E_ADMIN_BAD_OPTION',
        `--min-applied ${o.minApplied}: give one value for every stage, or one per stage (${count})`,
      );
    for (let i = 0; i < count - 1; i++) {
      const v = values.length === 1 ? values[0]! : values[i]!;
      if (v === '-' || v === '0') continue;
      if (v.endsWith('%'))
        gates[i]!.minAppliedPercent = parseNumber(v.slice(0, -1), '--min-applied', 0.01, 100);
      else gates[i]!.minAppliedCount = parseInteger(v, '--min-applied', 1, 1_000_000);
    }
  }
  if (o.approval !== undefined) {
    const stages =
      o.approval === 'all'
        ? Array.from({ length: count - 1 }, (_, i) => i + 1)
        : parseList(o.approval).map((v) => parseInteger(v, '--approval', 1, count));
    for (const n of stages) {
      if (n === count)
        throw new AdminError(
          'CLP_E_ADMIN_BAD_OPTION',
          `--approval ${o.approval}: stage ${n} is the last; it completes when every machine answered, not by approval`,
        );
      gates[n - 1]!.requireApproval = true;
    }
  }
  return gates;
}

function describeSelector(s: Rollout['selector']): string {
  const parts = [
    s.tags?.length ? `tags ${s.tags.join(',')}` : '',
    s.arch?.length ? `arch ${s.arch.join(',')}` : '',
    s.os?.length ? `os ${s.os.join(',')}` : '',
  ].filter(Boolean);
  return parts.join('; ') || 'all machines of the tier';
}

function rolloutFields(r: Rollout): string {
  const c = r.counters;
  return fields([
    ['id', r.id],
    ['release', `${r.releaseName} (${r.releaseId})`],
    ['tier', r.tier],
    ['selector', describeSelector(r.selector)],
    ['state', r.haltReason ? `${r.state}: ${r.haltReason}` : r.state],
    [
      'stages',
      r.stages
        .map(
          (s, i) =>
            `${i === r.currentStage ? '[' : ''}${s.percent}%${stageGateText(s, i === r.approvedStage)}${i === r.currentStage ? ']' : ''}`,
        )
        .join(' → '),
    ],
    ['waiting for', r.gate ? `${r.gate.kind}: ${r.gate.reason}` : '-'],
    ['offered', `${r.percent}% of the tier`],
    ['stage since', when(r.stageStartedAt)],
    ['next stage', when(r.nextStageAt)],
    ['completes by', when(r.completesBy)],
    [
      'machines',
      r.machines
        ? `${r.machines.targeted} targeted: ${r.machines.answered} answered (${r.machines.applied} applied, ${r.machines.failed} failed), ${r.machines.notAnswered} not answered yet (${r.machines.silent} silent, ${r.machines.waitingForWindow} waiting for their window)`
        : '-',
    ],
    [
      'outcomes',
      `applied ${c.applied}, failed ${c.failed}, silent ${c.silent}, reverted ${c.reverted}, revert-failed ${c.revertFailed}`,
    ],
    [
      'failure rate',
      `${(r.failureRate * 100).toFixed(1)}% (halts at ${r.failureThreshold.maxFailureRate * 100}% after ${r.failureThreshold.minReports} machines${r.failureThreshold.maxFailures ? `, or at ${r.failureThreshold.maxFailures} failures` : ''}; silent after ${r.silenceTimeoutSeconds / 3600} h)`,
    ],
    ['created', `${when(r.createdAt)} by ${r.createdBy}`],
  ]);
}

function rolloutTable(rollouts: readonly Rollout[]): string {
  return table(
    ['ID', 'RELEASE', 'TIER', 'STATE', 'STAGE', 'PERCENT', 'APPLIED', 'FAILED', 'NEXT STAGE'],
    rollouts.map((r) => [
      r.id,
      r.releaseName,
      r.tier,
      r.state,
      `${r.currentStage + 1}/${r.stages.length}`,
      `${r.percent}%`,
      r.counters.applied,
      r.counters.failed,
      when(r.nextStageAt),
    ]),
  );
}

const collect = (value: string, previous: string[]): string[] => [...previous, value];

function stageGateText(s: Rollout['stages'][number], approved: boolean): string {
  const parts = [
    s.minAppliedPercent !== undefined ? `≥${s.minAppliedPercent}% applied` : '',
    s.minAppliedCount !== undefined ? `≥${s.minAppliedCount} applied` : '',
    s.requireApproval ? (approved ? 'approved' : 'approval') : '',
  ].filter(Boolean);
  return parts.length ? ` (${parts.join(', ')})` : '';
}

/** The options of `rollout create` and `rollout preview`: what the rollout would be. */
function rolloutOptions(command: Command): Command {
  return command
    .argument('<release>', 'id (sha256), a unique prefix of it, or the patch name')
    .requiredOption('--tier <tier>', 'the tier to roll out to')
    .option('--stages <percents>', 'percent of machines per stage, increasing', '1,10,50,100')
    .option('--stage-min-minutes <n>', 'minimum time each stage lasts before the next starts', '60')
    .option(
      '--failure-threshold <rate>',
      'halt when the failure rate exceeds this (0-1; server default 0.05)',
    )
    .option('--min-reports <n>', 'only judge the failure rate after this many reports (server default 10)')
    .option('--max-failures <n>', 'halt after this many failed (or silent) machines, whatever the rate')
    .option(
      '--min-applied <n|n%>',
      'leave a stage only once N machines (or N % of its cohort) reported applied; one value for all stages or a comma list per stage (- for none)',
    )
    .option(
      '--approval <stages>',
      "stage numbers (e.g. 1,2) or 'all' that wait for 'rollout approve' before the next",
    )
    .option(
      '--silence-timeout <duration>',
      'an offered machine silent this long counts as failed (e.g. 2d; server default twice the poll interval)',
    )
    .option(
      '--completion-window <duration>',
      'the last stage completes when every machine answered, or after this long (default 3d)',
    )
    .option('--tag <tag>', 'only machines with this tag (k=v or a word); repeat for more', collect, [])
    .option(
      '--arch <arch>',
      'only this architecture (x86_64, aarch64); repeat or comma-separate',
      collect,
      [],
    )
    .option('--os <id>', 'only this OS id (e.g. vincent, debian); repeat or comma-separate', collect, []);
}

/** rollout create/preview/list/show/timeline/pause/resume/abort/revert/approve/retry-failed/audit/why. */
export function registerRolloutCommands(admin: Command, contextOf: ContextOf): void {
  const rollout = admin.command('rollout').description('staged rollouts of a release to a tier');
  rolloutOptions(rollout.command('create').description('start a staged rollout of a release to a tier'))
    .option(
      '--id <uuid>',
      "the id 'rollout preview' proposed: the rollout then reaches exactly the machines it counted",
    )
    .action(async (ref: string, o: CreateOptions & { id?: string }, cmd: Command) => {
      const ctx = contextOf(cmd);
      const id = await resolveRelease(ctx.client, ref);
      const body = { ...rolloutBody(id, o), ...(o.id !== undefined ? { id: o.id } : {}) };
      const before = await ctx.client.get<Release>(`/v1/releases/${id}`);
      const created = await ctx.client.post<Rollout>('/v1/rollouts', body);
      // The server promotes a release to the tier it is rolled out to; say so when that happened now.
      const promoted = !before.tiers.includes(created.tier);
      printResult(ctx, { ...created, promoted }, () =>
        [
          `rollout ${created.id} started`,
          ...(promoted
            ? [`${created.releaseName} was not in tier ${created.tier}; this rollout promoted it there`]
            : []),
          rolloutFields(created),
        ].join('\n'),
      );
    });
  rolloutOptions(
    rollout
      .command('preview')
      .description(
        'how many machines each stage of a rollout would reach now, without creating it; create it with the --id shown to reach exactly those',
      ),
  ).action(async (ref: string, o: CreateOptions, cmd: Command) => {
    const ctx = contextOf(cmd);
    const id = await resolveRelease(ctx.client, ref);
    const p = await ctx.client.post<RolloutPreview>('/v1/rollouts/preview', rolloutBody(id, o));
    printResult(ctx, p, () =>
      [
        `${p.matching} of the ${p.inTier} machines of tier ${o.tier} match the selector and the release's architecture`,
        table(
          ['STAGE', 'PERCENT', 'MACHINES'],
          p.stages.map((stage, i) => [i + 1, `${stage.percent}%`, stage.machines]),
        ),
        `create it with --id ${p.rolloutId} to reach exactly these machines`,
      ].join('\n'),
    );
  });
  rollout
    .command('list', { isDefault: true })
    .description('list rollouts with their progress')
    .option('--state <states>', `only these states, comma-separated (${ROLLOUT_STATES.join(', ')})`)
    .option('--tier <tier>', 'only this tier')
    .option('--release <release>', 'only this release (id, prefix or name)')
    .option('--limit <n>', 'at most N rollouts, newest first (1-1000)', '100')
    .option('--offset <n>', 'skip the first N', '0')
    .action(
      async (
        o: { state?: string; tier?: string; release?: string; limit: string; offset: string },
        cmd: Command,
      ) => {
        const states = o.state === undefined ? [] : parseList(o.state);
        for (const state of states) oneOf(state, '--state', ROLLOUT_STATES);
        const ctx = contextOf(cmd);
        const releaseId = o.release ? await resolveRelease(ctx.client, o.release) : undefined;
        const answer = await ctx.client.get<{ rollouts: Rollout[]; total: number }>('/v1/rollouts', {
          state: states.length ? states.join(',') : undefined,
          tier: o.tier,
          releaseId,
          limit: parseInteger(o.limit, '--limit', 1, 1000),
          offset: parseInteger(o.offset, '--offset', 0, Number.MAX_SAFE_INTEGER),
        });
        printResult(ctx, answer, () =>
          [rolloutTable(answer.rollouts), `${answer.rollouts.length} of ${answer.total} rollouts`].join('\n'),
        );
      },
    );
  rollout
    .command('show')
    .description('show a rollout: stage, percent, counters, failure rate, next stage time')
    .argument('<id>', 'rollout id, or a unique prefix of it')
    .action(async (ref: string, _o: unknown, cmd: Command) => {
      const ctx = contextOf(cmd);
      const id = await resolveRollout(ctx.client, ref);
      const r = await ctx.client.get<Rollout>(`/v1/rollouts/${encodeURIComponent(id)}`);
      printResult(ctx, r, () => rolloutFields(r));
    });
  rollout
    .command('timeline')
    .description(
      "each offered machine's latest outcome over time (applied, failed, silent), with the failure rate against the halt threshold",
    )
    .argument('<id>', 'rollout id, or a unique prefix of it')
    .option('--buckets <n>', 'at most N rows (time buckets, 1-1000)', '24')
    .option('--all', 'show the buckets without any outcome too')
    .action(async (ref: string, o: { buckets: string; all?: boolean }, cmd: Command) => {
      const ctx = contextOf(cmd);
      const id = await resolveRollout(ctx.client, ref);
      const t = await ctx.client.get<RolloutTimeline>(`/v1/rollouts/${encodeURIComponent(id)}/timeline`, {
        buckets: parseInteger(o.buckets, '--buckets', 1, 1000),
      });
      const rate = (r: number) => `${(r * 100).toFixed(1)}%`;
      const rows = o.all ? t.points : t.points.filter((p) => p.applied + p.failed + p.silent > 0);
      printResult(ctx, t, () =>
        [
          table(
            [
              'FROM',
              'APPLIED',
              'FAILED',
              'SILENT',
              'TOTAL APPLIED',
              'TOTAL FAILED',
              'TOTAL SILENT',
              'FAILURE RATE',
            ],
            rows.map((p) => [
              whenExact(p.at),
              p.applied,
              p.failed,
              p.silent,
              p.appliedTotal,
              p.failedTotal,
              p.silentTotal,
              rate(p.failureRate),
            ]),
          ),
          `buckets of ${t.bucketSeconds / 60} min from ${whenExact(t.from)}; halts at ${rate(t.maxFailureRate)} once ${t.minReports} machines have an outcome`,
        ].join('\n'),
      );
    });
  const actions = {
    pause: 'pause a rollout: no new machine is offered the release',
    resume: 'resume a paused rollout',
    abort: 'abort a rollout: it offers nothing more; installed machines keep the release',
    revert: 'revert a rollout: machines that have the release take it back at their next poll',
  } as const;
  for (const [action, description] of Object.entries(actions)) {
    rollout
      .command(action)
      .description(description)
      .argument('<id>', 'rollout id, or a unique prefix of it')
      .option('--reason <text>', 'why (kept in the audit log)')
      .action(async (ref: string, o: { reason?: string }, cmd: Command) => {
        const ctx = contextOf(cmd);
        const id = await resolveRollout(ctx.client, ref);
        const r = await ctx.client.post<Rollout>(
          `/v1/rollouts/${encodeURIComponent(id)}/${action}`,
          o.reason ? { reason: o.reason } : {},
        );
        printResult(ctx, r, () => `rollout ${r.id} (${r.releaseName} to ${r.tier}) is now ${r.state}`);
      });
  }
  rollout
    .command('approve')
    .description("approve the current stage's gate: it moves on once its time and evidence are there too")
    .argument('<id>', 'rollout id, or a unique prefix of it')
    .requiredOption('--reason <text>', 'why (kept in the audit log with who approved)')
    .action(async (ref: string, o: { reason: string }, cmd: Command) => {
      const ctx = contextOf(cmd);
      const id = await resolveRollout(ctx.client, ref);
      const r = await ctx.client.post<Rollout>(`/v1/rollouts/${encodeURIComponent(id)}/approve`, {
        reason: o.reason,
      });
      printResult(
        ctx,
        r,
        () => `rollout ${r.id}: stage ${(r.approvedStage ?? 0) + 1} approved\n${rolloutFields(r)}`,
      );
    });
  rollout
    .command('retry-failed')
    .description(
      'offer the release again to the machines whose last outcome was failed (or that were silent), without restarting the rollout',
    )
    .argument('<id>', 'rollout id, or a unique prefix of it')
    .option('--reason <text>', 'why, e.g. the cause that was fixed (kept in the audit log)')
    .action(async (ref: string, o: { reason?: string }, cmd: Command) => {
      const ctx = contextOf(cmd);
      const id = await resolveRollout(ctx.client, ref);
      const r = await ctx.client.post<RetryFailedResult>(
        `/v1/rollouts/${encodeURIComponent(id)}/retry-failed`,
        o.reason ? { reason: o.reason } : {},
      );
      printResult(
        ctx,
        r,
        () => `rollout ${r.id} (${r.state}): ${r.retried} machine(s) are offered the release again`,
      );
    });
  rollout
    .command('audit')
    .description('who did what to a rollout, and when (stage changes and halts included)')
    .argument('<id>', 'rollout id, or a unique prefix of it')
    .action(async (ref: string, _o: unknown, cmd: Command) => {
      const ctx = contextOf(cmd);
      const id = await resolveRollout(ctx.client, ref);
      const answer = await ctx.client.get<{ entries: AuditEntry[] }>(
        `/v1/rollouts/${encodeURIComponent(id)}/audit`,
      );
      printResult(ctx, answer, () =>
        table(
          ['AT', 'ACTOR', 'ACTION', 'DETAILS'],
          answer.entries.map((e) => [whenExact(e.at), e.actor, e.action, JSON.stringify(e.details)]),
        ),
      );
    });
  rollout
    .command('why')
    .description('why a machine has or has not been offered a release')
    .argument('<machine>', 'machine id')
    .argument('<release>', 'id (sha256), a unique prefix of it, or the patch name')
    .action(async (machine: string, ref: string, _o: unknown, cmd: Command) => {
      const ctx = contextOf(cmd);
      const release = await resolveRelease(ctx.client, ref);
      const e = await ctx.client.get<Explanation>(`/v1/machines/${encodeURIComponent(machine)}/explain`, {
        release,
      });
      printResult(ctx, e, () =>
        [
          // The summary starts with the verdict in words ("offered: …", "not offered: …").
          e.summary,
          `release ${e.releaseName} (${e.releaseId})${e.yanked ? ', yanked' : ''}; on the machine: ${e.installed}`,
          `maintenance window: ${e.maintenanceWindow ?? 'none'}`,
          ...e.offers.map((o) => `offered by ${o.rolloutId}: ${o.outcome}: ${o.reason}`),
          '',
          table(
            ['ROLLOUT', 'STATE', 'TIER', 'OUTCOME', 'RULE', 'REASON'],
            e.rollouts.map((r) => [r.rolloutId, r.state, r.tier, r.outcome, r.rule, r.reason]),
          ),
        ].join('\n'),
      );
    });
}
