import { MachineFacts, MachineListQuery, ReportStatus } from '@clp/protocol';
import type { Command } from 'commander';
import { printResult } from '../output.ts';
import type { ContextOf } from './admin-context.ts';
import type { Machine, Overview, Report, Tier } from './api-types.ts';
import { oneOf, parseDuration, parseInteger } from './duration.ts';
import { AdminError } from './errors.ts';
import { resolveRelease } from './resolve-release.ts';
import { resolveRollout } from './resolve-rollout.ts';
import { fields, short, table, when, whenExact } from './table.ts';

const ARCHITECTURES = MachineFacts.shape.arch.options;
const REPORT_STATUSES = ReportStatus.options;
const SEEN = MachineListQuery.shape.seen.unwrap().options;
const MACHINE_ORDERS = MachineListQuery.shape.sort.removeDefault().options;

function installedNames(m: Machine): string {
  return (
    m.installed.map((p) => `${String(p.name)}${p.state === 'failed' ? '(failed)' : ''}`).join(',') || '-'
  );
}

/** machines, reports, overview, tiers. */
export function registerFleetCommands(admin: Command, contextOf: ContextOf): void {
  const machines = admin.command('machines').description('enrolled machines');
  machines
    .command('list', { isDefault: true })
    .description('list machines')
    .option('--tier <tier>', 'only this tier')
    .option('--tag <tag>', 'only machines with this tag')
    .option('--arch <arch>', `only this architecture (${ARCHITECTURES.join(', ')})`)
    .option('--os <id>', 'only this OS id')
    .option('--hostname <name>', 'only this host name')
    .option('--search <text>', 'part of the host name or machine id, in any case')
    .option('--installed <release>', 'only machines with this release installed (id, prefix or name)')
    .option('--failed <release>', 'only machines where this release failed and was rolled back')
    .option('--seen <when>', `day, week (seen within), stale (not for 7 days, or never) or never`)
    .option('--revoked', 'only revoked machines')
    .option('--active', 'only machines not revoked')
    .option('--sort <order>', `${MACHINE_ORDERS.join(', ')}`, 'hostname')
    .option('--limit <n>', 'at most N machines (1-1000)', '100')
    .option('--offset <n>', 'skip the first N', '0')
    .action(async (o: Record<string, string | boolean | undefined>, cmd: Command) => {
      const text = (k: string) => (typeof o[k] === 'string' ? (o[k] as string) : undefined);
      if (text('arch') !== undefined) oneOf(text('arch')!, '--arch', ARCHITECTURES);
      if (text('seen') !== undefined) oneOf(text('seen')!, '--seen', SEEN);
      oneOf(text('sort') ?? 'hostname', '--sort', MACHINE_ORDERS);
      if (o.revoked && o.active)
        throw new AdminError('CLP_E_ADMIN_BAD_OPTION', '--revoked and --active: give one of them');
      const ctx = contextOf(cmd);
      const release = (k: string) => (text(k) ? resolveRelease(ctx.client, text(k)!) : undefined);
      const answer = await ctx.client.get<{ machines: Machine[]; total: number }>('/v1/machines', {
        tier: text('tier'),
        tag: text('tag'),
        arch: text('arch'),
        os: text('os'),
        hostname: text('hostname'),
        q: text('search'),
        installed: await release('installed'),
        failed: await release('failed'),
        seen: text('seen'),
        revoked: o.revoked ? 'true' : o.active ? 'false' : undefined,
        sort: text('sort'),
        limit: parseInteger(text('limit') ?? '100', '--limit', 1, 1000),
        offset: parseInteger(text('offset') ?? '0', '--offset', 0, Number.MAX_SAFE_INTEGER),
      });
      printResult(ctx, answer, () =>
        [
          table(
            ['ID', 'HOSTNAME', 'TIER', 'ARCH', 'OS', 'TAGS', 'LAST SEEN', 'INSTALLED'],
            answer.machines.map((m) => [
              m.id,
              m.hostname,
              m.tier,
              m.arch,
              `${m.os.id} ${m.os.version}`.trim(),
              m.tags.join(',') || '-',
              when(m.lastSeenAt),
              installedNames(m),
            ]),
          ),
          `${answer.machines.length} of ${answer.total} machines`,
        ].join('\n'),
      );
    });
  machines
    .command('show')
    .description('show a machine')
    .argument('<id>', 'machine id')
    .action(async (id: string, _o: unknown, cmd: Command) => {
      const ctx = contextOf(cmd);
      const m = await ctx.client.get<Machine>(`/v1/machines/${encodeURIComponent(id)}`);
      printResult(ctx, m, () =>
        fields([
          ['id', m.id],
          ['hostname', m.hostname],
          ['tier', m.tier],
          ['tags', m.tags.join(', ')],
          ['arch', m.arch],
          ['os', `${m.os.id} ${m.os.version}`],
          ['enrolled', when(m.enrolledAt)],
          ['last seen', when(m.lastSeenAt)],
          ['installed', installedNames(m)],
        ]),
      );
    });

  machines
    .command('revoke')
    .description(
      "revoke a machine's credential: its next call is refused, and its id enrolls again only after a rekey",
    )
    .argument('<id>', 'machine id')
    .action(async (id: string, _o: unknown, cmd: Command) => {
      const ctx = contextOf(cmd);
      const m = await ctx.client.post<Machine>(`/v1/machines/${encodeURIComponent(id)}/revoke`, {});
      printResult(ctx, m, () => `revoked the credential of ${m.id} (${m.hostname})`);
    });
  machines
    .command('rekey')
    .description(
      'let a machine enroll again under its id (reinstalled, or its credential lost): its credential stops working now, and its next clpctl enroll is let in without it',
    )
    .argument('<id>', 'machine id')
    .option(
      '--expires <duration>',
      'how long the machine has to enroll again (e.g. 2h, 1d, 7d; at most 30d)',
      '1d',
    )
    .option('--reason <text>', 'why (kept in the server log)')
    .action(async (id: string, o: { expires: string; reason?: string }, cmd: Command) => {
      const ctx = contextOf(cmd);
      const seconds = parseDuration(o.expires, '--expires');
      if (seconds < 60 || seconds > 30 * 86_400) {
        throw new AdminError('CLP_E_ADMIN_BAD_OPTION', `--expires ${o.expires}: from 1m to 30d`);
      }
      const m = await ctx.client.post<Machine>(`/v1/machines/${encodeURIComponent(id)}/rekey`, {
        expiresInSeconds: seconds,
        ...(o.reason !== undefined ? { reason: o.reason } : {}),
      });
      printResult(
        ctx,
        m,
        () =>
          `re-keyed ${m.id} (${m.hostname}): its old credential is refused; it may enroll again until ${when(m.rekeyUntil)} (clpctl enroll URL TOKEN on the machine)`,
      );
    });

  admin
    .command('reports')
    .description('agent reports, newest first (reports that arrived together: last event first)')
    .option('--rollout <id>', 'only reports of this rollout (id or a unique prefix)')
    .option('--machine <id>', 'only reports of this machine')
    .option('--status <status>', `only this status (${REPORT_STATUSES.join(', ')})`)
    .option(
      '--release <release>',
      'only this release (id, prefix or name; filtered among the fetched reports)',
    )
    .option('--limit <n>', 'fetch at most N reports (1-1000)', '100')
    .option('--offset <n>', 'skip the first N (newest) reports', '0')
    .action(async (o: Record<string, string | undefined>, cmd: Command) => {
      if (o.status !== undefined) oneOf(o.status, '--status', REPORT_STATUSES);
      const limit = parseInteger(o.limit ?? '100', '--limit', 1, 1000);
      const offset = parseInteger(o.offset ?? '0', '--offset', 0, Number.MAX_SAFE_INTEGER);
      const ctx = contextOf(cmd);
      const releaseId = o.release ? await resolveRelease(ctx.client, o.release) : undefined;
      const rollout = o.rollout ? await resolveRollout(ctx.client, o.rollout) : undefined;
      const answer = await ctx.client.get<{ reports: Report[]; total: number }>('/v1/reports', {
        rollout,
        machine: o.machine,
        status: o.status,
        limit,
        offset,
      });
      const reports = releaseId ? answer.reports.filter((r) => r.releaseId === releaseId) : answer.reports;
      printResult(ctx, releaseId ? { reports } : answer, () =>
        [
          table(
            ['AT', 'MACHINE', 'RELEASE', 'NAME', 'STATUS', 'ERROR', 'ROLLOUT'],
            reports.map((r) => [
              whenExact(r.at),
              r.machineId,
              short(r.releaseId),
              r.name,
              r.status,
              r.errorCode,
              r.rolloutId,
            ]),
          ),
          ...(releaseId ? [] : [`${answer.reports.length} of ${answer.total} reports`]),
        ].join('\n'),
      );
    });

  admin
    .command('overview')
    .description(
      'the fleet at a glance: machines enrolled and seen, machines per installed patch, moving rollouts, recent failures',
    )
    .action(async (_o: unknown, cmd: Command) => {
      const ctx = contextOf(cmd);
      const o = await ctx.client.get<Overview>('/v1/overview');
      printResult(ctx, o, () => {
        const m = o.machines;
        return [
          `machines: ${m.enrolled} enrolled, ${m.seenLastDay} seen in the last day, ${m.notSeenForWeek} not seen for a week (or never), ${m.revoked} revoked`,
          '',
          'installed patches',
          table(
            ['NAME', 'SHA256', 'INSTALLED', 'FAILED'],
            o.installed.map((p) => [p.name, short(p.sha256), p.installed, p.failed]),
          ),
          '',
          'rollouts in progress',
          table(
            ['ID', 'RELEASE', 'TIER', 'STATE', 'STAGE', 'PERCENT', 'APPLIED', 'FAILED'],
            o.rollouts.map((r) => [
              r.id,
              r.releaseName,
              r.tier,
              r.state,
              `${r.currentStage + 1}/${r.stages.length}`,
              `${r.percent}%`,
              r.counters.applied,
              r.counters.failed + r.counters.silent,
            ]),
          ),
          '',
          'recent failures',
          table(
            ['AT', 'MACHINE', 'HOSTNAME', 'NAME', 'STATUS', 'ERROR', 'ROLLOUT'],
            o.recentFailures.map((f) => [
              whenExact(f.at),
              f.machineId,
              f.hostname,
              f.name,
              f.status,
              f.errorCode,
              f.rolloutId,
            ]),
          ),
        ].join('\n');
      });
    });

  const tiers = admin.command('tiers').description('release tiers (edge, beta, stable, …)');
  const tierTable = (list: readonly Tier[]) =>
    table(
      ['POSITION', 'NAME', 'DESCRIPTION'],
      list.map((t) => [t.position, t.name, t.description || '-']),
    );
  tiers
    .command('list', { isDefault: true })
    .description('list tiers in order')
    .action(async (_o: unknown, cmd: Command) => {
      const ctx = contextOf(cmd);
      const answer = await ctx.client.get<{ tiers: Tier[] }>('/v1/tiers');
      printResult(ctx, answer, () => tierTable(answer.tiers));
    });
  tiers
    .command('create')
    .description('create a tier (placed last unless --position is given)')
    .argument('<name>', 'lowercase letters, digits and -')
    .option('--position <n>', 'place in the order (0 first)')
    .option('--description <text>', 'what the tier is for')
    .action(async (name: string, o: { position?: string; description?: string }, cmd: Command) => {
      const ctx = contextOf(cmd);
      const t = await ctx.client.post<Tier>('/v1/tiers', {
        name,
        ...(o.position !== undefined ? { position: parseInteger(o.position, '--position', 0, 1000) } : {}),
        ...(o.description !== undefined ? { description: o.description } : {}),
      });
      printResult(ctx, t, () => `created tier ${t.name} at position ${t.position}`);
    });
  tiers
    .command('set')
    .description("change a tier's position or description")
    .argument('<name>', 'tier name')
    .option('--position <n>', 'place in the order (0 first)')
    .option('--description <text>', 'what the tier is for')
    .action(async (name: string, o: { position?: string; description?: string }, cmd: Command) => {
      const ctx = contextOf(cmd);
      const t = await ctx.client.patch<Tier>(`/v1/tiers/${encodeURIComponent(name)}`, {
        ...(o.position !== undefined ? { position: parseInteger(o.position, '--position', 0, 1000) } : {}),
        ...(o.description !== undefined ? { description: o.description } : {}),
      });
      printResult(
        ctx,
        t,
        () => `tier ${t.name}: position ${t.position}, ${t.description || 'no description'}`,
      );
    });
  tiers
    .command('order')
    .description('set the order of all tiers, e.g. edge,beta,stable')
    .argument('<names>', 'every tier, comma-separated, first to last')
    .action(async (names: string, _o: unknown, cmd: Command) => {
      const ctx = contextOf(cmd);
      const answer = await ctx.client.put<{ tiers: Tier[] }>('/v1/tiers/order', {
        order: names
          .split(',')
          .map((n) => n.trim())
          .filter(Boolean),
      });
      printResult(ctx, answer, () => tierTable(answer.tiers));
    });
}
